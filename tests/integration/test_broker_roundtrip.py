"""The local broker carries keyed JSON events end to end: keys, values and per-key order.

Events are encoded with msgspec (as the producers of the product do) and read back with
both orjson and msgspec, through a 3-partition topic, so that keys spread over partitions.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

PARTITIONS = 3
CUSTOMERS = [f"c-{n}" for n in range(6)]
EVENTS_PER_CUSTOMER = 5
TIMEOUT_S = 60


class PageView(msgspec.Struct, kw_only=True):
    event_id: str
    type: str
    customer_id: str
    ts: str
    properties: dict[str, str] = {}


def make_events() -> list[PageView]:
    # Interleaved: c-0 #0, c-1 #0, ..., c-0 #1, ... so that order within a key matters.
    return [
        PageView(
            event_id=f"{customer}-{seq}",
            type="page_view",
            customer_id=customer,
            ts=f"2026-01-01T00:00:{seq:02d}Z",
            properties={"page_type": "pricing", "url": f"/pricing?seq={seq}"},
        )
        for seq in range(EVENTS_PER_CUSTOMER)
        for customer in CUSTOMERS
    ]


async def produce(bootstrap: str, topic: str, events: list[PageView]) -> dict[str, set[int]]:
    """Sends the events keyed by customer id; returns the partitions each key went to."""
    encoder = msgspec.json.Encoder()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        pending = [
            await producer.send(topic, key=e.customer_id.encode(), value=encoder.encode(e))
            for e in events
        ]
        sent = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    partitions: dict[str, set[int]] = defaultdict(set)
    for event, meta in zip(events, sent, strict=True):
        partitions[event.customer_id].add(meta.partition)
    return partitions


async def consume(
    bootstrap: str, topic: str, group_id: str, expected: int
) -> list[tuple[int, bytes, bytes]]:
    """Reads ``expected`` records from the start as (partition, key, value), then checks
    that nothing more arrives."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[tuple[int, bytes, bytes]] = []
    try:
        while len(records) < expected:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, messages in sorted(batches.items(), key=lambda item: item[0].partition):
                for m in messages:
                    assert m.key is not None and m.value is not None
                    records.append((tp.partition, m.key, m.value))
        extra = await consumer.getmany(timeout_ms=500)
        assert not any(extra.values()), f"more records than produced: {extra}"
    finally:
        await consumer.stop()
    return records


def test_keyed_events_round_trip_in_order_per_key(
    kafka_bootstrap: str, new_topic: Callable[..., str], new_group_id: Callable[[], str]
) -> None:
    topic = new_topic(partitions=PARTITIONS)
    events = make_events()

    async def scenario() -> tuple[dict[str, set[int]], list[tuple[int, bytes, bytes]]]:
        sent = await produce(kafka_bootstrap, topic, events)
        received = await consume(kafka_bootstrap, topic, new_group_id(), len(events))
        return sent, received

    sent_partitions, received = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT_S))

    # Every key went to exactly one partition, and more than one partition is in use.
    assert all(len(p) == 1 for p in sent_partitions.values()), sent_partitions
    assert len(set().union(*sent_partitions.values())) > 1, sent_partitions

    decoder = msgspec.json.Decoder(PageView)
    by_key: dict[str, list[PageView]] = defaultdict(list)
    for partition, key, value in received:
        event = decoder.decode(value)
        assert orjson.loads(value) == msgspec.to_builtins(event)
        assert key.decode() == event.customer_id
        assert {partition} == sent_partitions[event.customer_id]
        by_key[event.customer_id].append(event)

    expected: dict[str, list[PageView]] = defaultdict(list)
    for e in events:
        expected[e.customer_id].append(e)
    assert by_key == expected
