"""One-off readers of topics, with no consumer group: from the beginning, committed records only.

What the worker and the commands read whole or up to a point besides the pipeline: the
deployments topic, the tables' changelogs (compacted: the latest value of every key), the
memberships topic, and the input topics' history for new windows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from streams.live.settings import WorkerSettings


def reader(settings: WorkerSettings, **options: Any) -> AIOKafkaConsumer:
    """A consumer of no group, from the earliest offset, of committed records only."""
    return AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            isolation_level="read_committed", **options, **settings.kafka_security())


async def read_compacted(settings: WorkerSettings, topic: str) -> dict[str, bytes]:
    """The latest value of every key of a topic (all partitions), tombstones applied."""
    consumer = reader(settings)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return {}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        values: dict[str, bytes] = {}
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            for _tp, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                for record in records:
                    key = record.key.decode(errors="replace") if record.key else ""
                    if record.value is None:
                        values.pop(key, None)
                    else:
                        values[key] = record.value
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
        return values
    finally:
        await consumer.stop()


async def read_history(settings: WorkerSettings, until: dict[tuple[str, int], int]
                       ) -> AsyncIterator[tuple[str, int, bytes]]:
    """(topic, partition, value) of every message from the beginning of each topic partition
    up to the offset ``until`` gives for it, included."""
    wanted = {TopicPartition(t, p): offset for (t, p), offset in until.items() if offset >= 0}
    if not wanted:
        return
    consumer = reader(settings, max_poll_records=5000)
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        left = dict(wanted)
        while left:
            for tp, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                for record in records:
                    if record.offset <= wanted[tp] and record.value is not None:
                        yield tp.topic, tp.partition, record.value
                if (records and records[-1].offset >= wanted[tp]) or await consumer.position(tp) > wanted[tp]:
                    left.pop(tp, None)
                    consumer.pause(tp)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
