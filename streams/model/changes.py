"""Segment changes (docs/contract.md, Output): what automation platforms consume.

``change_id`` is a hash of who, which segment, which transition (its ordinal for this customer
and segment) and when: the same input gives the same id on every run and every worker, so a
consumer that keeps the ids it has acted on never sends the same SMS twice.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from streams.model.clock import Instant, format_instant

ENTERED = "entered"
EXITED = "exited"


class Consent(msgspec.Struct, gc=False):
    email: bool | None = None
    sms: bool | None = None
    push: bool | None = None


class SegmentChange(msgspec.Struct, gc=False):
    change_id: str
    customer_id: str
    segment: str
    change: str
    at: str
    reason: dict[str, Any]
    consent: Consent
    rule_version: int
    pack_version: str = ""
    """The version of the rule pack that was live at ``at``."""


def change_id(customer_id: str, segment: str, transition: int, at: Instant, origin: int = 0) -> str:
    """Deterministic id: the n-th transition of this customer in this segment, at this instant.

    Odd transitions are entries and even ones exits, so the kind is already in ``transition``;
    ``origin`` tells apart the lives of a customer id that was erased and came back.
    """
    text = f"{customer_id}\x1f{segment}\x1f{transition}\x1f{at}\x1f{origin}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def make(customer_id: str, segment: str, transition: int, at: Instant, reason: dict[str, Any],
         consent: Consent, rule_version: int, origin: int = 0, pack_version: str = "") -> SegmentChange:
    return SegmentChange(
        change_id=change_id(customer_id, segment, transition, at, origin),
        customer_id=customer_id,
        segment=segment,
        change=ENTERED if transition % 2 == 1 else EXITED,
        at=format_instant(at),
        reason=reason,
        consent=consent,
        rule_version=rule_version,
        pack_version=pack_version,
    )


_encoder = msgspec.json.Encoder()


def encode(change: SegmentChange) -> bytes:
    return _encoder.encode(change)
