"""The live Engine's view of one partition of a faust table, with write-back once per commit.

The engine reads and writes a plain mapping of objects; this one reads through to the faust
table (a RocksDB or memory store restored from its changelog, holding the encoded bytes) and
keeps what was touched since the last commit. A commit takes a :meth:`PartitionView.snapshot`:
each changed key once, so one changelog record per changed customer per commit, whatever
number of events touched it. The commit writes the snapshot to the store only once the changes
it caused are delivered, while the engine goes on: until then the snapshot stays readable
here, ahead of the store.

Taking a snapshot only sets the changed values aside; the commit encodes them a chunk at a time
(:meth:`PartitionView.encoded`), since encoding thousands at once would hold the event loop for
tens of milliseconds. The engine changes its values in place, so one it reads again before the
commit got to it is encoded first: the snapshot holds each value as it was when taken, in step
with the changes sent by then.

Keys are placed on partitions the way Kafka's default partitioner places message keys
(murmur2), which is how the input topics must be keyed (docs/contract.md, Input events: by customer or visitor id).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Generic, TypeVar

import faust
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faust.streams import _current_event  # the store and changelog pick the partition from it
from faust.types.tuples import Message

V = TypeVar("V")
_MISSING = object()


REMEMBERED_KEY_BYTES = 256
_remembered = lru_cache(maxsize=1 << 15)(murmur2)


def key_hash(key: bytes) -> int:
    """murmur2 of a key, remembered for the keys seen lately: it is pure Python, and the worker
    hashes each customer's key for every record it sends. Only short keys are remembered: a
    dead letter keeps its producer's key, which may be of any length."""
    return _remembered(key) if len(key) <= REMEMBERED_KEY_BYTES else murmur2(key)


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partitioner for a string key (Java's ``Utils.toPositive(murmur2) % n``)."""
    return (key_hash(key.encode()) & 0x7FFFFFFF) % partitions


class KeyPartitioner(DefaultPartitioner):
    """The producer's partitioner: Kafka's default, with :data:`key_hash`."""

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return super().__call__(key, all_partitions, available)
        return all_partitions[(key_hash(key) & 0x7FFFFFFF) % len(all_partitions)]


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
    """One partition of a faust table as a mapping, buffering writes until :meth:`flush`.

    The table stores raw bytes; ``encode`` and ``decode`` turn them into the engine's values and
    back, once per read from the store and once per write to it.
    """

    def __init__(self, table: Any, partition: int, partitions: int, *, encode: Callable[[V], bytes],
                 decode: Callable[[bytes], V], local: Callable[[str], bool] | None = None) -> None:
        self.table = table
        self.partition = partition
        self.partitions = partitions
        self.encode = encode
        self.decode = decode
        self._cache: dict[str, Any] = {}
        self._dirty: set[str] = set()
        self._pending: dict[str, bytes | None] = {}
        """Snapshots taken but not yet in the store: key -> encoded value (None: deleted)."""
        self._frozen: dict[str, Any] = {}
        """The snapshot taken and not encoded yet: key -> value (None: deleted)."""
        self.local = local or (lambda key: partition_of(key, partitions) == partition)

    def __getitem__(self, key: str) -> V:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            if key in self._frozen:
                value = self._thaw(key)
            else:
                raw = self._pending.get(key, _MISSING)
                if raw is _MISSING:
                    raw = self.table.data.get(key)
                value = None if raw is None else self.decode(raw)
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
        if key in self._frozen:
            self._thaw(key)
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
        cache, pending, frozen = self._cache, self._pending, self._frozen
        seen = set()
        for key in list(self.table.data.keys()):
            if (isinstance(key, str) and self.local(key) and key not in cache and key not in pending
                    and key not in frozen):
                seen.add(key)
                yield key
        for key, value in list(frozen.items()):
            if value is not None and key not in cache:
                seen.add(key)
                yield key
        for key, raw in list(pending.items()):
            if raw is not None and key not in cache and key not in frozen:
                seen.add(key)
                yield key
        for key, value in list(cache.items()):
            if value is not None and key not in seen:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def snapshot(self) -> list[str]:
        """Every key changed since the last snapshot, its value set aside as it is now, for
        :meth:`encoded`. One snapshot at a time: the next is taken once this one is written."""
        cache, frozen = self._cache, self._frozen
        keys = list(self._dirty)
        for key in keys:
            frozen[key] = cache[key]
        self._dirty.clear()
        cache.clear()
        return keys

    def encoded(self, keys: list[str]) -> list[tuple[str, bytes | None]]:
        """Keys of the snapshot with their values as they were when it was taken, encoded
        (None: deleted). They stay readable here until :meth:`written` says the store has them."""
        frozen, pending = self._frozen, self._pending
        for key in keys:
            if key in frozen:
                self._thaw(key)
        return [(key, pending[key]) for key in keys]

    def _thaw(self, key: str) -> Any:
        """Encode a value of the snapshot before it can change; return the value."""
        value = self._frozen.pop(key)
        self._pending[key] = None if value is None else self.encode(value)
        return value

    def written(self, items: list[tuple[str, bytes | None]]) -> None:
        """The store now holds ``items`` (a snapshot); a later snapshot of a key stays pending."""
        pending = self._pending
        for key, raw in items:
            if pending.get(key, _MISSING) is raw:
                del pending[key]


class MirroredView(MutableMapping[str, V], Generic[V]):
    """A small table partition held whole in memory, writing through to a :class:`PartitionView`.

    For what the engine asks about on every event but rarely holds anything (erasure markers):
    a dict answers ``get`` and ``len`` without touching the store, and every change still goes
    to the table with the next commit, so it survives a restart or a move.
    """

    def __init__(self, view: PartitionView[V]) -> None:
        self.view = view
        self._items: dict[str, V] = {key: view[key] for key in view}

    def __getitem__(self, key: str) -> V:
        return self._items[key]

    def __setitem__(self, key: str, value: V) -> None:
        self._items[key] = value
        self.view[key] = value

    def __delitem__(self, key: str) -> None:
        del self._items[key]
        del self.view[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
