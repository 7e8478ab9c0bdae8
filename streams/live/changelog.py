"""Table writes, in batches: the local store and the changelog topic, as faust's Table does them.

faust writes a table's changelog a record at a time through its producer buffer, one awaited
send after another. The worker writes each changed customer once per commit, so it writes them
here instead: into the table's store, and into the changelog as one aiokafka batch per changelog
partition. When the batches are acknowledged the store is told the changelog offset it now
holds, exactly what faust does after its own sends, so that faust's recovery (on restart,
rebalance or a standby's catch-up) reads the same topic the same way.

Nothing reaches a store before the broker has acknowledged its changelog record: a store ahead
of its changelog would, after a failed send and a restart on the same disk, skip re-read events
as already applied, and a standby restoring from the changelog would hold another value. A
RocksDB store then gets one write batch per partition, the bytes of the changelog records, as
faust's own recovery writes them (``Store.apply_changelog_batch``): a put at a time through
the store costs twice as much, and the write-back of a commit is work the event loop does in
one go while events wait. Until the batch is written the values are still readable from the
views that gave them (:class:`streams.live.views.PartitionView` keeps them until ``written``).
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import rocksdict
from aiokafka import AIOKafkaProducer
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP


class ChangelogWrites:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._open: dict[tuple[Any, int], Any] = {}
        """(table, partition) -> the aiokafka batch being filled."""
        self._full: list[tuple[Any, int, Any]] = []
        self._stored: dict[tuple[Any, int], Any] = {}
        """(RocksDB store, partition) -> its write batch, written by :meth:`apply_to_stores`.
        (``_db_for_partition`` is faust's, the same its recovery writes through.)"""
        self._puts: list[tuple[contextvars.Context, Any, str, bytes | None]] = []
        """Writes to other stores, each with the context (the partition) it was made in."""
        self.records = 0

    def write(self, table: Any, partition: int, key: str, value: bytes | None) -> None:
        """Queue the changelog record of ``value`` under ``key`` (None deletes it), and its write
        to the store, which :meth:`send` makes once the record is acknowledged."""
        raw_key = key.encode()
        store = table.data
        if isinstance(store, RocksDBStore) and store.use_rocksdict:
            batch = self._stored.get((store, partition))
            if batch is None:
                batch = self._stored[store, partition] = rocksdict.WriteBatch(raw_mode=True)
            if value is None:
                batch.delete(raw_key)
            else:
                batch.put(raw_key, value)
        else:
            self._puts.append((contextvars.copy_context(), store, key, value))
        slot = (table, partition)
        builder = self._open.get(slot)
        if builder is None:
            builder = self._open[slot] = self.producer.create_batch()
        if builder.append(key=raw_key, value=value, timestamp=None) is None:
            builder.close()
            self._full.append((table, partition, builder))
            builder = self._open[slot] = self.producer.create_batch()
            if builder.append(key=raw_key, value=value, timestamp=None) is None:
                raise ValueError(f"table {table.name!r}: record for {key!r} exceeds the producer's max batch size")
        self.records += 1

    def apply_to_stores(self) -> None:
        """Write what :meth:`write` gave since to the stores, readable there from now on."""
        for (store, partition), batch in self._stored.items():
            store._db_for_partition(partition).write(batch)
        self._stored = {}
        for context, store, key, value in self._puts:
            context.run(_put, store, key, value)
        self._puts = []

    async def send(self) -> int:
        """Send what was written, wait for the broker, then write the stores and record the
        changelog offsets they hold. Returns the number of records."""
        batches = self._full
        for (table, partition), builder in self._open.items():
            builder.close()
            batches.append((table, partition, builder))
        self._open = {}
        self._full = []
        if not batches:
            self.apply_to_stores()
            return 0
        futures = []
        for table, partition, builder in batches:
            topic = table.changelog_topic.get_topic_name()
            futures.append(await self.producer.send_batch(builder, topic, partition=partition))
        results = await asyncio.gather(*futures)
        self.apply_to_stores()
        last: dict[tuple[Any, int], int] = {}
        for (table, partition, builder), metadata in zip(batches, results, strict=True):
            end = metadata.offset + builder.record_count() - 1
            last[table, partition] = max(end, last.get((table, partition), -1))
        for (table, partition), offset in last.items():
            table.data.set_persisted_offset(TP(table.changelog_topic.get_topic_name(), partition), offset)
        written, self.records = self.records, 0
        return written


def _put(store: Any, key: str, value: bytes | None) -> None:
    if value is None:
        if key in store:
            del store[key]
    else:
        store[key] = value
