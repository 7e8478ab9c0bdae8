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

"Read to its end" must also be as of the right moment. The broker reads the partitions of a
fetch response one after another, so a response that brings a ``clickstream`` message may have
read ``profiles`` just before a profile written ahead of that message arrived. A topic read to
its end therefore lets a message pass only when a response later than the one the message came
in says so (the message's ``at``, the topic's ``seen``): that response was asked for after the
message had arrived, and misses nothing written before it.

Live, the waiting costs latency and buys little: a topic is then "behind" by the few messages
of the fetch under way, stamped about when the held one was. So when the message that would
leave next is within ``live_horizon`` of the wall clock, a topic behind holds it for
``live_wait_behind`` at most, one whose end is not known for ``max_wait``, and one read to its
end as of the very response the message came in not at all. A message that arrives later than
that is applied late (the engine allows for lateness), which replay would have applied a moment
earlier.

Per topic the FIFO keeps Kafka's order, so offsets are still applied in order. A message with
no event time (a bad one) leaves as soon as it is at the head of its topic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

_EARLIEST = -(1 << 62)
_LATEST = 1 << 62

CAUGHT_UP = 0
BEHIND = 1
UNKNOWN = 2


class Aligner:
    def __init__(self, topics: list[str], progress: Callable[[str, int], tuple[int, int]], *, max_wait: float,
                 max_wait_behind: float, max_buffered: int, bypass: str | None = None,
                 live_horizon: float = 10.0, live_wait_behind: float = 0.05) -> None:
        self.topics = topics
        self.bypass = bypass
        self.progress = progress
        """(topic, partition) -> (CAUGHT_UP, BEHIND or UNKNOWN; when the fetch response that says
        so arrived), on the clock of the ``at`` given to :meth:`push`."""
        self.max_wait = max_wait
        self.max_wait_behind = max_wait_behind
        self.max_buffered = max_buffered
        self.live_horizon = int(live_horizon * 1_000_000)
        self.live_wait_behind = live_wait_behind
        self._queues: dict[int, dict[str, deque[tuple[int, int, Any]]]] = {}
        self._waiting_since: dict[int, float] = {}
        self.buffered = 0

    def push(self, partition: int, topic: str, ts: int | None, item: Any, at: int = 0) -> None:
        """Queue ``item``, of event time ``ts`` (None: it has none), which came in the fetch
        response that arrived at ``at``."""
        queues = self._queues.get(partition)
        if queues is None:
            queues = self._queues[partition] = {t: deque() for t in self.topics}
        queues[topic].append((_EARLIEST if ts is None else ts, at, item))
        self.buffered += 1

    def release(self, partition: int, wall: float, hold: Callable[[Any], bool] | None = None,
                now: float | None = None) -> Iterator[Any]:
        """Items of ``partition`` that may be applied now, in the order to apply them.

        ``wall`` is the wall clock (seconds), against which an event's time says whether it is
        live. ``now`` (seconds, ``wall`` if not given) times the waits: the worker passes a
        monotonic clock, since a wall clock set forward by half a minute (a VM resumed, NTP
        stepping it) would end every wait at once and let events leave out of order.

        A generator, so each item is decided after the one before it was applied: ``hold(item)``
        true keeps that item, and so everything after it, waiting. The worker holds a customer
        whose ``identify`` is on its way to the visitor's partition and back.
        """
        if now is None:
            now = wall
        queues = self._queues.get(partition)
        if not queues:
            return
        horizon = wall * 1_000_000 - self.live_horizon
        while True:
            heads: list[deque[tuple[int, int, Any]]] = []
            wait = 0.0
            end_unknown = False
            confirmed = _LATEST
            for topic, queue in queues.items():
                if queue:
                    heads.append(queue)
                else:
                    state, seen = self.progress(topic, partition)
                    if state != CAUGHT_UP:  # behind, or its end not known yet: the same wait
                        wait = self.max_wait_behind
                        end_unknown = end_unknown or state == UNKNOWN
                    elif seen < confirmed:
                        confirmed = seen
            if not heads:
                self._waiting_since.pop(partition, None)
                return
            if len(heads) > 1:
                heads.sort(key=lambda q: q[0][0])
            ts, at, _ = heads[0][0]
            live = ts > horizon
            if not wait and not _confirmed(confirmed, at, live):
                wait = self.max_wait_behind
            if wait == self.max_wait_behind and live:
                wait = max(self.live_wait_behind, self.max_wait if end_unknown else 0.0)
            if wait and ts != _EARLIEST:
                since = self._waiting_since.setdefault(partition, now)
                if now - since < wait and self.buffered < self.max_buffered:
                    return
            else:
                self._waiting_since.pop(partition, None)
            best = heads[0]
            if len(heads) == 1 and not wait:
                # Every other topic is read to its end and nothing is pushed while this runs:
                # the one queue leaves in its own order, as far as those ends are confirmed.
                unconfirmed = False
                while best:
                    ts, at, item = best[0]
                    if hold is not None and hold(item):
                        break
                    if not _confirmed(confirmed, at, ts > horizon):
                        unconfirmed = True  # it waits for a later response: the top decides how long
                        break
                    self.buffered -= 1
                    yield best.popleft()[2]
                if not best or unconfirmed:
                    continue
            if hold is not None and hold(best[0][2]):
                # The held item waits for something on the bypass topic (the identity merge that
                # releases it); nothing else may overtake it in event time.
                bypass = queues.get(self.bypass) if self.bypass else None
                if not bypass:
                    return
                best = bypass
            self.buffered -= 1
            yield best.popleft()[2]

    def holds(self, partition: int) -> bool:
        """Whether anything of ``partition`` waits here."""
        queues = self._queues.get(partition)
        return queues is not None and any(queues.values())

    def partitions(self) -> list[int]:
        return [p for p, queues in self._queues.items() if any(queues.values())]

    def drop(self, partition: int) -> None:
        """The partition was revoked: what waited here will be read again by its new owner."""
        queues = self._queues.pop(partition, None)
        if queues:
            self.buffered -= sum(len(q) for q in queues.values())
        self._waiting_since.pop(partition, None)


def _confirmed(seen: int, at: int, live: bool) -> bool:
    """Whether the topics read to their end say so as of a fetch response later than the one an
    item came in (``at``; ``seen`` is the earliest of theirs). The broker reads a response's
    partitions one after another, and the producer of one topic may write between two of those
    reads: the same response can bring an event and miss what was written to another topic just
    before it. A later response was asked for once that one arrived, so it misses nothing written
    before the event. A live event is let go on the same response, sparing it a fetch's wait; it
    can come late only by that race, and a live event may come late anyway."""
    return seen > at or (live and seen == at)
