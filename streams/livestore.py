"""The live Engine's view of one partition of a faust table, with write-back once per batch.

The engine reads and writes a plain mapping; this one reads through to the faust table (a
RocksDB or memory store restored from its changelog) and keeps what the batch touched. At
the end of the batch :meth:`PartitionView.flush` writes each changed key once: one changelog
record per changed customer per batch, whatever number of events touched it.

Keys are placed on partitions the way Kafka's default partitioner places message keys
(murmur2), which is how the input topics must be keyed (SPEC §1: by customer or visitor id).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import faust
from aiokafka.partitioner import murmur2
from faust.streams import _current_event  # the store and changelog pick the partition from it
from faust.types.tuples import Message

V = TypeVar("V")
_MISSING = object()


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partitioner for a string key (Java's ``Utils.toPositive(murmur2) % n``)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@contextmanager
def in_partition(app: faust.App, topic: str, partition: int) -> Iterator[None]:
    """Make faust tables write to ``partition``, as they do while an agent handles its event.

    faust stores and changelogs take the partition from the "current event" of a stream; the
    batch path has no stream, so it stands in an event of the partition it is writing.
    """
    message = Message(topic=topic, partition=partition, offset=-1, timestamp=0.0,
                      timestamp_type=0, headers=[], key=None, value=None, checksum=None)
    event = app.create_event(None, None, [], message)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class PartitionView(MutableMapping[str, V], Generic[V]):
    """One partition of a faust table as a mapping, buffering writes until :meth:`flush`."""

    def __init__(self, table: Any, partition: int, partitions: int,
                 local: Callable[[str], bool] | None = None) -> None:
        self.table = table
        self.partition = partition
        self.partitions = partitions
        self._cache: dict[str, Any] = {}
        self._dirty: set[str] = set()
        self.local = local or (lambda key: partition_of(key, partitions) == partition)

    def __getitem__(self, key: str) -> V:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            value = self.table.get(key)
            self._cache[key] = value
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: str, value: V) -> None:
        self._cache[key] = value
        self._dirty.add(key)

    def __delitem__(self, key: str) -> None:
        if self.get(key) is None:
            raise KeyError(key)
        self._cache[key] = None
        self._dirty.add(key)

    def __iter__(self) -> Iterator[str]:
        """Every key of this partition: a scan, for rebuilding timers after a rebalance."""
        # faust's RocksDB store opens a partition's database on first use and lists only open
        # ones; after a restart with nothing to recover, ours may not be open yet.
        open_partition = getattr(self.table.data, "_db_for_partition", None)
        if open_partition is not None:
            open_partition(self.partition)
        seen = set()
        for key in list(self.table.keys()):
            if isinstance(key, str) and self.local(key) and key not in self._cache:
                seen.add(key)
                yield key
        for key, value in list(self._cache.items()):
            if value is not None and key not in seen:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def flush(self) -> int:
        """Write every changed key once (a delete is a changelog tombstone); forget the batch."""
        written = 0
        for key in self._dirty:
            value = self._cache[key]
            if value is None:
                if key in self.table:
                    del self.table[key]
                    written += 1
            else:
                self.table[key] = value
                written += 1
        self._dirty.clear()
        self._cache.clear()
        return written
