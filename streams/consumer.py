"""faust's Kafka consumer, with a batch path for the worker's own topics.

faust hands every message to its streams one at a time: a ``Message`` and an ``Event`` object,
a task per message to race the callback against flow control, acks and sensors. That is some
100 µs of CPU per message, twenty times the segmentation work itself, and it caps a worker at a
few thousand events a second. The records aiokafka fetched arrive as a batch per partition
anyway, so this consumer passes the batch of each of the worker's topics, as fetched, to a
:class:`BatchSink` in one call. Every other topic (the tables' changelogs, read while faust
recovers them) still takes faust's own path.

Everything else stays faust's: group membership and assignment, pausing partitions while their
tables recover and seeking to the committed offsets afterwards, flow control on rebalance,
standby replicas. The sink commits the offsets of what it has made durable itself (faust only
commits what its streams acked, and nothing here is acked), and faust asks it to settle before
it waits for its streams to finish, on rebalance and on shutdown.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Protocol

from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

Batch = dict[TP, list[ConsumerRecord]]


class BatchSink(Protocol):
    batch_topics: frozenset[str]

    async def take(self, records: Batch) -> None:
        """Accept one fetch's records of the batch topics; may wait (back-pressure)."""

    async def settle(self) -> None:
        """Make everything taken so far durable and commit its offsets: partitions are about to
        move, or the worker to stop."""


class BatchConsumer(faust_aiokafka.Consumer):
    sink: ClassVar[BatchSink]

    async def _drain_messages(self, fetcher: Any) -> None:
        """faust's fetch loop (started by its ``Fetcher`` service), batch-wise for the sink's topics."""
        sink = self.sink
        batch_topics = sink.batch_topics
        per_message = self.callback
        read_offset = self._read_offset
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                generation = self.app.consumer_generation_id
                records, active = await self._wait_next_records(1.0)
                await asyncio.sleep(0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    # A rebalance began while the fetch was out: these records may belong to
                    # partitions that are moving. Nothing of them was taken, so go back to the
                    # committed offsets, as faust does.
                    await self.perform_seek()
                    continue
                batch: Batch = {}
                for tp, tp_records in records.items():
                    if not tp_records or (active is not None and tp not in active
                                          and tp not in self._buffered_partitions):
                        continue
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    if tp.topic in batch_topics:
                        batch[tp] = tp_records
                        read_offset[tp] = tp_records[-1].offset
                        continue
                    for record in tp_records:
                        last = read_offset[tp]
                        if last is not None and record.offset < last:
                            continue
                        await self.wait_first(per_message(self._to_message(tp, record)),
                                              self.suspend_flow.wait())
                        read_offset[tp] = record.offset
                if batch:
                    await sink.take(batch)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def wait_empty(self) -> None:
        await self.sink.settle()
        await super().wait_empty()


def consumer_class(sink: BatchSink) -> type[BatchConsumer]:
    """A consumer class bound to ``sink``: faust's transport instantiates its consumer itself."""
    return type("BatchConsumer", (BatchConsumer,), {"sink": sink})
