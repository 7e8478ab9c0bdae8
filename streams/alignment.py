"""Event-time alignment of one partition's input topics.

Kafka orders messages within a topic partition, never across topics: a worker catching up on a
backlog may read a week of ``profiles`` before the first hour of ``clickstream`` for the same
partition. Fed to the engine in that order, the clickstream would look a week late, and
beyond the allowed lateness it would be dead-lettered: a backfill would not give what replay
gives. So, as Kafka Streams does for the partitions of one task, messages wait in a FIFO per
topic and leave in event-time order across topics, the earliest head first, while every topic
either has a message waiting or has been read to its end. A topic known to be behind (its end
offset is ahead of what was read) holds the others back until it delivers, up to
``max_wait_behind`` seconds, and so does one whose end is not known yet: its first fetch may
lag the others' (a new topic's leader not known to the client yet), and it may hold earlier
events. ``max_buffered`` bounds the memory either way.

Live, the waiting costs latency and buys little: a topic is then "behind" by the few messages
of the fetch under way, stamped about when the held one was. So when the message that would
leave next is within ``live_horizon`` of the wall clock, a topic behind holds it for
``live_wait_behind`` at most, and one whose end is not known for ``max_wait``; a message that
arrives later than that is applied late (the engine allows for lateness), which replay would
have applied a moment earlier.

Per topic the FIFO keeps Kafka's order, so offsets are still applied in order. A message with
no event time (a bad one) leaves as soon as it is at the head of its topic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

_EARLIEST = -(1 << 62)

CAUGHT_UP = 0
BEHIND = 1
UNKNOWN = 2


class Aligner:
    def __init__(self, topics: list[str], progress: Callable[[str, int], int], *, max_wait: float,
                 max_wait_behind: float, max_buffered: int, bypass: str | None = None,
                 live_horizon: float = 10.0, live_wait_behind: float = 0.05) -> None:
        self.topics = topics
        self.bypass = bypass
        self.progress = progress
        """(topic, partition) -> CAUGHT_UP, BEHIND or UNKNOWN."""
        self.max_wait = max_wait
        self.max_wait_behind = max_wait_behind
        self.max_buffered = max_buffered
        self.live_horizon = int(live_horizon * 1_000_000)
        self.live_wait_behind = live_wait_behind
        self._queues: dict[int, dict[str, deque[tuple[int, Any]]]] = {}
        self._waiting_since: dict[int, float] = {}
        self.buffered = 0

    def push(self, partition: int, topic: str, ts: int | None, item: Any) -> None:
        queues = self._queues.get(partition)
        if queues is None:
            queues = self._queues[partition] = {t: deque() for t in self.topics}
        queues[topic].append((_EARLIEST if ts is None else ts, item))
        self.buffered += 1

    def release(self, partition: int, wall: float, hold: Callable[[Any], bool] | None = None) -> Iterator[Any]:
        """Items of ``partition`` that may be applied now, in the order to apply them.

        A generator, so each item is decided after the one before it was applied: ``hold(item)``
        true keeps that item, and so everything after it, waiting. The worker holds a customer
        whose ``identify`` is on its way to the visitor's partition and back.
        """
        queues = self._queues.get(partition)
        if not queues:
            return
        while True:
            heads: list[deque[tuple[int, Any]]] = []
            wait = 0.0
            end_unknown = False
            for topic, queue in queues.items():
                if queue:
                    heads.append(queue)
                else:
                    state = self.progress(topic, partition)
                    if state != CAUGHT_UP:  # behind, or its end not known yet: the same wait
                        wait = self.max_wait_behind
                        end_unknown = end_unknown or state == UNKNOWN
            if not heads:
                self._waiting_since.pop(partition, None)
                return
            if len(heads) > 1:
                heads.sort(key=lambda q: q[0][0])
            if wait == self.max_wait_behind and wall * 1_000_000 - heads[0][0][0] < self.live_horizon:
                wait = max(self.live_wait_behind, self.max_wait if end_unknown else 0.0)
            if wait and heads[0][0][0] != _EARLIEST:
                since = self._waiting_since.setdefault(partition, wall)
                if wall - since < wait and self.buffered < self.max_buffered:
                    return
            else:
                self._waiting_since.pop(partition, None)
            best = heads[0]
            if len(heads) == 1 and not wait:
                # Every other topic is read to its end and nothing is pushed while this runs:
                # the one queue leaves in its own order.
                while best:
                    if hold is not None and hold(best[0][1]):
                        break
                    self.buffered -= 1
                    yield best.popleft()[1]
                if not best:
                    continue
            if hold is not None and hold(best[0][1]):
                # The held item waits for something on the bypass topic (the identity merge that
                # releases it); nothing else may overtake it in event time.
                bypass = queues.get(self.bypass) if self.bypass else None
                if not bypass:
                    return
                best = bypass
            self.buffered -= 1
            yield best.popleft()[1]

    def partitions(self) -> list[int]:
        return [p for p, queues in self._queues.items() if any(queues.values())]

    def drop(self, partition: int) -> None:
        """The partition was revoked: what waited here will be read again by its new owner."""
        queues = self._queues.pop(partition, None)
        if queues:
            self.buffered -= sum(len(q) for q in queues.values())
        self._waiting_since.pop(partition, None)
