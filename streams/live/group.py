"""faust's Kafka consumer, keeping the group but leaving the worker's own topics to the worker.

faust's consumer stays the group member: it joins, gets the assignment, recovers the tables
from their changelogs, keeps standbys up to date and commits the offsets the worker gives it.
It does not fetch the source topics: their partitions are paused in its aiokafka consumer as
soon as they are assigned, and the worker reads them with its own consumer
(:mod:`streams.live.source`) once their tables are recovered, a batch at a time rather than
through faust's per-message streams (docs/worker.md, How it works).

faust asks the worker to settle (make everything applied durable, commit its offsets) before
it waits for its own streams to finish, on rebalance and on shutdown.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


class GroupSink(Protocol):
    source_topics: list[str]

    async def settle(self) -> None:
        """Make everything taken so far durable and commit its offsets: partitions are about to
        move, or the worker to stop."""


class _Thread(faust_aiokafka.AIOKafkaConsumerThread):
    sink: ClassVar[GroupSink]
    # With the broker gone, the consumer's thread never says it stopped: the worker would wait
    # out mode's 60 s before exiting, past a container's usual grace period. Its work is
    # committed before it is stopped (``settle``), so a shorter wait loses nothing.
    shutdown_timeout = 10.0

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        # In the consumer's own thread, before its fetcher sees the new assignment through.
        sources = set(self.sink.source_topics)
        self._ensure_consumer().pause(*[TopicPartition(tp.topic, tp.partition)
                                        for tp in assigned if tp.topic in sources])
        await super().on_partitions_assigned(assigned, generation_id)

    def verify_event_path(self, now: float, tp: TP) -> None:
        # faust would report the paused source partitions as stuck; the worker reads them.
        if tp.topic not in self.sink.source_topics:
            super().verify_event_path(now, tp)


class GroupConsumer(faust_aiokafka.Consumer):
    sink: ClassVar[GroupSink]

    def _new_consumer_thread(self) -> Any:
        thread = type("GroupConsumerThread", (_Thread,), {"sink": self.sink})
        return thread(self, loop=self.loop, beacon=self.beacon)

    async def wait_empty(self) -> None:
        await self.sink.settle()
        await super().wait_empty()


def consumer_class(sink: GroupSink) -> type[GroupConsumer]:
    """A consumer class bound to ``sink``: faust's transport instantiates its consumer itself."""
    return type("GroupConsumer", (GroupConsumer,), {"sink": sink})
