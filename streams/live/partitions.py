"""The engines of the partitions a worker owns, each over its partition of the tables.

One :class:`~streams.engine.Engine` per partition: its clock is the partition's event time, and
its records, aliases and erasure markers are views of that partition of the faust tables
(:mod:`streams.live.views`), which each commit writes back.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

import faust

from streams.engine import Engine
from streams.live.app import Tables
from streams.live.checkpoint import Offsets, clock_key
from streams.live.settings import WorkerSettings
from streams.live.views import MirroredView, PartitionView, in_partition, partition_of
from streams.model import state as state_codec
from streams.model.changes import SegmentChange
from streams.model.clock import Instant
from streams.model.state import CustomerState
from streams.rules.pack import RulePack

log = logging.getLogger("segmenter.worker")


def _decode_utf8(raw: bytes) -> str:
    return raw.decode()


def _encode_int(value: int) -> bytes:
    return str(value).encode()


class Partitions:
    def __init__(self, app: faust.App, tables: Tables, settings: WorkerSettings, pack: RulePack,
                 offsets: Offsets) -> None:
        self.app = app
        self.tables = tables
        self.settings = settings
        self.pack = pack
        self.offsets = offsets
        self.limits = settings.limits()
        self.source_topics = [*settings.input_topics, settings.identity_topic]
        self.engines: dict[int, Engine] = {}
        self.views: dict[int, tuple[PartitionView[Any], ...]] = {}
        """partition -> the table views its engine writes to, which each commit writes back."""
        self.recorded_clocks: dict[int, Instant] = {}
        """partition -> the clock the last commit recorded."""

    def partition_of(self, key: str) -> int:
        return partition_of(key, self.settings.partitions)

    def writing(self, partition: int) -> AbstractContextManager[None]:
        """Table reads and writes in this block go to ``partition``."""
        return in_partition(self.app, self.settings.clickstream_topic, partition)

    def engine_for(self, partition: int) -> Engine:
        """The partition's engine, built over its tables the first time (after their recovery),
        with the offsets ``progress`` recorded for it."""
        engine = self.engines.get(partition)
        if engine is not None:
            return engine
        n, tables = self.settings.partitions, self.tables
        with self.writing(partition):
            states: PartitionView[CustomerState] = PartitionView(
                tables.customers, partition, n, encode=state_codec.encode, decode=state_codec.decode)
            erased: PartitionView[int] = PartitionView(tables.erasures, partition, n, encode=_encode_int,
                                                       decode=int)
            aliases: PartitionView[str] = PartitionView(tables.aliases, partition, n, encode=str.encode,
                                                        decode=_decode_utf8)
            recorded_clock = tables.progress.get(clock_key(partition))
            clock = None if recorded_clock is None else int(recorded_clock)
            engine = Engine(self.pack, states=states, aliases=aliases, erased=MirroredView(erased),
                            owns=aliases.local, limits=self.limits, clock=clock)
            if clock is not None:
                self.recorded_clocks[partition] = clock
            for topic in self.source_topics:
                recorded = tables.progress.get(f"{topic}#{partition}")
                if recorded is not None:
                    self.offsets.restore((topic, partition), int(recorded))
        self.engines[partition] = engine
        self.views[partition] = (states, aliases, erased)
        log.info("partition %d: %d timers, segment sizes %s", partition, len(engine.timers),
                 dict(engine.sizes))
        return engine

    def drop(self, partition: int) -> None:
        self.engines.pop(partition, None)
        self.views.pop(partition, None)
        self.recorded_clocks.pop(partition, None)

    def moved_clocks(self) -> dict[int, Instant]:
        """partition -> its clock, where it moved since the last commit recorded it."""
        return {partition: engine.clock for partition, engine in self.engines.items()
                if engine.clock is not None and engine.clock != self.recorded_clocks.get(partition)}

    def dirty(self) -> bool:
        """Whether any view holds changes the next commit must write."""
        return any(view.dirty for views in self.views.values() for view in views)

    def state_of(self, customer_id: str) -> tuple[int, CustomerState | None]:
        """The customer's partition, and their record if this worker owns it."""
        partition = self.partition_of(customer_id)
        engine = self.engines.get(partition)
        with self.writing(partition):
            return partition, None if engine is None else engine.state_of(customer_id)

    def segment_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = defaultdict(int)
        for engine in self.engines.values():
            for segment, size in engine.sizes.items():
                sizes[segment] += size
        return dict(sorted(sizes.items()))

    def tick(self, partitions: Iterable[int], clock: Instant) -> list[SegmentChange]:
        """These partitions' clocks move up to ``clock`` (never back): the deadlines due by then
        fire. A partition that never had a clock and holds no deadline has nothing to fire: it
        starts its clock with its first event, so that a history produced to a new deployment
        is applied as a backfill, not as events months late."""
        changes: list[SegmentChange] = []
        for partition in partitions:
            engine = self.engines.get(partition)
            if engine is not None and (engine.clock is not None or engine.timers.next_deadline() is not None):
                with self.writing(partition):
                    changes += engine.tick(clock)
        return changes

    def timers(self) -> int:
        """Customers with a pending deadline, on every owned partition."""
        return sum(len(engine.timers) for engine in self.engines.values())
