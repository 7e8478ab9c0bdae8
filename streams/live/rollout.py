"""A worker's side of rule deployments: learning them while running, filling new windows.

A deployment read from the topic is compiled and handed to every engine: it goes live on each
partition at its instant (or at once, where the clock has passed it; logged and counted). When
the new pack keeps a window the live one does not, the engines start keeping it at once, and
the events applied before come back from the input topics (:func:`streams.live.readers.read_history`):
per partition once, recorded in ``progress`` with the records it filled, so a restart or a
new owner neither skips nor repeats it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import faust
from aiokafka import AIOKafkaProducer

from streams.errors import SegmenterError
from streams.live.checkpoint import Offsets
from streams.live.deploys import Follower, history_at_start
from streams.live.metrics import Metrics
from streams.live.outbox import Outbox
from streams.live.partitions import Partitions
from streams.live.readers import read_history
from streams.live.settings import WorkerSettings
from streams.live.topics import ensure_pack_topics
from streams.rules import deployments
from streams.rules.deployments import Deployment, Scheduled
from streams.rules.problems import RuleError

log = logging.getLogger("segmenter.rollout")


class Rollout:
    def __init__(self, settings: WorkerSettings, partitions: Partitions, offsets: Offsets, outbox: Outbox,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.partitions = partitions
        self.offsets = offsets
        self.outbox = outbox
        self.metrics = metrics
        self.follower = Follower(settings, ())

    async def read_known(self) -> None:
        """Before the worker starts: the deployments so far (:func:`streams.live.deploys.history_at_start`)."""
        known = await history_at_start(self.settings, self.settings.rules)
        self.partitions.deployments = sorted((s for s in map(self._compiled, known) if s is not None),
                                             key=lambda s: s.at)
        self.follower = Follower(self.settings, known)
        packs = [self.partitions.pack, *(s.pack for s in self.partitions.deployments)]
        await ensure_pack_topics(self.settings, packs)

    def _compiled(self, deployment: Deployment) -> Scheduled | None:
        try:
            return deployments.schedule([deployment])[0]
        except (RuleError, SegmenterError) as error:
            log.error("deployment %s cannot be used, ignored: %s", deployment.id, error)
            self.metrics.deployments.labels("refused").inc()
            return None

    def attach(self, app: faust.App, lock: asyncio.Lock, ready: asyncio.Event,
               producer: Callable[[], AIOKafkaProducer | None]) -> None:
        """Follow the deployments while the worker runs, once it is ready: each is learnt under
        the pipeline's lock, and what it changed at once goes out."""

        async def follow() -> None:
            await ready.wait()
            async for deployment in self.follower.follow():
                async with lock:
                    await self.learn(deployment)
                    sender = producer()
                    if sender is not None:
                        await self.outbox.send(sender)

        app.task(follow)

    async def learn(self, deployment: Deployment) -> None:
        """A deployment made while the worker runs: scheduled on every engine, history filled."""
        scheduled = self._compiled(deployment)
        if scheduled is None:
            return
        await ensure_pack_topics(self.settings, [scheduled.pack])
        late = self.partitions.deploy(scheduled)
        for change in late:
            self.outbox.change(change)
        self.metrics.deployments.labels("learnt").inc()
        log.info("deployment %s: pack %s live at %s", deployment.id, deployment.pack_version,
                 deployment.effective_at)
        await self.fill()

    async def fill(self) -> None:
        """Count the history of the owned partitions in the windows pending packs add."""
        wanted = self.partitions.to_fill()
        if not wanted:
            return
        started = time.monotonic()
        # Every owned partition is read: a visitor's events may sit on another partition than
        # the customer they became.
        until = {(topic, partition): self.offsets.applied.get((topic, partition), -1)
                 for partition in self.partitions.engines for topic in self.settings.input_topics}
        seen: set[int] = set()
        read = 0
        async for _topic, partition, raw in read_history(self.settings, until):
            self.partitions.prefill(partition, raw, seen, wanted.keys())
            read += 1
        for partition, ids in wanted.items():
            self.partitions.filled_now(partition, ids)
        log.info("history for new windows: %d messages read, %d events counted, partitions %s, %.1f s",
                 read, len(seen), sorted(wanted), time.monotonic() - started)
