"""The live driver: the engine on Kafka.

faust keeps the consumer group, the tables and the web (:mod:`streams.live.app`); the hot path
does not go through faust's per-message streams. Once the tables of its partitions are
recovered, the worker reads the source topics with a consumer of its own
(:mod:`streams.live.source`), lets event-time alignment (:mod:`streams.live.alignment`) decide
what may be applied, and applies it with the partition's engine
(:mod:`streams.live.partitions`). A batch's changes, dead letters and identity hand-offs
(:mod:`streams.live.identity`) go out at once (:mod:`streams.live.outbox`); every
``commit_interval``, and before partitions move or the worker stops, a commit makes it all
durable (:mod:`streams.live.checkpoint`). One bad message is a dead letter, never a stopped
worker.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from faust.types import TP

from streams.live import web
from streams.live.alignment import Aligner
from streams.live.app import declare_tables, make_app
from streams.live.changelog import ChangelogWrites
from streams.live.checkpoint import Checkpoint, Committer, Offsets
from streams.live.clocks import Clocks
from streams.live.group import consumer_class
from streams.live.handoffs import decode_handoff
from streams.live.identity import Identity
from streams.live.idle import IdleClock
from streams.live.metrics import Metrics
from streams.live.outbox import Outbox, make_producer
from streams.live.partitions import Partitions
from streams.live.progress import ReadProgress
from streams.live.rollout import Rollout
from streams.live.settings import WorkerSettings
from streams.live.source import Batch, Fetch, SourceReader
from streams.live.topics import ensure_topics
from streams.model.clock import SECOND
from streams.model.events import BadEvent, decode
from streams.rules.pack import RulePack

SLICE = 100
"""Events applied between two yields to the event loop (the producer's sender, the fetch loop)."""


class Worker:
    """The faust app and the batch pipeline around the engines of the owned partitions."""

    def __init__(self, settings: WorkerSettings, pack: RulePack, clocks: Clocks | None = None) -> None:
        self.settings = settings
        self.limits = settings.limits()
        self.clocks = clocks or Clocks()
        self.metrics = Metrics()
        self.app = make_app(settings)
        self.app.transport.Consumer = consumer_class(self)  # type: ignore[misc]
        self.tables = declare_tables(self.app, settings)
        self.source_topics = [*settings.input_topics, settings.identity_topic]
        # Subscribes the consumer group to the source topics, so they are assigned; the
        # worker's own reader fetches them.
        self.subscription = faust.Topic(self.app, topics=self.source_topics, key_serializer="raw",
                                        value_serializer="raw")
        self.inbox: asyncio.Queue[Fetch] = asyncio.Queue(maxsize=4)
        self.reader: SourceReader | None = None
        self.to_read: dict[TP, int | None] | None = None
        """Where to read from, decided before the reader was started."""
        self.offsets = Offsets()
        self.partitions = Partitions(self.app, self.tables, settings, pack, self.offsets)
        self.progress = ReadProgress(self.offsets)
        self.outbox = Outbox(settings, self.metrics, activations=self.partitions.take_activations)
        self.rollout = Rollout(settings, self.partitions, self.offsets, self.outbox, self.metrics)
        self.identity = Identity(self.partitions.partition_of, self.outbox, self.metrics,
                                 monotonic=self.clocks.monotonic, wait=settings.handoff_wait)
        self.aligner = Aligner(self.source_topics, self.progress, max_wait=settings.align_wait,
                               max_wait_behind=30.0, max_buffered=50 * settings.batch_max,
                               bypass=settings.identity_topic)
        self.idle = IdleClock(settings.idle_after)
        self.commits = Committer(settings.commit_interval, self._checkpoint, self._commit,
                                 self._uncommitted)
        self.lock = asyncio.Lock()
        self.producer: AIOKafkaProducer | None = None
        self.writes: ChangelogWrites | None = None
        self.ready = asyncio.Event()
        self.stopping = False
        app = self.app
        app.topics.add(self.subscription)
        app.task(self._pipeline)
        self.rollout.attach(app, self.lock, self.ready, lambda: self.producer)
        app.timer(settings.tick_interval)(self._tick)
        app.on_rebalance_complete.connect(self._on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        web.register(app, self.tables.customers, web.Readout(
            self.partitions, self.metrics, lambda: self.ready.is_set() and not app.rebalancing), settings)

    async def ensure_topics(self) -> list[str]:
        return await ensure_topics(self.settings, self.app)

    # --- partitions ---------------------------------------------------------------------------

    def owned_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.settings.clickstream_topic}

    async def _on_assigned(self, app: Any, **_: Any) -> None:
        """The assigned partitions' tables are recovered: their engines are built, new windows of
        pending packs filled from history, and their source topics read from where ``progress`` says."""
        async with self.lock:
            owned = self.owned_partitions()
            for partition in list(self.partitions.engines):
                if partition not in owned:
                    self._drop(partition)
            now = self.clocks.monotonic()
            for partition in sorted(owned):
                self.partitions.engine_for(partition)
                self.idle.assigned(partition, now)
            self.metrics.partitions.set(len(owned))
            await self.rollout.fill()
            positions = self.offsets.positions(owned, self.source_topics)
            if self.reader is None:
                self.to_read = positions
            else:
                self.reader.assign(positions)
            # What exists now (the app, the rules, the partitions' timer indexes) lives as long
            # as the worker: out of the collector's sight, a full collection stays short.
            gc.freeze()
            self.ready.set()

    async def _on_revoked(self, app: Any, revoked: set[Any], **_: Any) -> None:
        """After :meth:`settle`: the partitions' work is durable; their engines go."""
        async with self.lock:
            await self.commits.wait()
            for tp in revoked:
                if tp.topic == self.settings.clickstream_topic:
                    self._drop(tp.partition)

    def _drop(self, partition: int) -> None:
        self.partitions.drop(partition)
        self.aligner.drop(partition)
        self.idle.drop(partition)
        self.offsets.drop(partition)

    # --- the pipeline -------------------------------------------------------------------------

    async def settle(self) -> None:
        """From the consumer, before partitions move or the worker stops: commit everything."""
        if self.app.should_stop:
            self.stopping = True
        if self.reader is not None:
            self.reader.release()
        async with self.lock:
            while not self.inbox.empty():  # fetched, not applied: read again by the next owner
                self.inbox.get_nowait()
            if self.producer is not None:
                await self._commit_now()

    async def _pipeline(self) -> None:
        self.producer = make_producer(self.settings)
        await self.producer.start()
        self.writes = ChangelogWrites(self.producer)
        reader = SourceReader(self.settings)
        await reader.start()
        self.reader = self.progress.reader = reader
        if self.to_read is not None:
            reader.assign(self.to_read)
            self.to_read = None
        reading = asyncio.create_task(_read(reader, self.inbox))
        try:
            while True:
                fetch = await _next_fetch(self.inbox, reading)
                async with self.lock:
                    if self.stopping or fetch.epoch != reader.epoch:
                        # Fetched before the partitions moved: their next reader starts from
                        # what the last commit recorded.
                        continue
                    await self.handle(fetch.records, fetch.polled, fetch.positions)
                # Let the producer's sender and the fetch loop run between two batches.
                await asyncio.sleep(0)
        finally:
            reading.cancel()
            await reader.stop()
            await self.producer.stop()

    async def handle(self, records: Batch, polled: dict[Any, int], positions: dict[Any, int] | None = None) -> None:
        """Take in one fetch; apply what alignment releases; send its output; commit when due.
        ``positions``: where the reader stands after it, past what is no record too."""
        started = time.perf_counter()
        identity = self.settings.identity_topic
        limits = self.limits
        latest = int((self.clocks.wall() + self.settings.max_clock_skew) * SECOND)
        owned = self.owned_partitions()
        push = self.aligner.push
        for tp, batch in records.items():
            topic, partition = tp.topic, tp.partition
            if partition not in owned:
                continue
            self.partitions.engine_for(partition)
            self.metrics.events_in.labels(topic).inc(len(batch))
            applied = self.offsets.applied.get((topic, partition), -1)
            at = polled.get(tp, 0)
            for record in batch:
                if record.offset <= applied:
                    continue  # applied before a restart; its effects are already in the table
                raw = record.value if isinstance(record.value, bytes) else b""
                if topic == identity:
                    handoff = decode_handoff(raw)
                    push(partition, topic, getattr(handoff, "ts", None), (record, handoff), at)
                    continue
                decoded = decode(raw, limits=limits, latest=latest)
                push(partition, topic, None if isinstance(decoded, BadEvent) else decoded.instant,
                     (record, decoded), at)
            self.offsets.received[topic, partition] = batch[-1].offset
        self.offsets.read_to((tp.topic, tp.partition, at) for tp, at in (positions or {}).items()
                             if tp.partition in owned)
        self.progress.clear()
        await self._apply_released(started)

    async def _apply_released(self, started: float) -> None:
        assert self.producer is not None
        identity = self.settings.identity_topic
        wall, now = self.clocks.wall(), self.clocks.monotonic()
        outbox = self.outbox
        in_slice = 0
        for partition in sorted(self.aligner.partitions()):
            engine = self.partitions.engine_for(partition)
            with self.partitions.writing(partition):
                applied = 0
                for record, decoded in self.aligner.release(partition, wall, self.identity.held, now):
                    if record.topic == identity:
                        self.identity.receive_message(partition, engine, record, decoded)
                    else:
                        self.identity.apply_message(partition, engine, record, decoded)
                    self.offsets.applied[record.topic, partition] = record.offset
                    applied += 1
                    in_slice += 1
                    if in_slice == SLICE:
                        # Let the slice's output go out and the next fetch come in.
                        self.metrics.events_applied.inc(in_slice)
                        self.metrics.batch_seconds.observe(time.perf_counter() - started)
                        await outbox.send(self.producer)
                        await asyncio.sleep(0)
                        started, in_slice = time.perf_counter(), 0
            if applied:
                self.idle.saw_input(partition, now)
        self.metrics.events_applied.inc(in_slice)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        await outbox.send(self.producer)
        self.commits.maybe()

    # --- commits ------------------------------------------------------------------------------

    async def _commit_now(self) -> None:
        """Wait for the running commit, then commit everything applied so far."""
        await self.commits.wait()
        assert self.producer is not None
        await self.outbox.send(self.producer)
        await self.commits.now()

    def _uncommitted(self) -> bool:
        return bool(self.outbox.in_flight) or self.partitions.dirty() or bool(self.offsets.moved())

    def _checkpoint(self) -> Checkpoint:
        return Checkpoint.take(self.outbox.take_in_flight(), self.partitions.views.items(), self.offsets,
                               self.partitions.moved_clocks(), self.partitions.take_marks())

    async def _commit(self, checkpoint: Checkpoint) -> None:
        assert self.writes is not None
        await checkpoint.commit(self.writes, self.tables.progress, self.app.consumer, self.offsets,
                                self.partitions.writing)
        self.partitions.recorded_clocks.update(checkpoint.clocks)
        self.partitions.measure(self.metrics)

    # --- time ---------------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Idle partitions' clocks move up to the wall clock, so deadlines fire on time. And
        whatever waits for a commit gets one within ``commit_interval``."""
        if self.producer is None or self.stopping or self.app.rebalancing:
            return
        async with self.lock:
            if self.stopping or self.app.rebalancing:
                return  # settled for the rebalance: nothing new until the partitions are back
            self.progress.clear()
            if self.aligner.buffered:
                await self._apply_released(time.perf_counter())
            now = self.clocks.monotonic()
            idle = [p for p in self.partitions.engines if self.idle.idle(p, now) and not self.aligner.holds(p)
                    and self.progress.read_to_end(p, self.source_topics)]
            if idle:
                for change in self.partitions.tick(idle, int(self.clocks.wall() * SECOND)):
                    self.outbox.change(change)
            self.metrics.clock_step.set(self.clocks.step())
            if self.outbox.records:
                await self.outbox.send(self.producer)
            self.commits.maybe()
            for tp, behind in self.progress.lag():
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(behind)


async def _read(reader: SourceReader, inbox: asyncio.Queue[Fetch]) -> None:
    """Fetch after fetch into the inbox, which holds a few: the pipeline sets the pace."""
    while True:
        fetch = await reader.fetch()
        if fetch.records or fetch.positions:
            await inbox.put(fetch)


async def _next_fetch(inbox: asyncio.Queue[Fetch], reading: asyncio.Task[None]) -> Fetch:
    """The next fetch; or the reader's error, which is the pipeline's and stops the worker
    rather than leaving it waiting."""
    if not inbox.empty():
        return inbox.get_nowait()
    got = asyncio.ensure_future(inbox.get())
    await asyncio.wait((got, reading), return_when=asyncio.FIRST_COMPLETED)
    if not got.done():
        got.cancel()
        reading.result()
    return got.result()
