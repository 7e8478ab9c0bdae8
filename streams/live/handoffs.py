"""Identity hand-offs between partitions, through the internal ``<app_id>-identity`` topic.

Events are keyed by customer id, or by visitor id before login, so a visitor's record and its
customer's may live on different partitions, each with its own engine. An ``identify`` (keyed
by customer) goes to the visitor's partition as a :class:`Link`; that partition records the
alias, gives up the visitor's record and sends it back as a :class:`Merge` to the customer's
partition, which applies the ``identify``. Later visitor-only events are sent on to the
customer's partition as a :class:`Route`, and an erasure sends an :class:`Unlink`.

The worker's side of them is :mod:`streams.live.identity`. Hand-offs carry the event time of the event they carry, so they take their turn in event-time
order with the partition's own input.
"""

from __future__ import annotations

import msgspec


class Link(msgspec.Struct, tag="link"):
    anon: str
    customer: str
    event: bytes
    ts: int


class Merge(msgspec.Struct, tag="merge"):
    anon: str
    customer: str
    state: bytes | None
    event: bytes
    ts: int


class Route(msgspec.Struct, tag="route"):
    customer: str
    event: bytes
    ts: int


class Unlink(msgspec.Struct, tag="unlink"):
    anon: str


Handoff = Link | Merge | Route | Unlink
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Handoff)

def encode(handoff: Handoff) -> bytes:
    return _encoder.encode(handoff)


def decode_handoff(raw: bytes) -> Handoff | None:
    """None for bytes that are no hand-off."""
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError:
        return None
