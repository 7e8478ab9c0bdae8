"""The segmentation engine, pure and deterministic: one customer's step (:mod:`.customer`), many
customers with their timers and clock (:class:`Engine`). Both drivers, ``segmenter replay`` and
the live worker, run this same code. Imports only :mod:`streams.rules` and :mod:`streams.model`:
no Kafka, no faust, no files."""

from streams.engine.engine import Engine
from streams.engine.stats import Stats

__all__ = ["Engine", "Stats"]
