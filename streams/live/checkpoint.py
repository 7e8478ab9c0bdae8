"""The commit: what makes a worker's work durable, in an order a crash cannot break.

A :class:`Checkpoint` is taken between two batches and committed beside the pipeline, in four
steps:

1. the sends so far are awaited (acks=all, idempotent producer);
2. each customer changed since the last checkpoint is written once to its table and changelog
   (:mod:`streams.live.changelog`), and awaited;
3. the partitions' last applied offsets, and their clocks, are written to the ``progress``
   table, and awaited;
4. the input offsets are committed to the consumer group.

A crash before 2 re-reads the events and re-sends their changes with the same change_ids
(at-least-once: consumers drop them by id); a crash between 2 and 4 re-reads events that the
customers' recorded positions skip. No offset is recorded before its effects are durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from streams.live.changelog import ChangelogWrites
from streams.live.views import PartitionView

TopicPartition = tuple[str, int]
CHUNK = 200
"""Keys encoded and written between two yields to the event loop."""


@dataclass
class Offsets:
    """Per (topic, partition) of the source topics: how far the worker got."""

    applied: dict[TopicPartition, int] = field(default_factory=dict)
    """Offset of the last message applied."""
    recorded: dict[TopicPartition, int] = field(default_factory=dict)
    """The offset the last commit recorded (``progress`` and the group)."""
    received: dict[TopicPartition, int] = field(default_factory=dict)
    """Offset of the last message fetched (applied or waiting in the aligner)."""

    def moved(self) -> dict[TopicPartition, int]:
        """(topic, partition) -> last applied offset, where it moved since the last commit."""
        return {key: offset for key, offset in self.applied.items() if self.recorded.get(key) != offset}

    def read_to(self, positions: Iterable[tuple[str, int, int]]) -> None:
        """(topic, partition, position): the reader is past everything before ``position``, records
        and what is no record (a transaction's marker) alike."""
        received = self.received
        for topic, partition, position in positions:
            key = (topic, partition)
            if position - 1 > received.get(key, -1):
                received[key] = position - 1

    def restore(self, key: TopicPartition, offset: int) -> None:
        """What ``progress`` recorded for a partition the worker now owns."""
        self.applied[key] = self.recorded[key] = offset

    def positions(self, partitions: Iterable[int], topics: list[str]) -> dict[TP, int | None]:
        """Where to read each topic of ``partitions`` from: after the last applied message, or
        None where nothing was applied (the group's reset policy decides)."""
        positions: dict[TP, int | None] = {}
        for partition in sorted(partitions):
            for topic in topics:
                applied = self.applied.get((topic, partition))
                positions[TP(topic, partition)] = None if applied is None else applied + 1
        return positions

    def drop(self, partition: int) -> None:
        for mapping in (self.applied, self.recorded, self.received):
            for key in [k for k in mapping if k[1] == partition]:
                del mapping[key]


@dataclass
class Checkpoint:
    """What one commit makes durable."""

    sent: list[asyncio.Future[Any]]
    records: list[tuple[int, PartitionView[Any], list[str]]]
    """(partition, view, its changed keys)"""
    offsets: dict[TopicPartition, int]
    """(topic, partition) -> last applied offset, where it moved since the last commit."""
    clocks: dict[int, int] = field(default_factory=dict)
    """partition -> its clock, where it moved since the last commit: a restarted engine judges
    lateness (and erasure markers expire) from where its predecessor left off."""
    marks: list[tuple[int, str]] = field(default_factory=list)
    """(partition, progress key) of what was done once and must not be done again (a history
    fill), recorded with the records it changed."""

    @classmethod
    def take(cls, sent: list[asyncio.Future[Any]],
             views: Iterable[tuple[int, Iterable[PartitionView[Any]]]], offsets: Offsets,
             clocks: dict[int, int] | None = None, marks: list[tuple[int, str]] | None = None) -> Checkpoint:
        """Set aside the sends, the changed keys of each view, the moved offsets and clocks, as
        of now."""
        records = []
        for partition, partition_views in views:
            for view in partition_views:
                keys = view.snapshot()
                if keys:
                    records.append((partition, view, keys))
        return cls(sent, records, offsets.moved(), clocks or {}, marks or [])

    async def commit(self, writes: ChangelogWrites, progress: Any, consumer: Any, offsets: Offsets,
                     writing: Callable[[int], AbstractContextManager[None]]) -> None:
        """Steps 1 to 4 of the module's docstring; ``writing(partition)`` makes table writes go
        to that partition."""
        # 1. Most sends are long done: await only the rest, and raise a failed one (gathering
        # thousands of futures would hold the loop).
        for future in self.sent:
            if not future.done():
                await future
            future.result()
        # 2.
        written = []
        for partition, view, keys in self.records:
            for start in range(0, len(keys), CHUNK):
                items = view.encoded(keys[start:start + CHUNK])
                with writing(partition):
                    for key, raw in items:
                        writes.write(view.table, partition, key, raw)
                written.append((view, items))
                await asyncio.sleep(0)  # a long write-back lets the pipeline in between
        await writes.send()
        # 3. The state must be in its changelog before the offsets that say it is there:
        # changelog topics are separate, so nothing else orders them.
        for (topic, partition), offset in self.offsets.items():
            with writing(partition):
                writes.write(progress, partition, f"{topic}#{partition}", str(offset).encode())
        for partition, clock in self.clocks.items():
            with writing(partition):
                writes.write(progress, partition, clock_key(partition), str(clock).encode())
        for partition, key in self.marks:
            with writing(partition):
                writes.write(progress, partition, key, b"1")
        await writes.send()
        # 4.
        if self.offsets:
            await consumer._commit({TP(topic, partition): offset + 1
                                    for (topic, partition), offset in self.offsets.items()})
            offsets.recorded.update(self.offsets)
        for view, items in written:
            view.written(items)


def clock_key(partition: int) -> str:
    """The ``progress`` key of a partition's clock."""
    return f"clock#{partition}"


def fill_key(deployment: str, partition: int) -> str:
    """The ``progress`` key saying history filled a deployment's new windows on a partition."""
    return f"fill#{deployment}#{partition}"


class Committer:
    """Runs commits beside the pipeline, one at a time, once ``interval`` seconds have passed
    since the last one and there is something to commit."""

    def __init__(self, interval: float, take: Callable[[], Checkpoint],
                 commit: Callable[[Checkpoint], Awaitable[None]], pending: Callable[[], bool]) -> None:
        self.interval = interval
        self.take = take
        self.commit = commit
        self.pending = pending
        self.last = time.monotonic()
        self.running: asyncio.Task[None] | None = None

    def maybe(self) -> None:
        """Start a commit if one is due and none is running; surface a failed one."""
        if self.running is not None:
            if not self.running.done():
                return
            task, self.running = self.running, None
            task.result()
        if time.monotonic() - self.last >= self.interval and self.pending():
            self.running = asyncio.create_task(self._run(self.take()))

    async def wait(self) -> None:
        """Until the running commit, if any, is done."""
        if self.running is not None:
            task, self.running = self.running, None
            await task

    async def now(self) -> None:
        """Commit everything taken so far (after :meth:`wait`)."""
        await self._run(self.take())

    async def _run(self, checkpoint: Checkpoint) -> None:
        await self.commit(checkpoint)
        self.last = time.monotonic()
