"""Idle partitions: a partition that has read its input to the end and had none for
``idle_after`` seconds moves its clock up to the wall clock, so that deadlines fire on time when
nothing else happens: in quiet hours, right after a backfill, right after the worker starts or
takes the partition over.

Idleness is timed on the monotonic clock from the partition's latest input, or from when it was
assigned if none came since: a partition with nothing new ticks from the start.
"""

from __future__ import annotations


class IdleClock:
    def __init__(self, idle_after: float) -> None:
        self.idle_after = idle_after
        self.quiet_since: dict[int, float] = {}
        """partition -> monotonic time of its latest input, or of its assignment."""

    def assigned(self, partition: int, now: float) -> None:
        self.quiet_since.setdefault(partition, now)

    def saw_input(self, partition: int, now: float) -> None:
        self.quiet_since[partition] = now

    def drop(self, partition: int) -> None:
        self.quiet_since.pop(partition, None)

    def idle(self, partition: int, now: float) -> bool:
        since = self.quiet_since.get(partition)
        return since is not None and now - since >= self.idle_after
