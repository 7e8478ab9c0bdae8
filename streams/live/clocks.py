"""The worker's two readings of time.

``monotonic`` times waits and idleness. ``wall`` is the event time an idle partition's clock
moves up to (and the limit ``max_clock_skew`` is counted from): the system clock as read when the
worker started, carried on by the monotonic clock. A step of the system clock, forward or back
(NTP, a VM resumed, an operator), then moves nothing: no deadline fires early, none waits for
the clock to come back. A worker takes a corrected system clock at its next start;
:meth:`Clocks.step` says how far the two have come apart, for the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Clocks:
    def __init__(self, system: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._system = system
        self._origin = system() - monotonic()

    def wall(self) -> float:
        """Seconds since the epoch, as the system clock said at start plus the time since."""
        return self._origin + self.monotonic()

    def step(self) -> float:
        """How far the system clock has been stepped since the worker started (seconds)."""
        return self._system() - self.wall()
