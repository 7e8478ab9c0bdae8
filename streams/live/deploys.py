"""Rule deployments on Kafka: the ``rule-deployments`` topic, and history for new windows.

The topic (compacted, one partition, one record per deployment, keyed by its id) is the
history of what was live when. A worker reads it whole before it starts, and records its own
pack as the ``initial`` deployment when it finds none; then it follows the topic, so a pack
deployed while it runs goes live without a restart, and a worker that joins later runs the
same history of packs (:class:`Follower`).

A pending pack that adds a window needs the events before it was known:
:func:`streams.live.readers.read_history` brings them back for the engines to count
(:meth:`streams.engine.Engine.prefill`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from streams.live.readers import reader
from streams.live.settings import WorkerSettings
from streams.rules import deployments
from streams.rules.deployments import INITIAL, Deployment

log = logging.getLogger("segmenter.deploys")


async def ensure_topic(settings: WorkerSettings) -> None:
    """The deployments topic, created if missing: compacted, one partition, nothing deleted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **settings.kafka_security())
    await admin.start()
    try:
        if settings.deployments_topic not in set(await admin.list_topics()):
            await admin.create_topics([deployments_topic(settings)])
    finally:
        await admin.close()


def deployments_topic(settings: WorkerSettings) -> NewTopic:
    return NewTopic(settings.deployments_topic, 1, 1,
                    topic_configs={"cleanup.policy": "compact", "retention.ms": "-1"})


async def read_all(settings: WorkerSettings) -> list[Deployment]:
    """Every deployment on the topic (the latest record of each id), in the order they were made."""
    await ensure_topic(settings)
    consumer = reader(settings)
    await consumer.start()
    try:
        return [d for d, _ in await _read_to_end(consumer, TopicPartition(settings.deployments_topic, 0))]
    finally:
        await consumer.stop()


async def _read_to_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> list[tuple[Deployment, int]]:
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    end = (await consumer.end_offsets([tp]))[tp]
    found: dict[str, tuple[Deployment, int]] = {}
    while await consumer.position(tp) < end:
        for records in (await consumer.getmany(tp, timeout_ms=500)).values():
            for record in records:
                found.pop(record.key.decode(errors="replace") if record.key else "", None)
                if record.value is not None:
                    deployment = _decode(record.value, record.offset)
                    if deployment is not None:
                        found[deployment.id] = (deployment, record.offset)
    return list(found.values())


def _decode(raw: bytes, offset: int) -> Deployment | None:
    try:
        return deployments.decode(raw)
    except Exception as exc:  # a record no worker can use must not stop every worker
        log.error("rule-deployments offset %d: not a deployment, skipped: %s", offset, exc)
        return None


async def publish(settings: WorkerSettings, deployment: Deployment) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                enable_idempotence=True, **settings.kafka_security())
    await producer.start()
    try:
        await producer.send_and_wait(settings.deployments_topic, deployments.encode(deployment),
                                     key=deployment.id.encode(), partition=0)
    finally:
        await producer.stop()


async def history_at_start(settings: WorkerSettings, rules: str) -> list[Deployment]:
    """The deployments so far; when there are none, the pack in ``rules`` is recorded as the
    initial one, live from the beginning of time."""
    found = await read_all(settings)
    if not found:
        initial = deployments.of_folder(rules, 0, by="worker", note=f"the pack the first worker started with ({rules})")
        initial = Deployment(**{**_fields(initial), "id": INITIAL})
        await publish(settings, initial)
        found = await read_all(settings)
    return found


def _fields(deployment: Deployment) -> dict[str, Any]:
    return {name: getattr(deployment, name) for name in deployment.__struct_fields__}


class Follower:
    """Follows the topic while the worker runs: each new deployment, once."""

    def __init__(self, settings: WorkerSettings, known: Iterable[Deployment]) -> None:
        self.settings = settings
        self.known = {d.id for d in known}
        self.tp = TopicPartition(settings.deployments_topic, 0)

    async def follow(self) -> AsyncIterator[Deployment]:
        consumer = reader(self.settings)
        await consumer.start()
        try:
            consumer.assign([self.tp])
            await consumer.seek_to_beginning(self.tp)
            while True:
                for records in (await consumer.getmany(self.tp, timeout_ms=1000)).values():
                    for record in records:
                        if record.value is None:
                            continue
                        deployment = _decode(record.value, record.offset)
                        if deployment is not None and deployment.id not in self.known:
                            self.known.add(deployment.id)
                            yield deployment
        finally:
            await consumer.stop()
