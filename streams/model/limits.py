"""What one message and one customer may take up.

Every bound is a worker setting of the same name (and ``segmenter replay`` reads the same
``SEGMENTER_*`` variables, so both drivers draw the same line); a message beyond one is a bad
event whose reason names the bound. Per customer, the bounds together keep the encoded record
under ``max_state_bytes``, which must fit in one Kafka message: the worker and replay refuse
to start with limits that would not (:func:`streams.engine.bounds.check`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

import msgspec

from streams.errors import SegmenterError

Positive = Annotated[int, msgspec.Meta(ge=1)]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    max_event_bytes: Positive = 64 * 1024
    """Largest message accepted (bytes)."""
    max_nesting: Positive = 20
    """Deepest nesting of objects and arrays in a message; real events nest four or five deep."""
    max_id_length: Positive = 256
    """Longest id (characters): event, customer, visitor, session, order and sku ids, and the
    ``device`` and ``channel`` labels."""
    max_amount: Annotated[float, msgspec.Meta(gt=0)] = 1e9
    """Largest amount: prices, totals, refunds, cart values."""
    max_quantity: Positive = 10_000
    """Largest quantity of one cart line or order item."""
    max_trait_length: Positive = 1024
    """Longest string value of a declared trait (characters)."""
    max_cart_lines: Positive = 100
    """Distinct skus in one customer's cart."""
    max_visitor_ids: Positive = 50
    """Visitor ids merged into one customer."""
    max_recent_events: Positive = 10_000
    """Events one customer may send within the allowed lateness: their ids are remembered that
    long, to drop duplicates."""
    max_state_bytes: Positive = 512 * 1024
    """Largest encoded customer record the bounds above may lead to; it, a hand-off's envelope
    and the event that caused it must fit in one Kafka message (1 MiB by default)."""


DEFAULT_LIMITS = Limits()


def limits_of(values: Mapping[str, object]) -> Limits:
    """Limits from settings or variables, each checked (a limit of 0 or less is refused)."""
    try:
        return msgspec.convert(dict(values), Limits, strict=False)
    except msgspec.ValidationError as exc:
        raise SegmenterError(f"invalid limit: {exc} (flags or SEGMENTER_* variables)") from None


def from_environ(environ: Mapping[str, str] | None = None) -> Limits:
    """The limits the ``SEGMENTER_*`` variables set (``SEGMENTER_MAX_CART_LINES``, ...), as the
    worker reads them: replay given the worker's environment draws the same lines."""
    environ = os.environ if environ is None else environ
    return limits_of({name: environ[f"SEGMENTER_{name.upper()}"] for name in Limits.__struct_fields__
                      if f"SEGMENTER_{name.upper()}" in environ})
