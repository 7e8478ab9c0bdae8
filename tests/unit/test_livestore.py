"""The worker's write-back view of a table partition: what the engine reads while a commit is
on its way to the store must be what it wrote, never the older record in the store."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from streams.live.views import MirroredView, PartitionView, partition_of

pytestmark = pytest.mark.unit

N = 4


def keys_on(partition: int, count: int) -> list[str]:
    found = []
    i = 0
    while len(found) < count:
        key = f"c{i}"
        if partition_of(key, N) == partition:
            found.append(key)
        i += 1
    return found


def view(store: dict[str, bytes]) -> PartitionView[str]:
    table = SimpleNamespace(data=store)
    return PartitionView(table, 0, N, encode=str.encode, decode=bytes.decode)


def test_a_snapshot_is_read_back_until_the_store_has_it() -> None:
    a, b = keys_on(0, 2)
    store = {a: b"old"}
    v = view(store)
    assert v[a] == "old"
    v[a] = "new"
    v[b] = "fresh"
    keys = v.snapshot()
    assert v.dirty == 0
    assert v[a] == "new" and v[b] == "fresh"  # set aside, not encoded yet
    items = v.encoded(keys)
    assert sorted(items) == sorted([(a, b"new"), (b, b"fresh")])
    assert v[a] == "new" and v[b] == "fresh"  # the store still says "old" and nothing
    store.update((key, raw) for key, raw in items if raw is not None)
    v.written(items)
    assert v[a] == "new" and v[b] == "fresh"


def test_a_deleted_key_stays_deleted_while_its_snapshot_is_pending() -> None:
    (a,) = keys_on(0, 1)
    store = {a: b"old"}
    v = view(store)
    del v[a]
    keys = v.snapshot()
    assert v.get(a) is None
    assert list(v) == []
    items = v.encoded(keys)
    assert items == [(a, None)]
    assert v.get(a) is None
    assert list(v) == []
    del store[a]
    v.written(items)
    assert v.get(a) is None


def test_a_later_change_survives_the_write_of_an_earlier_snapshot() -> None:
    (a,) = keys_on(0, 1)
    store: dict[str, bytes] = {}
    v = view(store)
    v[a] = "one"
    first = v.encoded(v.snapshot())
    v[a] = "two"  # applied while the first commit is out
    store[a] = b"one"
    v.written(first)
    assert v[a] == "two"
    assert v.encoded(v.snapshot()) == [(a, b"two")]


def test_a_value_changed_in_place_before_its_snapshot_is_encoded_is_encoded_as_it_was() -> None:
    """The engine changes a customer's state in place; a commit encodes its snapshot a chunk at
    a time. What it writes must be the state the changes it waited for came from."""
    a, b = keys_on(0, 2)
    table = SimpleNamespace(data={})
    v: PartitionView[list[int]] = PartitionView(table, 0, N, encode=lambda x: json.dumps(x).encode(),
                                                decode=json.loads)
    v[a], v[b] = [1], [1]
    keys = v.snapshot()
    v[a].append(2)  # read again and changed before the commit encoded it
    v[b] = [3]  # replaced before the commit encoded it
    assert sorted(v.encoded(keys)) == sorted([(a, b"[1]"), (b, b"[1]")])
    assert v[a] == [1, 2] and v[b] == [3]
    assert v.dirty == 1  # b was set again; a changed in place is the engine's to set again
    assert sorted(v.encoded(v.snapshot())) == [(b, b"[3]")]


def test_iteration_sees_store_pending_and_cached_keys_once() -> None:
    a, b, c, d = keys_on(0, 4)
    (elsewhere,) = keys_on(1, 1)
    store = {a: b"1", b: b"2", elsewhere: b"x"}
    v = view(store)
    v[c] = "3"
    v.encoded(v.snapshot())  # c pending
    v[d] = "4"  # d cached and dirty
    del v[b]  # b deleted, not yet snapshotted
    assert sorted(v) == sorted([a, c, d])
    assert len(v) == 3
    v.snapshot()  # d set aside, b's deletion too, neither encoded yet
    assert sorted(v) == sorted([a, c, d])


def test_a_mirrored_view_answers_from_memory_and_writes_through() -> None:
    a, b = keys_on(0, 2)
    store = {a: b"1"}
    v = view(store)
    mirror = MirroredView(v)
    assert dict(mirror) == {a: "1"} and len(mirror) == 1
    store.clear()  # what is read was loaded once: the store is not asked again
    assert mirror.get(a) == "1" and mirror.get(b) is None
    mirror[b] = "2"
    del mirror[a]
    assert dict(mirror) == {b: "2"}
    assert sorted(v.encoded(v.snapshot())) == sorted([(a, None), (b, b"2")])


def test_the_producer_places_keys_where_kafkas_default_partitioner_does() -> None:
    """Consumers and other clients find a customer's records on the partition Kafka's own
    partitioner gives (murmur2), remembered hashes or not."""
    from aiokafka.partitioner import DefaultPartitioner

    from streams.live.views import KeyPartitioner

    ours, kafkas = KeyPartitioner(), DefaultPartitioner()
    for n in range(3000):
        key = f"cust-{n * 7919}".encode()
        partitions = list(range(1 + n % 48))
        assert ours(key, partitions, partitions) == kafkas(key, partitions, partitions)
        assert ours(key, partitions, partitions) == partition_of(key.decode(), len(partitions))
    assert ours(None, [0, 1, 2], [2]) == 2  # no key: an available partition
    from streams.live import views

    huge = b"k" * 100_000  # a dead letter keeps its producer's key, however long: not remembered
    remembered = views._remembered.cache_info().currsize
    assert ours(huge, list(range(7)), []) == kafkas(huge, list(range(7)), [])
    assert views._remembered.cache_info().currsize == remembered
