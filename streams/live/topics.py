"""The worker's topics, created before faust starts: input, output, internal and changelogs.

faust would create the changelogs itself just before it subscribes, but when the broker's
metadata lags behind, the consumer then sees 0 partitions and the first table write fails with
``PartitionsMismatch``. Created here, with the cleanup policy faust gives them, they are
settled in time. Customers are placed on partitions by key, so every input topic must have the
configured number of partitions: a mismatch is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.errors import SegmenterError
from streams.live.deploys import deployments_topic
from streams.live.settings import WorkerSettings
from streams.rules.pack import RulePack

TOPIC_ALREADY_EXISTS = 36
"""Kafka's error code for a topic created meanwhile (by another worker)."""


def wanted_topics(settings: WorkerSettings, app: faust.App) -> dict[str, NewTopic]:
    """Every topic the worker reads or writes, the changelogs of ``app``'s tables included."""
    s = settings
    wanted = {t: NewTopic(t, s.partitions, 1) for t in [*s.input_topics, s.changes_topic]}
    # Current memberships: compacted, so it keeps the latest record of each customer and segment.
    wanted[s.memberships_topic] = NewTopic(s.memberships_topic, s.partitions, 1,
                                           topic_configs={"cleanup.policy": "compact"})
    # What carries customer data besides the tables is kept only so long: an erased customer is
    # gone from it within its retention (docs/worker.md, Erasure).
    for topic, retention in ((s.identity_topic, s.identity_retention),
                             (s.dead_letter_topic, s.dead_letter_retention)):
        wanted[topic] = NewTopic(topic, s.partitions, 1, topic_configs={"retention.ms": str(int(retention * 1000))})
    # Every deployment is kept (one record per id, never deleted): the history of what was live.
    wanted[s.deployments_topic] = deployments_topic(s)
    tables: Any = app.tables
    for table in tables.values():
        topic = table.changelog_topic
        policies = [name for name, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
        config = {"cleanup.policy": ",".join(sorted(policies))} if policies else {}
        name = topic.get_topic_name()
        wanted[name] = NewTopic(name, topic.partitions or s.partitions, 1, topic_configs=config)
    return wanted


async def ensure_topics(settings: WorkerSettings, app: faust.App) -> list[str]:
    """Create the missing topics of :func:`wanted_topics`; return the names created."""
    s = settings
    wanted = wanted_topics(s, app)
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
        await _create(admin, missing)
        return [new.name for new in missing]
    finally:
        await admin.close()


def pack_topics(settings: WorkerSettings, packs: Iterable[RulePack]) -> list[str]:
    """The topics a pack sends to beside the worker's own: each channel's, and with
    ``segment_topics`` each segment's."""
    topics = {settings.activation_topic(c) for p in packs for c in p.activation.channels}
    if settings.segment_topics:
        topics |= {settings.segment_topic(r.name) for p in packs for r in p.rules}
    return sorted(topics)


async def ensure_pack_topics(settings: WorkerSettings, packs: Iterable[RulePack]) -> list[str]:
    """Create the missing :func:`pack_topics`, so nothing is sent to a topic the worker did not
    create; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **settings.kafka_security())
    await admin.start()
    try:
        present = set(await admin.list_topics())
        missing = [NewTopic(t, settings.partitions, 1) for t in pack_topics(settings, packs) if t not in present]
        await _create(admin, missing)
        return [new.name for new in missing]
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> None:
    if topics:
        response = await admin.create_topics(topics)
        for topic, code, *_ in getattr(response, "topic_errors", []):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise SegmenterError(f"could not create topic {topic!r}: Kafka error {code}")
