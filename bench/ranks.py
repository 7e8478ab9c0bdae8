"""Percentiles as the benchmarks print them: the nearest rank, no interpolation, so that a
figure is always one that was measured."""

from __future__ import annotations


def nearest_rank(ordered: list[float], fraction: float, empty: float = float("nan")) -> float:
    """The value at ``fraction`` of sorted ``ordered`` (``empty`` when there is none)."""
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else empty
