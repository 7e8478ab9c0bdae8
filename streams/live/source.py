"""The worker's own reader of its source topics, on the worker's event loop.

faust's consumer keeps the group (membership, assignment, the tables' changelogs and
standbys, offset commits) but does not fetch the source topics (:mod:`streams.live.group`
pauses them). This reader, a consumer with no group, is assigned the same partitions once
their tables are recovered, starts each where the ``progress`` table says it stopped, and lets
the broker hold a fetch only ``fetch_wait``: a fetch of quiet partitions held long would delay
the busy ones behind it (docs/worker.md, How it works).

Every (re)assignment starts a new *epoch*: a fetch that was out while the partitions moved
carries the old one, and the pipeline drops it unapplied.

Each fetch also says when its response arrived, for event-time alignment
(:mod:`streams.live.alignment`): a topic partition with nothing new is known to be read to its
end only by a response that came after the records it would let pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord, TopicPartition

from streams.live.settings import WorkerSettings

log = logging.getLogger("segmenter.reader")

Batch = dict[TopicPartition, list[ConsumerRecord]]


class Fetch(NamedTuple):
    epoch: int
    """The assignment it was fetched for: a batch of an older epoch is dropped unapplied."""
    records: Batch
    polled: dict[TopicPartition, int]
    """When the response each partition's records came in arrived (ms)."""
    positions: dict[TopicPartition, int]
    """Where the reader stands in each assigned partition after this fetch, where it moved: past
    the records, and past what is no record (a transaction's marker takes an offset too)."""


class SourceReader:
    def __init__(self, settings: WorkerSettings) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=int(settings.fetch_wait * 1000),
            # aiokafka fetches a broker's partitions again only once the last response is used
            # up: larger responses leave fewer gaps in which the pipeline waits for the network.
            max_partition_fetch_bytes=8 << 20,
            max_poll_records=settings.batch_max,
            **settings.kafka_security(),
        )
        self.epoch = 0
        self.assigned: frozenset[TopicPartition] = frozenset()
        self._has_work = asyncio.Event()
        self._positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    def assign(self, positions: Mapping[TopicPartition, int | None]) -> None:
        """Read these partitions, each from its offset (None: from the beginning of what the
        topic still holds). Replaces what was assigned before, positions included: whatever an
        earlier epoch fetched is read again."""
        self.epoch += 1
        tps = {TopicPartition(tp.topic, tp.partition): offset for tp, offset in positions.items()}
        self.consumer.assign(list(tps))
        for tp, offset in tps.items():
            if offset is not None:
                self.consumer.seek(tp, offset)
        self.assigned = frozenset(tps)
        self._positions = {}
        if positions:
            self._has_work.set()
        else:
            self._has_work.clear()
        log.info("reading %s", ", ".join(f"{tp.topic}#{tp.partition}@{'start' if o is None else o}"
                                         for tp, o in sorted(positions.items())) or "nothing")

    def release(self) -> None:
        """Stop reading: the partitions are about to move. What is fetched and not taken yet
        belongs to the old epoch."""
        if self.assigned:
            self.assign({})

    async def fetch(self, timeout: float = 1.0) -> Fetch:
        """The next records of the assigned partitions."""
        if not self.assigned:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._has_work.wait(), timeout)
            return Fetch(self.epoch, {}, {}, {})
        epoch = self.epoch
        records = await self.consumer.getmany(timeout_ms=int(timeout * 1000))
        if epoch != self.epoch:
            # Reassigned while this fetch was out: what it returned of partitions still ours is
            # read again from where it began, so the pipeline may drop the lot.
            for tp, tp_records in records.items():
                if tp_records and tp in self.assigned:
                    self.consumer.seek(tp, tp_records[0].offset)
            return Fetch(epoch, {}, {}, {})
        # No await since getmany: each partition's latest response is the one these came in.
        polled = {tp: self.consumer.last_poll_timestamp(tp) for tp in records}
        return Fetch(epoch, records, polled, await self._moved())

    async def _moved(self) -> dict[TopicPartition, int]:
        """The assigned partitions' positions that moved since the last fetch. (``position``
        answers at once, without suspending, for a partition it has a position of.)"""
        moved = {}
        for tp in self.assigned:
            try:
                position = await asyncio.wait_for(self.consumer.position(tp), 0.001)
            except (TimeoutError, IllegalStateError):
                continue  # no position yet (being reset), or no longer assigned
            if self._positions.get(tp) != position:
                moved[tp] = self._positions[tp] = position
        return moved

    def highwater(self, tp: Any) -> int | None:
        """The partition's end offset as of its latest fetch (None: not known yet)."""
        if tp not in self.assigned:
            return None
        return self.consumer.highwater(tp)

    def polled_at(self, tp: Any) -> int:
        """When the partition's latest fetch response came (ms; 0: none yet)."""
        if tp not in self.assigned:
            return 0
        return self.consumer.last_poll_timestamp(tp) or 0
