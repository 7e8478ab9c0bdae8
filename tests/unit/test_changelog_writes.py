"""A commit's write-back reaches the table's store as faust reads it, in the key's partition,
with the last write of a key winning and deletes applied: a restarted worker trusts its store
up to the changelog offset recorded there and replays only what comes after."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer

from streams.live.app import register_codecs
from streams.live.changelog import ChangelogWrites
from streams.live.views import in_partition

pytestmark = pytest.mark.unit


def customers_table(store: str, datadir: Path) -> faust.Table:
    register_codecs()
    app = faust.App("changelog-writes", datadir=str(datadir), store=store, topic_partitions=4)
    table = app.Table("customers", partitions=4)
    table.key_serializer = "segmenter-utf8"
    table.value_serializer = "raw"
    return table


def read(table: faust.Table, partition: int, key: str) -> bytes | None:
    with in_partition(table.app, "clickstream", partition):
        return table.data.get(key)


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
def test_what_a_commit_writes_is_in_the_store_afterwards(store: str, tmp_path: Path) -> None:
    table = customers_table(store, tmp_path)

    async def commit() -> None:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")  # never started: batches only
        writes = ChangelogWrites(producer)
        with in_partition(table.app, "clickstream", 1):
            writes.write(table, 1, "alice", b"first")
            writes.write(table, 1, "alice", b"second")
            writes.write(table, 1, "bob", b"gone soon")
            writes.write(table, 1, "bob", None)
        with in_partition(table.app, "clickstream", 2):
            writes.write(table, 2, "carol", b"C")
        writes.apply_to_stores()
        assert writes.records == 5  # every write is also a changelog record
        await producer.stop()

    asyncio.run(commit())
    assert read(table, 1, "alice") == b"second"
    assert read(table, 1, "bob") is None
    assert read(table, 2, "carol") == b"C"
    if store == "rocksdb://":
        assert read(table, 2, "alice") is None, "a key is stored in its own partition's database"


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
def test_nothing_reaches_the_store_before_the_changelog_has_it(store: str, tmp_path: Path) -> None:
    table = customers_table(store, tmp_path)
    with in_partition(table.app, "clickstream", 1):
        table.data["alice"] = b"before"

    async def failing_commit() -> None:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")  # never started: batches only

        async def send_batch(*_args: object, **_kwargs: object) -> asyncio.Future[object]:
            future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            future.set_exception(ConnectionError("the broker is gone"))
            return future

        producer.send_batch = send_batch  # type: ignore[method-assign]
        writes = ChangelogWrites(producer)
        with in_partition(table.app, "clickstream", 1):
            writes.write(table, 1, "alice", b"after")
            writes.write(table, 1, "bob", b"new")
        with pytest.raises(ConnectionError):
            await writes.send()
        await producer.stop()

    asyncio.run(failing_commit())
    assert read(table, 1, "alice") == b"before", "a failed changelog send leaves the store as it was"
    assert read(table, 1, "bob") is None
