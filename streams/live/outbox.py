"""What the worker sends: segment changes, dead letters and identity hand-offs.

Records are handed to the producer as soon as their batch is applied (so a change goes out
without waiting for a commit) and the sends are awaited by the next commit, which must not
record offsets whose output is not delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.live import handoffs
from streams.live.metrics import Metrics
from streams.live.settings import WorkerSettings
from streams.live.views import KeyPartitioner
from streams.model import memberships
from streams.model.activations import Activation
from streams.model.activations import encode as encode_activation
from streams.model.changes import SegmentChange
from streams.model.changes import encode as encode_change

Headers = list[tuple[str, bytes]]


def make_producer(settings: WorkerSettings) -> AIOKafkaProducer:
    """Idempotent, acks from all replicas. No linger: a batch's output is handed over at once;
    what comes while a request is out is batched behind it anyway."""
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                            enable_idempotence=True, linger_ms=0, max_batch_size=1 << 20,
                            partitioner=KeyPartitioner(), **settings.kafka_security())


class Outbox:
    """The records a batch produced, until the producer has them; then their sends, until a
    commit takes them."""

    def __init__(self, settings: WorkerSettings, metrics: Metrics,
                 activations: Callable[[], list[Activation]] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.records: list[tuple[str, bytes | None, bytes | None, Headers | None]] = []
        self.in_flight: list[asyncio.Future[Any]] = []
        self.activations = activations
        """Where activations come from (the engines): taken before each send."""

    def change(self, change: SegmentChange) -> None:
        value = encode_change(change)
        key = change.customer_id.encode()
        topic = self.settings.changes_topic
        self.records.append((topic, key, value, None))
        self.records.append((self.settings.memberships_topic, *memberships.record(change), None))
        if self.settings.segment_topics:
            self.records.append((self.settings.segment_topic(change.segment), key, value, None))
        self.metrics.changes.labels(change.segment, change.change).inc()

    def activation(self, activation: Activation) -> None:
        topic = self.settings.activation_topic(activation.channel)
        self.records.append((topic, activation.customer_id.encode(), encode_activation(activation), None))
        self.metrics.activations.labels(activation.channel, activation.action).inc()

    def dead_letter(self, message: Any, reason: str, raw: bytes | None = None) -> None:
        """The original bytes (``raw``: those of the event a hand-off carried), with the reason and
        where they were read in headers."""
        headers = [
            ("segmenter-reason", reason.encode()),
            ("segmenter-source-topic", str(message.topic).encode()),
            ("segmenter-source-partition", str(message.partition).encode()),
            ("segmenter-source-offset", str(message.offset).encode()),
        ]
        if raw is None:
            raw = message.value if isinstance(message.value, bytes) else b""
        self.records.append((self.settings.dead_letter_topic, message.key, raw, headers))
        self.metrics.bad_events.labels(message.topic).inc()

    def handoff(self, key: str, handoff: handoffs.Handoff) -> None:
        """To the partition of ``key`` (a customer or visitor id) through the identity topic."""
        self.records.append((self.settings.identity_topic, key.encode(), handoffs.encode(handoff), None))

    async def send(self, producer: AIOKafkaProducer) -> None:
        """Hand the records to the producer, which batches them per partition; don't wait."""
        if self.activations is not None:
            for activation in self.activations():
                self.activation(activation)
        for topic, key, value, headers in self.records:
            self.in_flight.append(await producer.send(topic, value, key=key, headers=headers))
        self.records.clear()

    def take_in_flight(self) -> list[asyncio.Future[Any]]:
        """The sends so far, for a commit to wait on."""
        futures, self.in_flight = self.in_flight, []
        return futures
