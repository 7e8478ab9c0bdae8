"""The engines of the partitions a worker owns, each over its partition of the tables.

One :class:`~streams.engine.Engine` per partition: its clock is the partition's event time, and
its records, aliases and erasure markers are views of that partition of the faust tables
(:mod:`streams.live.views`), which each commit writes back.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from typing import Any

import faust

from streams.engine import Engine
from streams.engine.customer import event_hash
from streams.live.app import Tables
from streams.live.checkpoint import Offsets, clock_key, fill_key
from streams.live.metrics import Metrics
from streams.live.settings import WorkerSettings
from streams.live.views import MirroredView, PartitionView, in_partition, partition_of
from streams.model import state as state_codec
from streams.model.activations import Activation
from streams.model.changes import SegmentChange
from streams.model.clock import Instant
from streams.model.events import BadEvent, decode
from streams.model.state import CustomerState
from streams.rules.deployments import Scheduled
from streams.rules.pack import RulePack

log = logging.getLogger("segmenter.worker")


def _decode_utf8(raw: bytes) -> str:
    return raw.decode()


def _encode_int(value: int) -> bytes:
    return str(value).encode()


class Partitions:
    def __init__(self, app: faust.App, tables: Tables, settings: WorkerSettings, pack: RulePack,
                 offsets: Offsets, deployments: Iterable[Scheduled] = ()) -> None:
        self.app = app
        self.deployments: list[Scheduled] = list(deployments)
        """Every deployment known, for the engines built later."""
        self.filled: dict[int, set[str]] = {}
        """partition -> the deployments whose windows history has filled there."""
        self.unrecorded: list[tuple[int, str]] = []
        """(partition, progress key) of fills the next commit records."""
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
                            owns=aliases.local, limits=self.limits, clock=clock, deployments=self.deployments)
            self.filled[partition] = {d.id for d in engine.pending
                                      if tables.progress.get(fill_key(d.id, partition)) is not None}
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
        self.filled.pop(partition, None)
        self.engines.pop(partition, None)
        self.views.pop(partition, None)
        self.recorded_clocks.pop(partition, None)

    def moved_clocks(self) -> dict[int, Instant]:
        """partition -> its clock, where it moved since the last commit recorded it."""
        return {partition: engine.clock for partition, engine in self.engines.items()
                if engine.clock is not None and engine.clock != self.recorded_clocks.get(partition)}

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

    def deploy(self, scheduled: Scheduled) -> list[SegmentChange]:
        """A deployment learnt while running, to every engine (and every engine built later)."""
        self.deployments.append(scheduled)
        changes: list[SegmentChange] = []
        for partition, engine in self.engines.items():
            with self.writing(partition):
                late = engine.clock is not None and scheduled.at <= engine.clock
                changes += engine.deploy(scheduled)
            if late:
                log.warning("partition %d: deployment %s is effective at a time its clock has passed; "
                            "live there from now", partition, scheduled.id)
        return changes

    def to_fill(self) -> dict[int, list[str]]:
        """partition -> the pending deployments whose new windows history has not filled yet."""
        out = {}
        for partition, engine in self.engines.items():
            ids = [d.id for d in engine.pending if d.id not in self.filled.get(partition, set())]
            if ids and engine.needs_history():
                out[partition] = ids
        return out

    def prefill(self, topic_partition: int, raw: bytes, seen: set[int], into: Collection[int]) -> None:
        """One message of history, read from a partition of the input topics, counted in the
        new windows of the record it belongs to, if that record is on a partition ``into``.
        ``seen``: the event ids counted so far, so that a message sent twice counts once."""
        event = decode(raw, limits=self.limits)
        if isinstance(event, BadEvent):
            return
        ident = event_hash(event.event_id)
        if ident in seen:
            return
        key = event.customer_id
        if key is None:
            anon = event.anonymous_id or ""
            source = self.engines.get(topic_partition)
            with self.writing(topic_partition):
                key = anon if source is None else source.aliases.get(anon, anon)
        partition = self.partition_of(key)
        engine = self.engines.get(partition)
        if engine is not None and partition in into:
            with self.writing(partition):
                if engine.prefill(key, event):
                    seen.add(ident)

    def filled_now(self, partition: int, ids: list[str]) -> None:
        self.filled.setdefault(partition, set()).update(ids)
        self.unrecorded += [(partition, fill_key(i, partition)) for i in ids]

    def take_marks(self) -> list[tuple[int, str]]:
        """The fills for the next commit to record (:class:`streams.live.checkpoint.Checkpoint`)."""
        marks, self.unrecorded = self.unrecorded, []
        return marks

    def dirty(self) -> bool:
        """Whether any view holds changes the next commit must write (or a fill to record)."""
        return bool(self.unrecorded) or any(view.dirty for views in self.views.values() for view in views)

    def measure(self, metrics: Metrics) -> None:
        """Segment sizes, timers and live packs into the metrics, after a commit."""
        for segment, size in self.segment_sizes().items():
            metrics.segment_size.labels(segment).set(size)
        metrics.timers.set(self.timers())
        metrics.pack.clear()
        for version in self.packs().values():
            metrics.pack.labels(version).inc()
        counts: Counter[tuple[str, str, str]] = Counter()
        for engine in self.engines.values():
            counts.update(engine.stats.activations)
        for (policy, segment, channel), n in counts.items():
            metrics.suppressed.labels(policy, segment, channel).set(n)

    def take_activations(self) -> list[Activation]:
        """The engines' activations since the last call (for the outbox)."""
        out: list[Activation] = []
        for engine in self.engines.values():
            if engine.activations:
                out += engine.take_activations()
        return out

    def packs(self) -> dict[int, str]:
        """partition -> the version of its live pack."""
        return {partition: engine.pack.version for partition, engine in sorted(self.engines.items())}

    def timers(self) -> int:
        """Customers with a pending deadline, on every owned partition."""
        return sum(len(engine.timers) for engine in self.engines.values())
