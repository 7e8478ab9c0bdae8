"""Idle partitions: a partition with no input for ``idle_after`` seconds lets its clock follow
the wall clock, so that deadlines fire on time when nothing else happens."""

from __future__ import annotations

from streams.model.clock import SECOND, Instant


class IdleClock:
    def __init__(self, idle_after: float) -> None:
        self.idle_after = idle_after
        self.last_input: dict[int, tuple[float, Instant]] = {}
        """partition -> (wall time, partition clock) at its latest input."""

    def saw_input(self, partition: int, wall: float, clock: Instant) -> None:
        self.last_input[partition] = (wall, clock)

    def drop(self, partition: int) -> None:
        self.last_input.pop(partition, None)

    def target(self, partition: int, wall: float) -> Instant | None:
        """Where the partition's clock should be at ``wall``, if it is idle; else None."""
        last = self.last_input.get(partition)
        if last is None or wall - last[0] < self.idle_after:
            return None
        return last[1] + int((wall - last[0]) * SECOND)
