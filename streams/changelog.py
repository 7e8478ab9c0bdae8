"""Table writes, in batches: the local store and the changelog topic, as faust's Table does them.

faust writes a table's changelog a record at a time through its producer buffer, one awaited
send after another. The worker writes each changed customer once per commit, so it writes them
here instead: into the table's store (RocksDB or memory) at once, and into the changelog as one
aiokafka batch per changelog partition. When the batches are acknowledged the store is told the
changelog offset it now holds, exactly what faust does after its own sends, so that faust's
recovery (on restart, rebalance or a standby's catch-up) reads the same topic the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.types import TP


class ChangelogWrites:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._open: dict[tuple[Any, int], Any] = {}
        """(table, partition) -> the aiokafka batch being filled."""
        self._full: list[tuple[Any, int, Any]] = []
        self.records = 0

    def write(self, table: Any, partition: int, key: str, value: bytes | None) -> None:
        """Store ``value`` under ``key`` (None deletes it) and queue its changelog record."""
        store = table.data
        if value is None:
            if key in store:
                del store[key]
        else:
            store[key] = value
        slot = (table, partition)
        builder = self._open.get(slot)
        if builder is None:
            builder = self._open[slot] = self.producer.create_batch()
        raw_key = key.encode()
        if builder.append(key=raw_key, value=value, timestamp=None) is None:
            builder.close()
            self._full.append((table, partition, builder))
            builder = self._open[slot] = self.producer.create_batch()
            if builder.append(key=raw_key, value=value, timestamp=None) is None:
                raise ValueError(f"table {table.name!r}: record for {key!r} exceeds the producer's max batch size")
        self.records += 1

    async def send(self) -> int:
        """Send what was written, wait for the broker, and record the changelog offsets in the
        stores. Returns the number of records."""
        batches = self._full
        for (table, partition), builder in self._open.items():
            builder.close()
            batches.append((table, partition, builder))
        self._open = {}
        self._full = []
        if not batches:
            return 0
        futures = []
        for table, partition, builder in batches:
            topic = table.changelog_topic.get_topic_name()
            futures.append(await self.producer.send_batch(builder, topic, partition=partition))
        results = await asyncio.gather(*futures)
        last: dict[tuple[Any, int], int] = {}
        for (table, partition, builder), metadata in zip(batches, results, strict=True):
            end = metadata.offset + builder.record_count() - 1
            last[table, partition] = max(end, last.get((table, partition), -1))
        for (table, partition), offset in last.items():
            table.data.set_persisted_offset(TP(table.changelog_topic.get_topic_name(), partition), offset)
        written, self.records = self.records, 0
        return written
