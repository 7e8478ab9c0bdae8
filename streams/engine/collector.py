"""Python's cyclic garbage collector, set for the way the engine allocates.

Every event makes a few short-lived containers, and every customer's record holds lists and
dicts that live long: with Python's default (a young collection every 700 allocations) the
collector took about 12% of a replay's time and found almost nothing to free. A young
collection every 10,000 allocations takes that back; what cycles there are still go, a
little later. Every command sets it (:func:`streams.cli.main`).
"""

from __future__ import annotations

import gc

YOUNG = 10_000
"""Allocations between two young collections."""


def tune() -> None:
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG), *older)
