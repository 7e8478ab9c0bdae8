"""What a deployment would do, judged on the live state before anything is sent.

The workers' state is in their tables' changelogs (compacted: the latest record of every
customer, alias and partition clock). :func:`preview` reads them into one engine running the
live pack, schedules the new pack on it as a worker would, fills its new windows from the
input topics' retained history, and moves the clock to the switch: the changes the deployment
itself causes (their reason names it) are what the switch will send, if nothing else happens
before it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.engine import Engine
from streams.engine.customer import event_hash
from streams.errors import SegmenterError
from streams.live.readers import read_compacted, read_history, reader
from streams.live.settings import WorkerSettings
from streams.model import state as state_codec
from streams.model.changes import ENTERED, SegmentChange
from streams.model.clock import Instant
from streams.model.events import BadEvent, decode
from streams.rules.deployments import Scheduled
from streams.rules.pack import RulePack

SAMPLE = 5


@dataclass
class Reach:
    """How far back the input topics' history reaches."""

    earliest: Instant | None = None
    """The earliest event time retained on a partition that has lost older messages (None:
    every partition still holds its first message)."""


@dataclass
class Preview:
    at: Instant
    customers: int
    """Identified customers held."""
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    """segment -> entered/exited -> count."""
    samples: dict[str, list[SegmentChange]] = field(default_factory=dict)
    clocks: dict[int, Instant] = field(default_factory=dict)
    """partition -> its clock, as last committed."""
    reach: Reach = field(default_factory=Reach)
    history_read: int = 0

    def entries(self, segment: str) -> int:
        return self.counts.get(segment, Counter())[ENTERED]

    def plain(self) -> dict[str, dict[str, int]]:
        return {segment: dict(counts) for segment, counts in sorted(self.counts.items())}


def changelog(settings: WorkerSettings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


async def history_reach(settings: WorkerSettings) -> Reach:
    """The earliest event time on input partitions whose oldest messages are deleted."""
    consumer = reader(settings)
    await require_inputs(settings)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in settings.input_topics for p in range(settings.partitions)]
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        lost = [tp for tp in tps if starts[tp] > 0 and ends[tp] > starts[tp]]
        earliest = None
        if lost:
            consumer.assign(lost)
            for tp in lost:
                consumer.seek(tp, starts[tp])
            for records in (await consumer.getmany(*lost, timeout_ms=5000)).values():
                if records and records[0].value:
                    first = decode(records[0].value)
                    if not isinstance(first, BadEvent):
                        earliest = max(earliest or first.instant, first.instant)
        return Reach(earliest)
    finally:
        await consumer.stop()


async def require_inputs(settings: WorkerSettings) -> None:
    """The input topics exist, with the workers' number of partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **settings.kafka_security())
    await admin.start()
    try:
        present = set(await admin.list_topics())
        missing = [t for t in settings.input_topics if t not in present]
        if missing:
            raise SegmenterError(f"input topic {missing[0]!r} not found on {settings.bootstrap_servers}: give "
                                 f"the workers' settings (SEGMENTER_* variables, --app-id)")
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(settings.input_topics)}
    finally:
        await admin.close()
    for topic, found in described.items():
        if found != settings.partitions:
            raise SegmenterError(f"input topic {topic!r} has {found} partitions, not {settings.partitions}: "
                                 f"set --partitions (or SEGMENTER_PARTITIONS) as on the workers")


async def preview(settings: WorkerSettings, live: RulePack, new: Scheduled) -> Preview:
    """The deployment judged on the state in the changelogs."""
    states = {key: state_codec.decode(raw) for key, raw in
              (await read_compacted(settings, changelog(settings, "customers"))).items()}
    aliases = {key: raw.decode() for key, raw in
               (await read_compacted(settings, changelog(settings, "aliases"))).items()}
    progress = await read_compacted(settings, changelog(settings, "progress"))
    clocks = {int(key.split("#")[1]): int(raw) for key, raw in progress.items() if key.startswith("clock#")}
    engine = Engine(live, states=states, aliases=aliases, deployments=[new])
    result = Preview(new.at, sum(1 for s in states.values() if s.identified), clocks=clocks)
    if engine.needs_history():
        result.reach = await history_reach(settings)
        seen: set[int] = set()
        async for raw in _all_input(settings):
            result.history_read += 1
            event = decode(raw)
            if isinstance(event, BadEvent) or event_hash(event.event_id) in seen:
                continue
            key = event.customer_id or aliases.get(event.anonymous_id or "", event.anonymous_id or "")
            if engine.prefill(key, event):
                seen.add(event_hash(event.event_id))
    for change in engine.advance(new.at, inclusive=False):
        if "deployment" in change.reason:
            result.counts.setdefault(change.segment, Counter())[change.change] += 1
            sample = result.samples.setdefault(change.segment, [])
            if len(sample) < SAMPLE:
                sample.append(change)
    return result


async def _all_input(settings: WorkerSettings) -> AsyncIterator[bytes]:
    """Every message of the input topics, up to their ends now."""
    consumer = reader(settings)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in settings.input_topics for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    async for _topic, _partition, raw in read_history(settings, {(tp.topic, tp.partition): end - 1
                                                                for tp, end in ends.items()}):
        yield raw
