"""Segment sizes for the whole cluster, from the memberships topic.

Each worker knows only its partitions' members; the compacted ``segment-memberships`` topic
holds everyone's. Following it (all partitions, from the beginning) gives every worker the
same sizes, which ``/segments/`` serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from aiokafka.structs import TopicPartition

from streams.live.readers import reader
from streams.live.settings import WorkerSettings
from streams.model.memberships import segment_of

log = logging.getLogger("segmenter.sizes")


class ClusterSizes:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.segment_of: dict[bytes, str] = {}
        """key -> segment, for every current membership."""
        self.sizes: Counter[str] = Counter()
        self.caught_up = False
        """Whether the topic was read to its end once: until then the sizes are partial."""

    def apply(self, key: bytes, value: bytes | None) -> None:
        if value is not None and key in self.segment_of:
            return  # the key names the segment: a newer record of a membership changes no size
        old = self.segment_of.pop(key, None)
        if old is not None:
            self.sizes[old] -= 1
        if value is not None:
            segment = segment_of(key)
            if segment is None:  # a record this worker cannot read counts nowhere
                return
            self.segment_of[key] = segment
            self.sizes[segment] += 1

    def current(self) -> dict[str, int]:
        return {segment: n for segment, n in sorted(self.sizes.items()) if n > 0}

    async def follow(self) -> None:
        s = self.settings
        consumer = reader(s)
        await consumer.start()
        try:
            tps = [TopicPartition(s.memberships_topic, p) for p in range(s.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        if record.key is not None:
                            self.apply(record.key, record.value)
                if not self.caught_up and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                    self.caught_up = True
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("following %s stopped; /segments/ serves this worker's sizes", s.memberships_topic)
        finally:
            await consumer.stop()
