"""``segmenter`` with a system clock the test can step: the seam for a wall-clock step.

``time.time`` returns the real time plus the number of seconds last written to the file named by
``SEGMENTER_TEST_CLOCK_STEP`` (0 while there is none), read every 50 ms by a thread of its own.
The monotonic clock is left alone, as a real step of the system clock leaves it.
"""

from __future__ import annotations

import os
import sys
import threading
import time

_real = time.time
_offset = 0.0


def _stepped() -> float:
    return _real() + _offset


def _follow(path: str) -> None:
    global _offset
    while True:
        try:
            with open(path) as file:
                _offset = float(file.read().strip() or 0)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)


time.time = _stepped
threading.Thread(target=_follow, args=(os.environ["SEGMENTER_TEST_CLOCK_STEP"],), daemon=True).start()

from streams.cli import main  # noqa: E402  (after the clock is in place)

sys.exit(main())
