"""Event-time alignment of a partition's input topics: what leaves, in which order, and when."""

from __future__ import annotations

import pytest

from streams.live.alignment import BEHIND, CAUGHT_UP, UNKNOWN, Aligner

pytestmark = pytest.mark.unit

TOPICS = ["clicks", "orders", "identity"]


BACKFILL = 1000.0
"""A wall clock (s) long after the events of these tests (their times are in µs): not live."""
LATER = 10**9
"""When a response after every pushed item's arrived: a topic read to its end says so for sure."""


def aligner(progress: dict[str, int | tuple[int, int]] | None = None, **options: float) -> Aligner:
    """``progress``: topic -> its state, or (state, when its latest response arrived)."""
    states = progress or {}

    def state(topic: str, partition: int) -> tuple[int, int]:
        given = states.get(topic, CAUGHT_UP)
        return given if isinstance(given, tuple) else (given, LATER)

    return Aligner(TOPICS, state,
                   max_wait=options.get("max_wait", 0.5), max_wait_behind=options.get("max_wait_behind", 30.0),
                   max_buffered=int(options.get("max_buffered", 1000)), bypass="identity")


def test_topics_caught_up_leave_in_event_time_order_each_keeping_its_own_order() -> None:
    a = aligner()
    for ts, name in [(1, "c1"), (5, "c5"), (6, "c6")]:
        a.push(0, "clicks", ts, name)
    for ts, name in [(2, "o2"), (4, "o4")]:
        a.push(0, "orders", ts, name)
    assert list(a.release(0, wall=0.0)) == ["c1", "o2", "o4", "c5", "c6"]
    assert a.buffered == 0 and a.partitions() == []


def test_a_topic_behind_holds_the_others_until_it_delivers_or_the_wait_runs_out() -> None:
    a = aligner({"orders": BEHIND}, max_wait_behind=30.0)
    a.push(0, "clicks", 10, "c10")
    assert list(a.release(0, wall=100.0)) == []
    assert list(a.release(0, wall=120.0)) == []
    a.push(0, "orders", 3, "o3")
    assert list(a.release(0, wall=121.0)) == ["o3"]  # orders empty and behind again: c10 waits
    assert list(a.release(0, wall=150.0)) == []  # the wait began again when orders delivered
    assert list(a.release(0, wall=151.0)) == ["c10"]


def test_a_topic_whose_end_is_unknown_waits_only_briefly_live() -> None:
    a = aligner({"orders": UNKNOWN}, max_wait=0.5)
    a.push(0, "clicks", 10, "c10")
    assert list(a.release(0, wall=0.0)) == []
    assert list(a.release(0, wall=0.6)) == ["c10"]


def test_a_topic_whose_end_is_unknown_holds_older_events_as_long_as_one_behind() -> None:
    # A backlog read from the start: the orders partition's leader is not known to the client
    # yet, so its first fetch lags; it may hold events older than the clicks waiting here.
    a = aligner({"orders": UNKNOWN}, max_wait=0.5, max_wait_behind=30.0)
    a.push(0, "clicks", 10, "c10")
    assert list(a.release(0, wall=1000.0)) == []
    assert list(a.release(0, wall=1020.0)) == []
    a.push(0, "orders", 3, "o3")
    assert list(a.release(0, wall=1021.0)) == ["o3"]
    assert list(a.release(0, wall=1052.0)) == ["c10"]


def test_memory_bound_releases_even_while_waiting() -> None:
    a = aligner({"orders": BEHIND}, max_buffered=3)
    for ts in range(3):
        a.push(0, "clicks", ts, f"c{ts}")
    assert list(a.release(0, wall=0.0)) == ["c0"]  # at the bound: one leaves, then below it again


def test_bad_messages_without_a_time_leave_first() -> None:
    a = aligner()
    a.push(0, "clicks", 7, "c7")
    a.push(0, "orders", None, "bad")
    assert list(a.release(0, wall=0.0)) == ["bad", "c7"]


def test_a_held_item_waits_with_everything_after_it_but_the_bypass_topic_goes_on() -> None:
    a = aligner()
    a.push(0, "clicks", 1, "c1")
    a.push(0, "clicks", 2, "held")
    a.push(0, "clicks", 3, "c3")
    a.push(0, "orders", 4, "o4")
    a.push(0, "identity", 9, "merge")
    held = {"held"}
    out = []
    for item in a.release(0, wall=0.0, hold=lambda item: item in held):
        out.append(item)
        if item == "merge":
            held.clear()  # the merge arrived: what waited may go, decided lazily
    assert out == ["c1", "merge", "held", "c3", "o4"]


def test_hold_is_decided_after_the_item_before_it_was_applied() -> None:
    a = aligner()
    for ts, name in [(1, "identify"), (2, "after")]:
        a.push(0, "clicks", ts, name)
    held: set[str] = set()
    out = []
    for item in a.release(0, wall=0.0, hold=lambda item: item in held):
        out.append(item)
        if item == "identify":
            held.add("after")  # applying the identify holds the customer's next event
    assert out == ["identify"]
    assert a.buffered == 1


def test_a_dropped_partition_forgets_what_waited() -> None:
    a = aligner()
    a.push(0, "clicks", 1, "c1")
    a.push(1, "clicks", 1, "other")
    a.drop(0)
    assert a.buffered == 1
    assert list(a.release(0, wall=0.0)) == []
    assert list(a.release(1, wall=0.0)) == ["other"]


def test_live_messages_wait_for_a_topic_behind_only_briefly() -> None:
    """Near the wall clock a topic "behind" is a fetch under way: a short hold, not 30 s."""
    a = aligner({"orders": BEHIND}, max_wait_behind=30.0)
    now = 1_000_000.0  # wall clock, seconds
    a.push(0, "clicks", int((now - 1) * 1_000_000), "live")
    a.push(1, "clicks", int((now - 3600) * 1_000_000), "backfill")
    assert list(a.release(0, wall=now)) == []
    assert list(a.release(0, wall=now + 0.06)) == ["live"]
    assert list(a.release(1, wall=now)) == []
    assert list(a.release(1, wall=now + 0.06)) == []  # an hour old: a backfill waits its 30 s
    assert list(a.release(1, wall=now + 30.0)) == ["backfill"]


def test_a_wall_clock_set_forward_does_not_end_a_wait() -> None:
    """The waits run on the monotonic clock the worker passes as ``now``: a wall clock stepped
    forward a minute (a VM resumed, NTP) must not let a click overtake the order it waits for."""
    a = aligner({"orders": BEHIND}, max_wait_behind=30.0)
    a.push(0, "clicks", 10, "c10")
    assert list(a.release(0, wall=1000.0, now=5.0)) == []
    assert list(a.release(0, wall=1060.0, now=5.1)) == []  # the wall clock jumped, time did not pass
    a.push(0, "orders", 3, "o3")
    assert list(a.release(0, wall=1060.2, now=5.2)) == ["o3"]
    assert list(a.release(0, wall=1100.0, now=34.0)) == []
    assert list(a.release(0, wall=1100.0, now=35.3)) == ["c10"]  # 30 s of it since o3 left


def test_a_topic_read_to_its_end_in_the_same_response_as_a_message_holds_it_until_a_later_one() -> None:
    """The broker reads a response's partitions one after another: the response that brought c10
    may have read orders just before o3 (written ahead of c10) arrived. Only a later response
    says orders has nothing before c10."""
    states: dict[str, int | tuple[int, int]] = {"orders": (CAUGHT_UP, 100)}
    a = aligner(states)
    a.push(0, "clicks", 10, "c10", at=100)
    assert list(a.release(0, wall=BACKFILL)) == []
    a.push(0, "orders", 3, "o3", at=101)  # the next response brings it
    states["orders"] = (CAUGHT_UP, 101)
    assert list(a.release(0, wall=BACKFILL)) == ["o3", "c10"]


def test_only_messages_of_earlier_responses_leave_on_a_topic_read_to_its_end() -> None:
    states: dict[str, int | tuple[int, int]] = {"orders": (CAUGHT_UP, 103)}
    a = aligner(states)
    a.push(0, "clicks", 1, "c1", at=100)
    a.push(0, "clicks", 2, "c2", at=103)
    a.push(0, "clicks", 3, "c3", at=105)
    assert list(a.release(0, wall=BACKFILL)) == ["c1"]
    states["orders"] = (CAUGHT_UP, 106)
    assert list(a.release(0, wall=BACKFILL)) == ["c2", "c3"]


def test_a_live_message_leaves_on_the_response_it_came_in() -> None:
    """Live, a fetch's wait is latency: the same response is enough, and an older one holds it only
    briefly, as a topic behind does."""
    now = 1_000_000.0
    states: dict[str, int | tuple[int, int]] = {"orders": (CAUGHT_UP, 100)}
    a = aligner(states)
    a.push(0, "clicks", int((now - 1) * 1_000_000), "same", at=100)
    assert list(a.release(0, wall=now)) == ["same"]
    a.push(0, "clicks", int((now - 1) * 1_000_000), "newer", at=101)
    assert list(a.release(0, wall=now)) == []
    assert list(a.release(0, wall=now + 0.06)) == ["newer"]
