"""Putting events on Kafka the way docs/contract.md, Input events says producers do: by type to the clickstream,
transactions or profiles topic, keyed by customer id (or visitor id before login).

Used by ``segmenter simulate --kafka``, the demo, the tests and the benchmarks. Lines that are
not valid events still go out (to the clickstream topic), since the worker must meet them too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from streams.model.events import PROFILE_TYPES, TRANSACTION_TYPES


class _Routing(msgspec.Struct):
    type: Any = None
    customer_id: Any = None
    anonymous_id: Any = None


_routing = msgspec.json.Decoder(_Routing)


def route(raw: bytes, topics: tuple[str, str, str]) -> tuple[str, bytes | None]:
    """(topic, key) for one JSON line; ``topics`` is (clickstream, transactions, profiles)."""
    try:
        head = _routing.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # not ours to judge: the worker dead-letters it
        return topics[0], None
    key = head.customer_id if isinstance(head.customer_id, str) else head.anonymous_id
    topic = topics[1] if head.type in TRANSACTION_TYPES else topics[2] if head.type in PROFILE_TYPES else topics[0]
    return topic, key.encode() if isinstance(key, str) else None


async def produce(lines: Iterable[bytes], *, bootstrap_servers: str, topics: tuple[str, str, str],
                  rate: float | None = None, on_progress: Callable[[int], None] | None = None,
                  ordered: bool = False, **kafka: Any) -> int:
    """Send every line; at ``rate`` events per second when given, else as fast as possible.

    The producer sends each partition's batch when it is full or old enough, so the broker may
    get a ``clickstream`` batch before a ``profiles`` batch holding earlier events: a worker
    reading meanwhile sees the profile late, as it would from independent producers. With
    ``ordered``, what went to one topic is acknowledged before anything goes to another, so the
    broker holds the events across topics in the order given and a live feed gives exactly
    what replay does (slower: a round trip at each change of topic).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True,
                                linger_ms=0 if ordered else 10, max_batch_size=1 << 20, **kafka)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()  # a failed start leaves a client to close
        raise
    sent = 0
    started = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    last_topic = None
    try:
        for line in lines:
            raw = line.rstrip(b"\r\n")
            if not raw:
                continue
            topic, key = route(raw, topics)
            if ordered and topic != last_topic and pending:
                await asyncio.gather(*pending)
                pending.clear()
            last_topic = topic
            pending.append(await producer.send(topic, raw, key=key))
            sent += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0.005:
                    await asyncio.sleep(ahead)
            if on_progress is not None and sent % 1000 == 0:
                on_progress(sent)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    if on_progress is not None:
        on_progress(sent)
    return sent
