"""The timer index: which customer's membership may next change with time alone, and when.

A heap of ``(deadline, key)`` with lazy deletion: setting a new deadline for a key pushes an
entry and makes the older one stale, which is skipped when it surfaces. Advancing the clock
pops only entries that are due, so the cost of time passing is proportional to the customers
whose deadlines fall in it, never to all customers. Ties pop in key order, which keeps replay
output deterministic.

The authoritative deadline also lives in each customer's state, so the index can always be
rebuilt from a store (after a restart or a rebalance) with :meth:`rebuild`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from streams.model.clock import Instant


class TimerIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[Instant, str]] = []
        self._due: dict[str, Instant] = {}

    def __len__(self) -> int:
        return len(self._due)

    def get(self, key: str) -> Instant | None:
        return self._due.get(key)

    def set(self, key: str, deadline: Instant | None) -> None:
        current = self._due.get(key)
        if deadline == current:
            return
        if deadline is None:
            del self._due[key]
            return
        self._due[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    def discard(self, key: str) -> None:
        self._due.pop(key, None)

    def next_deadline(self) -> Instant | None:
        while self._heap:
            deadline, key = self._heap[0]
            if self._due.get(key) == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def pop_due(self, until: Instant, *, inclusive: bool = True) -> Iterator[tuple[Instant, str]]:
        """Yield and remove ``(deadline, key)`` due by ``until``, earliest first.

        Deadlines set while iterating are seen too, if they are due.
        """
        heap = self._heap
        while heap:
            deadline, key = heap[0]
            if deadline > until or (deadline == until and not inclusive):
                return
            heapq.heappop(heap)
            if self._due.get(key) == deadline:
                del self._due[key]
                yield deadline, key

    def rebuild(self, items: Iterable[tuple[str, Instant | None]]) -> None:
        self._due = {key: deadline for key, deadline in items if deadline is not None}
        self._compact()

    def _compact(self) -> None:
        self._heap = [(deadline, key) for key, deadline in self._due.items()]
        heapq.heapify(self._heap)
