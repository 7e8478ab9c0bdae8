"""How far each source partition is read: for event-time alignment and the lag gauge.

Alignment lets a message pass a topic with nothing queued only once that topic is known to be
read to its end by a fetch response later than the one the message came in
(:mod:`streams.live.alignment`); this says which, per topic partition, as of the latest fetch.
"""

from __future__ import annotations

from collections.abc import Iterator

from faust.types import TP

from streams.live.alignment import BEHIND, CAUGHT_UP, UNKNOWN
from streams.live.checkpoint import Offsets
from streams.live.source import SourceReader


class ReadProgress:
    def __init__(self, offsets: Offsets) -> None:
        self.offsets = offsets
        self.reader: SourceReader | None = None
        self._known: dict[tuple[str, int], tuple[int, int]] = {}
        """(topic, partition) -> the answer of :meth:`__call__`, worked out once per fetch."""

    def clear(self) -> None:
        """A fetch came in, or time passed: work the answers out again."""
        self._known.clear()

    def __call__(self, topic: str, partition: int) -> tuple[int, int]:
        """CAUGHT_UP, BEHIND or UNKNOWN, and when (ms) the partition's latest fetch response
        arrived."""
        key = (topic, partition)
        state = self._known.get(key)
        if state is None:
            state = self._known[key] = self._now(key)
        return state

    def _now(self, key: tuple[str, int]) -> tuple[int, int]:
        reader = self.reader
        if reader is None:
            return UNKNOWN, 0
        tp = TP(*key)
        high = reader.highwater(tp)
        if high is None:
            return UNKNOWN, 0
        read = self.offsets.received.get(key, self.offsets.applied.get(key, -1))
        # aiokafka leaves a partition whose last records are still being applied out of the
        # fetch it sends meanwhile: its latest response is then older than the others'.
        return (BEHIND if read + 1 < high else CAUGHT_UP), reader.polled_at(tp)

    def read_to_end(self, partition: int, topics: list[str]) -> bool:
        """Whether every one of ``topics`` is read to its end on ``partition``."""
        return all(self(topic, partition)[0] == CAUGHT_UP for topic in topics)

    def lag(self) -> Iterator[tuple[TP, int]]:
        """Messages behind the end, per assigned partition whose end is known."""
        reader = self.reader
        if reader is None:
            return
        for tp in reader.assigned:
            high = reader.highwater(tp)
            done = self.offsets.applied.get((tp.topic, tp.partition))
            if high is not None:
                yield tp, max(high - (done + 1 if done is not None else 0), 0)
