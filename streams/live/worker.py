"""The live driver: the engine on Kafka, as a faust app.

faust does what it does well: consumer-group membership and partition assignment, tables
with changelogs restored on rebalance (RocksDB by default), standby replicas, the web server
and timers. The hot path does not go through faust's per-message stream machinery: once the
tables of its partitions are recovered, the worker reads the source topics with a consumer of
its own (:mod:`streams.live.source`, :mod:`streams.live.group`), and one
:class:`~streams.engine.Engine` per partition (its clock is the partition's event time)
applies each fetch. The segment changes, dead letters and identity hand-offs of a batch are sent at
once. Every ``commit_interval`` seconds, and before partitions move or the worker stops, a
commit makes it all durable, in this order:

1. the sends so far are awaited (acks=all, idempotent producer),
2. each customer changed since the last commit is written once to its table and changelog
   (:mod:`streams.live.changelog`), and awaited,
3. the partitions' last applied offsets are written to the ``progress`` table, and awaited,
4. the input offsets are committed to the consumer group.

A crash before 2 re-reads the events and re-sends their changes with the same change_ids
(at-least-once: consumers drop them by id); a crash between 2 and 4 re-reads events that the
customers' recorded positions skip. No offset is committed before its effects are durable,
and one bad message is a dead letter, never a stopped worker.

Identity: events are keyed by customer id, or by visitor id before login, so a visitor's record
and its customer's may live on different partitions. An ``identify`` (keyed by customer) goes
to the visitor's partition through the internal ``<app_id>-identity`` topic as a *link*; that
partition records the alias, removes the visitor's record and sends it back as a *merge* to
the customer's partition, which applies the ``identify``. Later visitor-only events are
*routed* to the customer the same way, and erasure sends an *unlink*.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.serializers import codecs
from faust.types import TP

from streams.engine import Engine
from streams.errors import SegmenterError
from streams.live.alignment import BEHIND, CAUGHT_UP, UNKNOWN, Aligner
from streams.live.changelog import ChangelogWrites
from streams.live.group import consumer_class
from streams.live.metrics import Metrics
from streams.live.settings import WorkerSettings
from streams.live.source import Batch, Fetch, SourceReader
from streams.live.views import MirroredView, PartitionView, in_partition, partition_of
from streams.model import state as state_codec
from streams.model.changes import SegmentChange
from streams.model.changes import encode as encode_change
from streams.model.clock import SECOND
from streams.model.events import BadEvent, Envelope, decode, type_of
from streams.model.state import CustomerState
from streams.rules.pack import RulePack

log = logging.getLogger("segmenter.worker")

SLICE = 100
"""Events applied between two yields to the event loop (the producer's sender, the fetch loop)."""


class _Utf8Codec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, s: bytes) -> Any:
        return s.decode()


codecs.register("segmenter-utf8", _Utf8Codec())


# --- identity hand-offs between partitions ------------------------------------------------------


class Link(msgspec.Struct, tag="link"):
    anon: str
    customer: str
    event: bytes
    ts: int
    """Event time of the carried event: hand-offs take their turn in event-time order."""


class Merge(msgspec.Struct, tag="merge"):
    anon: str
    customer: str
    state: bytes | None
    event: bytes
    ts: int
    """Event time of the carried event: hand-offs take their turn in event-time order."""


class Route(msgspec.Struct, tag="route"):
    customer: str
    event: bytes
    ts: int
    """Event time of the carried event: hand-offs take their turn in event-time order."""


class Unlink(msgspec.Struct, tag="unlink"):
    anon: str


Handoff = Link | Merge | Route | Unlink
_handoff_encoder = msgspec.msgpack.Encoder()
_handoff_decoder = msgspec.msgpack.Decoder(Handoff)


def _position(message: Any) -> tuple[str, int]:
    return f"{message.topic}#{message.partition}", message.offset


def _decode_handoff(raw: bytes) -> Handoff | None:
    try:
        return _handoff_decoder.decode(raw)
    except msgspec.DecodeError:
        return None


def _decode_utf8(raw: bytes) -> str:
    return raw.decode()


def _encode_int(value: int) -> bytes:
    return str(value).encode()


class AliasView(PartitionView[str]):
    """Visitor -> customer aliases of one partition. An alias of a visitor kept on another
    partition is that partition's to change: removing it there is an :class:`Unlink` hand-off."""

    def __init__(self, table: Any, partition: int, partitions: int, outbox: Outbox) -> None:
        super().__init__(table, partition, partitions, encode=str.encode, decode=_decode_utf8)
        self.outbox = outbox

    def __setitem__(self, key: str, value: str) -> None:
        if self.local(key):
            super().__setitem__(key, value)

    def pop(self, key: str, default: Any = None) -> Any:
        if not self.local(key):
            self.outbox.handoff(key, Unlink(key))
            return default
        value = self.get(key)
        if value is not None:
            del self[key]
        return value if value is not None else default


class Outbox:
    """What the batches produce: sent as soon as a batch is applied, awaited at the commit."""

    def __init__(self, settings: WorkerSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.records: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]] = []
        self.in_flight: list[asyncio.Future[Any]] = []

    def change(self, change: SegmentChange) -> None:
        value = encode_change(change)
        key = change.customer_id.encode()
        topic = self.settings.changes_topic
        self.records.append((topic, key, value, None))
        if self.settings.segment_topics:
            self.records.append((f"{topic}.{change.segment}", key, value, None))
        if self.settings.channel_topics:
            consent = change.consent
            for channel, granted in (("email", consent.email), ("sms", consent.sms), ("push", consent.push)):
                if granted:
                    self.records.append((f"{topic}.{channel}", key, value, None))
        self.metrics.changes.labels(change.segment, change.change).inc()

    def dead_letter(self, message: Any, reason: str) -> None:
        headers = [
            ("segmenter-reason", reason.encode()),
            ("segmenter-source-topic", str(message.topic).encode()),
            ("segmenter-source-partition", str(message.partition).encode()),
            ("segmenter-source-offset", str(message.offset).encode()),
        ]
        raw = message.value if isinstance(message.value, bytes) else b""
        self.records.append((self.settings.dead_letter_topic, message.key, raw, headers))
        self.metrics.bad_events.labels(message.topic).inc()

    def handoff(self, key: str, handoff: Handoff) -> None:
        self.records.append((self.settings.identity_topic, key.encode(), _handoff_encoder.encode(handoff), None))

    async def send(self, producer: AIOKafkaProducer) -> None:
        """Hand the records to the producer, which batches them per partition; don't wait."""
        for topic, key, value, headers in self.records:
            self.in_flight.append(await producer.send(topic, value, key=key, headers=headers))
        self.records.clear()

    def take_in_flight(self) -> list[asyncio.Future[Any]]:
        """The sends so far, for a commit to wait on."""
        futures, self.in_flight = self.in_flight, []
        return futures


@dataclass
class Snapshot:
    """What one commit makes durable, taken between two batches."""

    sent: list[asyncio.Future[Any]]
    records: list[tuple[int, PartitionView[Any], list[str]]]
    """(partition, view, its changed keys)"""
    offsets: dict[tuple[str, int], int]
    """(topic, partition) -> last applied offset, where it moved since the last commit."""


class Worker:
    """The faust app and the batch pipeline around one Engine per owned partition."""

    def __init__(self, settings: WorkerSettings, pack: RulePack) -> None:
        self.settings = settings
        self.pack = pack
        self.metrics = Metrics()
        self.app = self._make_app()
        self.customers = self._table("customers", "raw")
        self.aliases = self._table("aliases", "raw")
        self.progress = self._table("progress", "segmenter-utf8")
        self.erasures = self._table("erasures", "raw")
        """Erased customers and when, within the allowed lateness (the engine's ``erased``)."""
        self.source_topics = [*settings.input_topics, settings.identity_topic]
        # Subscribes the consumer group to the source topics, so they are assigned; the
        # worker's own reader fetches them.
        self.subscription = faust.Topic(self.app, topics=self.source_topics, key_serializer="raw",
                                        value_serializer="raw")
        self.inbox: asyncio.Queue[Fetch] = asyncio.Queue(maxsize=4)
        self.reader: SourceReader | None = None
        self.to_read: dict[TP, int | None] | None = None
        """Where to read from, decided before the reader was started."""
        self.engines: dict[int, Engine] = {}
        self.views: dict[int, tuple[PartitionView[Any], ...]] = {}
        """partition -> the table views its engine writes to, which each commit writes back."""
        self.applied: dict[tuple[str, int], int] = {}
        """(topic, partition) -> offset of the last message applied."""
        self.recorded: dict[tuple[str, int], int] = {}
        """(topic, partition) -> the offset the last commit recorded (``progress`` and the group)."""
        self.received: dict[tuple[str, int], int] = {}
        self.progressed: dict[tuple[str, int], tuple[int, int]] = {}
        """(topic, partition) -> (CAUGHT_UP, BEHIND or UNKNOWN; when its latest fetch response
        arrived), for the aligner; worked out once per fetch."""
        self.awaiting_merge: set[str] = set()
        """Customers (and their visitor ids) whose identify went out as a Link and is not back yet."""
        self.aligner = Aligner(self.source_topics, self._progress, max_wait=settings.align_wait,
                               max_wait_behind=30.0, max_buffered=50 * settings.batch_max,
                               bypass=settings.identity_topic)
        self.outbox = Outbox(settings, self.metrics)
        self.last_input: dict[int, tuple[float, int]] = {}
        """partition -> (wall time, partition clock) at its latest input, for idle ticks."""
        self.last_commit = time.monotonic()
        self.committing: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self.producer: AIOKafkaProducer | None = None
        self.writes: ChangelogWrites | None = None
        self.ready = asyncio.Event()
        self.stopping = False
        self._register()

    # --- app -------------------------------------------------------------------------------

    def _make_app(self) -> faust.App:
        s = self.settings
        Path(s.data_dir).mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {}
        if s.security_protocol != "PLAINTEXT":
            options["broker_credentials"] = self._credentials()
        app = faust.App(
            s.app_id,
            broker=[f"kafka://{server.strip()}" for server in s.bootstrap_servers.split(",")],
            store="rocksdb://" if s.store == "rocksdb" else "memory://",
            datadir=s.data_dir,
            topic_partitions=s.partitions,
            table_standby_replicas=s.standby_replicas,
            producer_acks=-1,
            consumer_auto_offset_reset="earliest",
            broker_max_poll_records=s.batch_max,
            web_enabled=True,
            web_bind=s.web_host,
            web_port=s.web_port,
            web_tables_enabled=False,  # it would serve customer data to anyone who asks
            web_graph_enabled=False,
            web_stats_enabled=False,
            web_metrics_enabled=False,
            **options,
        )
        app.transport.Consumer = consumer_class(self)  # type: ignore[misc]
        return app

    def _table(self, name: str, value_serializer: str) -> Any:
        schema: Any = faust.Schema(key_serializer="segmenter-utf8", value_serializer=value_serializer)
        table: Any = self.app.Table(name, partitions=self.settings.partitions, schema=schema)
        # faust derives a table's own serializers from key_type/value_type (JSON for anything but
        # bytes) and builds the changelog topic with them at once; ours are set here, for the
        # store, the changelog and its recovery alike.
        table.key_serializer = "segmenter-utf8"
        table.value_serializer = value_serializer
        table._changelog_topic = None
        assert table.changelog_topic.schema.value_serializer == value_serializer
        return table

    def _credentials(self) -> Any:
        s = self.settings
        security = s.kafka_security()
        if "SASL" in s.security_protocol:
            return faust.SASLCredentials(username=s.sasl_username, password=s.sasl_password,
                                         mechanism=s.sasl_mechanism, ssl_context=security.get("ssl_context"))
        return security["ssl_context"]

    def _register(self) -> None:
        app = self.app
        app.topics.add(self.subscription)
        app.task(self._pipeline)
        app.timer(self.settings.tick_interval)(self._tick)
        app.on_rebalance_complete.connect(self._on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        from streams.live import web

        web.register(self)

    # --- partitions ---------------------------------------------------------------------------

    def owned_partitions(self) -> set[int]:
        first = self.settings.clickstream_topic
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == first}

    def engine_for(self, partition: int) -> Engine:
        engine = self.engines.get(partition)
        if engine is None:
            n = self.settings.partitions
            with self.writing(partition):
                states: PartitionView[CustomerState] = PartitionView(
                    self.customers, partition, n, encode=state_codec.encode, decode=state_codec.decode)
                erased: PartitionView[int] = PartitionView(self.erasures, partition, n, encode=_encode_int,
                                                           decode=int)
                aliases = AliasView(self.aliases, partition, n, self.outbox)
                engine = Engine(self.pack, states=states, aliases=aliases, erased=MirroredView(erased))
                for topic in self.source_topics:
                    recorded = self.progress.get(f"{topic}#{partition}")
                    if recorded is not None:
                        self.applied[topic, partition] = self.recorded[topic, partition] = int(recorded)
            self.engines[partition] = engine
            self.views[partition] = (states, aliases, erased)
            log.info("partition %d: %d timers, segment sizes %s", partition, len(engine.timers),
                     dict(engine.sizes))
        return engine

    def writing(self, partition: int) -> Any:
        return in_partition(self.app, self.settings.clickstream_topic, partition)

    async def _on_assigned(self, app: Any, **_: Any) -> None:
        """The tables of the assigned partitions are recovered (or had nothing to recover):
        their engines are built, and their source topics read from where ``progress`` says."""
        async with self.lock:
            owned = self.owned_partitions()
            for partition in list(self.engines):
                if partition not in owned:
                    self._drop(partition)
            for partition in sorted(owned):
                self.engine_for(partition)
            self.metrics.partitions.set(len(owned))
            positions: dict[TP, int | None] = {}
            for partition in sorted(owned):
                for topic in self.source_topics:
                    applied = self.applied.get((topic, partition))
                    positions[TP(topic, partition)] = None if applied is None else applied + 1
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
            if self.committing is not None:
                task, self.committing = self.committing, None
                await task
            for tp in revoked:
                if tp.topic == self.settings.clickstream_topic:
                    self._drop(tp.partition)

    def _drop(self, partition: int) -> None:
        self.engines.pop(partition, None)
        self.views.pop(partition, None)
        self.aligner.drop(partition)
        self.last_input.pop(partition, None)
        for mapping in (self.applied, self.recorded, self.received):
            for key in [k for k in mapping if k[1] == partition]:
                del mapping[key]

    # --- the hot path -------------------------------------------------------------------------

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
        s = self.settings
        # No linger: a batch's output is handed over at once, so there is nothing to wait for;
        # what comes while a request is out is batched behind it anyway.
        self.producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all",
                                         enable_idempotence=True, linger_ms=0,
                                         max_batch_size=1 << 20, **s.kafka_security())
        await self.producer.start()
        self.writes = ChangelogWrites(self.producer)
        reader = SourceReader(s)
        await reader.start()
        self.reader = reader
        if self.to_read is not None:
            reader.assign(self.to_read)
            self.to_read = None
        reading = asyncio.create_task(self._read(reader))
        try:
            inbox = self.inbox
            while True:
                if inbox.empty():
                    # Wait for the next fetch, or for the reader to fail: its error is the
                    # pipeline's, and stops the worker rather than leaving it waiting.
                    got = asyncio.ensure_future(inbox.get())
                    await asyncio.wait((got, reading), return_when=asyncio.FIRST_COMPLETED)
                    if not got.done():
                        got.cancel()
                        reading.result()
                    fetch = got.result()
                else:
                    fetch = inbox.get_nowait()
                async with self.lock:
                    if self.stopping or fetch.epoch != reader.epoch:
                        # Fetched before the partitions moved: their next reader starts from
                        # what the last commit recorded.
                        continue
                    await self.handle(fetch.records, fetch.polled)
                # A queued batch would be taken without yielding: let the producer's sender and
                # the fetch loop run between two batches, or the output waits for the backlog.
                await asyncio.sleep(0)
        finally:
            reading.cancel()
            await reader.stop()
            await self.producer.stop()

    async def _read(self, reader: SourceReader) -> None:
        """Fetch after fetch into the inbox, which holds a few: the pipeline sets the pace."""
        while True:
            fetch = await reader.fetch()
            if fetch.records:
                await self.inbox.put(fetch)

    async def handle(self, records: Batch, polled: dict[Any, int]) -> None:
        """Take in one fetch; apply what alignment releases; send its output; commit when due."""
        started = time.perf_counter()
        identity = self.settings.identity_topic
        max_bytes = self.settings.max_event_bytes
        owned = self.owned_partitions()
        push = self.aligner.push
        for tp, batch in records.items():
            topic, partition = tp.topic, tp.partition
            if partition not in owned:
                continue
            self.engine_for(partition)
            self.metrics.events_in.labels(topic).inc(len(batch))
            applied = self.applied.get((topic, partition), -1)
            at = polled.get(tp, 0)
            for record in batch:
                if record.offset <= applied:
                    continue  # applied before a restart; its effects are already in the table
                raw = record.value if isinstance(record.value, bytes) else b""
                if topic == identity:
                    handoff = _decode_handoff(raw)
                    push(partition, topic, getattr(handoff, "ts", None), (record, handoff), at)
                    continue
                decoded = decode(raw, max_bytes=max_bytes)
                push(partition, topic, None if isinstance(decoded, BadEvent) else decoded.instant,
                     (record, decoded), at)
            self.received[topic, partition] = batch[-1].offset
        self.progressed.clear()
        await self._apply_released(started)

    async def _apply_released(self, started: float) -> None:
        assert self.producer is not None
        identity = self.settings.identity_topic
        wall, now = time.time(), time.monotonic()
        outbox = self.outbox
        in_slice = 0
        for partition in sorted(self.aligner.partitions()):
            engine = self.engine_for(partition)
            with self.writing(partition):
                applied = 0
                for record, decoded in self.aligner.release(partition, wall, self._held, now):
                    if record.topic == identity:
                        self._handoff(partition, engine, outbox, decoded, record)
                    else:
                        self._apply(partition, engine, outbox, record, decoded)
                    self.applied[record.topic, partition] = record.offset
                    applied += 1
                    in_slice += 1
                    if in_slice == SLICE:
                        # Let the slice's output go out and the next fetch come in: a fetch of
                        # thousands applied in one go would hold both back for tens of ms.
                        self.metrics.events_applied.inc(in_slice)
                        self.metrics.batch_seconds.observe(time.perf_counter() - started)
                        await outbox.send(self.producer)
                        await asyncio.sleep(0)
                        started, in_slice = time.perf_counter(), 0
            if applied:
                self.last_input[partition] = (wall, engine.clock or 0)
        self.metrics.events_applied.inc(in_slice)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        await outbox.send(self.producer)
        self._maybe_commit()

    def _held(self, item: tuple[Any, Any]) -> bool:
        """An event of a customer whose identify is still travelling waits for its merge, so the
        customer's events apply in the order replay applies them."""
        event = item[1]
        if not self.awaiting_merge or not isinstance(event, Envelope):
            return False
        return (event.customer_id or event.anonymous_id) in self.awaiting_merge

    def _progress(self, topic: str, partition: int) -> tuple[int, int]:
        """Whether a topic partition is read to its end, and as of the fetch response that
        arrived when (ms): :mod:`streams.live.alignment` lets a message of another topic pass only on
        a response later than the one that message came in."""
        key = (topic, partition)
        state = self.progressed.get(key)
        if state is None:
            state = self.progressed[key] = self._progress_now(key)
        return state

    def _progress_now(self, key: tuple[str, int]) -> tuple[int, int]:
        reader = self.reader
        if reader is None:
            return UNKNOWN, 0
        tp = TP(*key)
        high = reader.highwater(tp)
        if high is None:
            return UNKNOWN, 0
        read = self.received.get(key, self.applied.get(key, -1))
        # aiokafka leaves a partition whose last records are still being applied out of the
        # fetch it sends meanwhile: its latest response is then older than the others'.
        return (BEHIND if read + 1 < high else CAUGHT_UP), reader.polled_at(tp)

    def _maybe_commit(self) -> None:
        """Start a commit if one is due and none is running; surface a failed one."""
        if self.committing is not None:
            if not self.committing.done():
                return
            task, self.committing = self.committing, None
            task.result()
        if time.monotonic() - self.last_commit >= self.settings.commit_interval and self._uncommitted():
            self.committing = asyncio.create_task(self._commit(self._snapshot()))

    async def _commit_now(self) -> None:
        """Wait for the running commit, then commit everything applied so far."""
        if self.committing is not None:
            task, self.committing = self.committing, None
            await task
        await self.outbox.send(self.producer)
        await self._commit(self._snapshot())

    def _uncommitted(self) -> bool:
        return bool(self.outbox.in_flight) or any(
            view.dirty for views in self.views.values() for view in views) or bool(self._moved_offsets())

    def _moved_offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> last applied offset, where it moved since the last commit."""
        return {key: offset for key, offset in self.applied.items() if self.recorded.get(key) != offset}

    def _snapshot(self) -> Snapshot:
        records = []
        for partition, views in self.views.items():
            for view in views:
                items = view.snapshot()
                if items:
                    records.append((partition, view, items))
        return Snapshot(self.outbox.take_in_flight(), records, self._moved_offsets())

    async def _commit(self, snapshot: Snapshot) -> None:
        """Steps 1 to 4 of the module's docstring."""
        assert self.writes is not None
        writes = self.writes
        for future in snapshot.sent:
            # Most are long done: await only the rest, and raise a failed send (gathering
            # thousands of futures would hold the loop for tens of milliseconds).
            if not future.done():
                await future
            future.result()
        written = []
        for partition, view, keys in snapshot.records:
            for start in range(0, len(keys), 200):
                items = view.encoded(keys[start:start + 200])
                with self.writing(partition):
                    for key, raw in items:
                        writes.write(view.table, partition, key, raw)
                written.append((view, items))
                await asyncio.sleep(0)  # a long write-back lets the pipeline in between
        await writes.send()
        # The state must be in its changelog before the offsets that say it is there: changelog
        # topics are separate, so nothing else orders them.
        for (topic, partition), offset in snapshot.offsets.items():
            with self.writing(partition):
                writes.write(self.progress, partition, f"{topic}#{partition}", str(offset).encode())
        await writes.send()
        if snapshot.offsets:
            consumer: Any = self.app.consumer
            await consumer._commit({TP(topic, partition): offset + 1
                                    for (topic, partition), offset in snapshot.offsets.items()})
            self.recorded.update(snapshot.offsets)
        for view, items in written:
            view.written(items)
        self.last_commit = time.monotonic()
        self._gauges()

    def _apply(self, partition: int, engine: Engine, outbox: Outbox, message: Any,
               event: Envelope | BadEvent) -> None:
        if isinstance(event, BadEvent):
            outbox.dead_letter(message, event.reason)
            return
        duplicates = engine.stats.duplicates
        self._route(partition, engine, outbox, event, message.value, message)
        if engine.stats.duplicates != duplicates:
            self.metrics.duplicates.inc()

    def _route(self, partition: int, engine: Engine, outbox: Outbox, event: Envelope, raw: bytes,
               message: Any) -> None:
        n = self.settings.partitions
        tag = type_of(event)
        anon = event.anonymous_id
        if tag == "identify" and anon and anon != event.customer_id and partition_of(anon, n) != partition:
            outbox.handoff(anon, Link(anon, event.customer_id or "", raw, event.instant))
            self.awaiting_merge.update((event.customer_id or "", anon))
            return
        if event.customer_id is None and anon:
            customer = engine.aliases.get(anon)
            if customer is not None and partition_of(customer, n) != partition:
                outbox.handoff(customer, Route(customer, raw, event.instant))
                return
        self._emit(outbox, message, engine.process(event, raw, position=_position(message)))

    def _handoff(self, partition: int, engine: Engine, outbox: Outbox, handoff: Handoff | None,
                 message: Any) -> None:
        if handoff is None:
            log.error("partition %d: unreadable identity hand-off skipped", partition)
            return
        match handoff:
            case Link(anon, customer, event, ts):
                visitor = engine.states.pop(anon, None)
                engine.timers.discard(anon)
                engine.aliases[anon] = customer
                outbox.handoff(customer, Merge(anon, customer, None if visitor is None else
                                               state_codec.encode(visitor), event, ts))
            case Merge(anon, customer, state, event, _):
                self.awaiting_merge.difference_update((customer, anon))
                decoded = decode(event)
                if isinstance(decoded, Envelope):
                    visitor = None if state is None else state_codec.decode(state)
                    self._emit(outbox, None, engine.process(decoded, event, merged=(anon, visitor),
                                                                    position=_position(message)))
            case Route(customer, event, _):
                decoded = decode(event)
                if isinstance(decoded, Envelope):
                    self._emit(outbox, None, engine.process(decoded, event, key=customer,
                                                                    position=_position(message)))
            case Unlink(anon):
                engine.aliases.pop(anon, None)
                engine.states.pop(anon, None)

    def _emit(self, outbox: Outbox, message: Any, result: list[SegmentChange] | BadEvent) -> None:
        if isinstance(result, BadEvent):
            if message is not None:
                outbox.dead_letter(message, result.reason)
            return
        for change in result:
            outbox.change(change)

    # --- time ------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Idle partitions: their clock follows the wall clock, so deadlines fire on time. And
        whatever waits for a commit gets one within ``commit_interval``."""
        if self.producer is None or self.stopping or self.app.rebalancing:
            return
        async with self.lock:
            if self.stopping or self.app.rebalancing:
                return  # settled for the rebalance: nothing new until the partitions are back
            self.progressed.clear()
            if self.aligner.buffered:
                await self._apply_released(time.perf_counter())
            wall = time.time()
            for partition, engine in self.engines.items():
                last = self.last_input.get(partition)
                if last is None or wall - last[0] < self.settings.idle_after:
                    continue
                target = last[1] + int((wall - last[0]) * SECOND)
                with self.writing(partition):
                    changes = engine.tick(target)
                for change in changes:
                    self.outbox.change(change)
            if self.outbox.records:
                await self.outbox.send(self.producer)
            self._maybe_commit()
            self._lag()

    # --- topics and gauges --------------------------------------------------------------------

    async def ensure_topics(self) -> list[str]:
        """Create missing topics, the tables' changelogs included, before faust starts; return
        the names created.

        Customers are placed on partitions by key, so every input topic must have the configured
        partitions: a mismatch is refused. faust would create the changelogs itself just before
        it subscribes, but when the broker's metadata lags behind (about one start in eight on a
        fresh local broker) the consumer then sees 0 partitions and the first table write fails
        with ``PartitionsMismatch``. Created here, with the cleanup policy faust gives them,
        they are settled in time.
        """
        s = self.settings
        wanted = {t: NewTopic(t, s.partitions, 1) for t in
                  [*s.input_topics, s.identity_topic, s.changes_topic, s.dead_letter_topic]}
        for table in self.app.tables.values():
            topic = table.changelog_topic
            policies = [name for name, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
            config = {"cleanup.policy": ",".join(sorted(policies))} if policies else {}
            name = topic.get_topic_name()
            wanted[name] = NewTopic(name, topic.partitions or s.partitions, 1, topic_configs=config)
        admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap_servers, **s.kafka_security())
        await admin.start()
        try:
            present = set(await admin.list_topics())  # describe_topics could auto-create them
            existing = {t["topic"]: len(t["partitions"])
                        for t in await admin.describe_topics([t for t in wanted if t in present])}
            for topic in [*s.input_topics, s.identity_topic]:
                if topic in existing and existing[topic] != s.partitions:
                    raise SegmenterError(
                        f"topic {topic!r} has {existing[topic]} partitions but the worker is set to "
                        f"{s.partitions}; set --partitions {existing[topic]} (all input topics must agree)")
            missing = [new for name, new in wanted.items() if name not in existing]
            if missing:
                response = await admin.create_topics(missing)
                for topic, code, *_ in getattr(response, "topic_errors", []):
                    if code not in (0, 36):  # 36: created meanwhile by another worker
                        raise SegmenterError(f"could not create topic {topic!r}: Kafka error {code}")
            return [new.name for new in missing]
        finally:
            await admin.close()

    def _gauges(self) -> None:
        sizes: dict[str, int] = defaultdict(int)
        timers = 0
        for e in self.engines.values():
            timers += len(e.timers)
            for segment, size in e.sizes.items():
                sizes[segment] += size
        for segment, size in sizes.items():
            self.metrics.segment_size.labels(segment).set(size)
        self.metrics.timers.set(timers)

    def _lag(self) -> None:
        reader = self.reader
        if reader is None:
            return
        for tp in reader.assigned:
            high = reader.highwater(tp)
            done = self.applied.get((tp.topic, tp.partition))
            if high is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(high - (done + 1 if done is not None else 0), 0))

    def segment_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = defaultdict(int)
        for engine in self.engines.values():
            for segment, size in engine.sizes.items():
                sizes[segment] += size
        return dict(sorted(sizes.items()))
