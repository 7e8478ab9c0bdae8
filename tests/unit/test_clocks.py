"""The worker's clocks: idleness from the assignment on, and a wall clock no step of the system
clock moves."""

from __future__ import annotations

from streams.live.clocks import Clocks
from streams.live.idle import IdleClock


class Fake:
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


def test_a_stepped_system_clock_moves_neither_way_the_wall_the_worker_keeps() -> None:
    system, monotonic = Fake(1_000_000.0), Fake(50.0)
    clocks = Clocks(system, monotonic)
    monotonic.value += 10
    system.value += 10 + 3600  # ten seconds pass, and NTP steps the clock an hour ahead
    assert clocks.wall() == 1_000_010.0
    assert clocks.step() == 3600
    system.value -= 7200  # and two hours back
    assert clocks.wall() == 1_000_010.0
    assert clocks.step() == -3600


def test_a_partition_is_idle_from_its_assignment_when_no_input_comes() -> None:
    idle = IdleClock(idle_after=1.0)
    assert not idle.idle(0, 100.0), "not assigned"
    idle.assigned(0, 100.0)
    assert not idle.idle(0, 100.9)
    assert idle.idle(0, 101.0)


def test_input_starts_the_wait_again_and_a_reassignment_of_an_owned_partition_does_not() -> None:
    idle = IdleClock(idle_after=1.0)
    idle.assigned(0, 100.0)
    idle.saw_input(0, 100.5)
    assert not idle.idle(0, 101.2)
    idle.assigned(0, 101.3)  # a rebalance that left the partition here
    assert idle.idle(0, 101.5)
    idle.drop(0)
    assert not idle.idle(0, 200.0)
