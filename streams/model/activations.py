"""Activations (docs/activation.md): what a channel service (SMS, email, push) acts on.

An activation is sent for an ``entered`` change of a segment that feeds a channel, once every
policy allows it; ``send_at`` is when the message may go (the end of the customer's quiet hours,
or at once). A ``cancel`` with the same ``activation_id`` follows when the membership ends, or
consent on the channel is withdrawn, before ``send_at``: a held message is then never sent.
Ids are deterministic (from the change and the channel), so a service drops duplicates by id.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from streams.model.changes import Consent

SEND = "send"
CANCEL = "cancel"


class Activation(msgspec.Struct, gc=False):
    activation_id: str
    action: str
    """``send`` or ``cancel``."""
    channel: str
    customer_id: str
    segment: str
    change_id: str
    """The ``entered`` change the activation came from (a cancel carries the same)."""
    at: str
    """Event time of the decision (the change; for a cancel, what cancelled it)."""
    send_at: str
    """When the message may go: ``at``, or the end of the customer's quiet hours."""
    reason: dict[str, Any]
    consent: Consent


def activation_id(change_id: str, channel: str) -> str:
    return hashlib.blake2b(f"{change_id}\x1f{channel}".encode(), digest_size=16).hexdigest()


_encoder = msgspec.json.Encoder()


def encode(activation: Activation) -> bytes:
    return _encoder.encode(activation)
