"""Current memberships (docs/activation.md, Memberships): one record per customer and segment.

The ``segment-memberships`` topic is compacted and keyed by customer and segment, so it holds
every membership that is current (an ``entered`` writes the record, an ``exited`` a tombstone):
a consumer that starts today learns every member without replaying ``segment-changes``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from streams.model.changes import ENTERED, SegmentChange


class Membership(msgspec.Struct):
    customer_id: str
    segment: str
    since: str
    """When the customer entered (the change's ``at``)."""
    change_id: str
    reason: dict[str, Any]
    rule_version: int
    pack_version: str = ""


_key = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Membership)


def key(customer_id: str, segment: str) -> bytes:
    """``["<customer_id>","<segment>"]``: unambiguous whatever the id holds."""
    return _key.encode([customer_id, segment])


def record(change: SegmentChange) -> tuple[bytes, bytes | None]:
    """The change's key and value on the memberships topic (None: a tombstone)."""
    if change.change != ENTERED:
        return key(change.customer_id, change.segment), None
    return key(change.customer_id, change.segment), _key.encode(Membership(
        change.customer_id, change.segment, change.at, change.change_id, change.reason, change.rule_version,
        change.pack_version))


def decode(raw: bytes) -> Membership:
    return _decoder.decode(raw)


_key_decoder = msgspec.json.Decoder(tuple[str, str])


def segment_of(raw_key: bytes) -> str | None:
    """The segment a record's key names; None for a key that is not one of :func:`key`'s."""
    try:
        return _key_decoder.decode(raw_key)[1]
    except msgspec.DecodeError:
        return None
