"""Which partition applies an event: here, or another one through an identity hand-off
(:mod:`streams.live.handoffs`), and what comes of the hand-offs this partition receives.

A visitor's record may live on another partition than its customer's: the engines apply what
is theirs, and this sends the rest on, waits for the merges it asked for, and sends the
unlinks an erasure leaves for visitors held elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streams.engine import Engine
from streams.live.handoffs import Handoff, Link, Merge, Route, Unlink
from streams.live.metrics import Metrics
from streams.live.outbox import Outbox
from streams.model.changes import SegmentChange
from streams.model.events import BadEvent, Envelope, decode, type_of
from streams.model.state import decode as decode_state
from streams.model.state import encode as encode_state

log = logging.getLogger("segmenter.worker")

Result = list[SegmentChange] | BadEvent
Position = tuple[str, int]


def _position(message: Any) -> Position:
    return f"{message.topic}#{message.partition}", message.offset


class Identity:
    """One worker's side of the hand-offs: what it sends, what it waits for, what it receives."""

    def __init__(self, partition_of: Callable[[str], int], outbox: Outbox, metrics: Metrics, *,
                 monotonic: Callable[[], float], wait: float) -> None:
        self.partition_of = partition_of
        self.outbox = outbox
        self.metrics = metrics
        self.monotonic = monotonic
        self.wait = wait
        self.awaiting_merge: dict[str, float] = {}
        """Customers (and their visitor ids) whose identify went out as a Link and is not back
        yet -> when it went (monotonic)."""

    def held(self, item: tuple[Any, Any]) -> bool:
        """An event of a customer whose identify is still travelling waits for its merge, so the
        customer's events apply in the order replay applies them; for ``wait`` seconds at most,
        so that a hand-off lost on the way holds nothing for ever."""
        event = item[1]
        if not self.awaiting_merge or not isinstance(event, Envelope):
            return False
        key = event.customer_id or event.anonymous_id or ""
        since = self.awaiting_merge.get(key)
        if since is None:
            return False
        if self.monotonic() - since < self.wait:
            return True
        log.warning("the merge of %s did not come back within %.0f s: its events go on without it", key,
                    self.wait)
        self.metrics.handoffs_given_up.inc()
        del self.awaiting_merge[key]
        return False

    def apply_message(self, partition: int, engine: Engine, message: Any,
                      event: Envelope | BadEvent) -> None:
        """An input message: a dead letter, or an event applied here or handed on; its changes
        go out."""
        if isinstance(event, BadEvent):
            self.outbox.dead_letter(message, event.reason)
            return
        duplicates = engine.stats.duplicates
        try:
            result = self.apply(partition, engine, event, message.value, _position(message))
        except Exception as exc:  # one message must never stop the worker
            self._failed(partition, message, exc)
            return
        if isinstance(result, BadEvent):
            self.outbox.dead_letter(message, result.reason)
        else:
            self._emit(result)
        if engine.stats.duplicates != duplicates:
            self.metrics.duplicates.inc()

    def receive_message(self, partition: int, engine: Engine, message: Any,
                        handoff: Handoff | None) -> None:
        """A message of the identity topic; its changes go out."""
        if handoff is None:
            log.error("partition %d: unreadable identity hand-off at offset %d dead-lettered",
                      partition, message.offset)
            self.outbox.dead_letter(message, "unreadable identity hand-off")
            return
        try:
            result = self.receive(engine, handoff, _position(message))
        except Exception as exc:  # one message must never stop the worker
            if isinstance(handoff, Merge):
                self.outbox.handoff(handoff.anon, Unlink(handoff.anon))
            self._failed(partition, message, exc, raw=getattr(handoff, "event", None))
            return
        if isinstance(result, BadEvent):
            # The event it carried is the bad one: that is what the dead letter keeps.
            self.outbox.dead_letter(message, result.reason, raw=getattr(handoff, "event", None))
        else:
            self._emit(result)

    def _failed(self, partition: int, message: Any, exc: Exception, raw: bytes | None = None) -> None:
        log.exception("partition %d: message at %s#%s offset %s failed; dead-lettered", partition,
                      message.topic, message.partition, message.offset)
        self.outbox.dead_letter(message, f"error: {type(exc).__name__}: {exc}", raw=raw)

    def apply(self, partition: int, engine: Engine, event: Envelope, raw: bytes,
              position: Position) -> Result:
        """Apply an input event here, or hand it to the partition that must apply it (then no
        changes here)."""
        outbox = self.outbox
        anon = event.anonymous_id
        if (type_of(event) == "identify" and anon and anon != event.customer_id
                and self.partition_of(anon) != partition):
            outbox.handoff(anon, Link(anon, event.customer_id or "", raw, event.instant))
            now = self.monotonic()
            self.awaiting_merge[event.customer_id or ""] = self.awaiting_merge[anon] = now
            return []
        if event.customer_id is None and anon:
            customer = engine.customer_of(anon)
            if customer is not None and self.partition_of(customer) != partition:
                outbox.handoff(customer, Route(customer, raw, event.instant))
                return []
        return self._unlinks(engine, engine.process(event, raw, position=position))

    def receive(self, engine: Engine, handoff: Handoff, position: Position) -> Result:
        """Apply a hand-off that came to this partition."""
        match handoff:
            case Link(anon, customer, event, ts):
                visitor = engine.hand_over_visitor(anon, customer)
                self.outbox.handoff(customer, Merge(anon, customer, None if visitor is None else
                                                    encode_state(visitor), event, ts))
            case Merge(anon, customer, state, event, _):
                self.awaiting_merge.pop(customer, None)
                self.awaiting_merge.pop(anon, None)
                identify = decode(event, limits=engine.limits)
                result: Result = identify if isinstance(identify, BadEvent) else engine.merge_visitor(
                    anon, None if state is None else decode_state(state), identify, event, position=position)
                if isinstance(result, BadEvent):
                    # Not merged: the visitor's partition forgets the alias it recorded, as the
                    # visitor's record is gone.
                    self.outbox.handoff(anon, Unlink(anon))
                return self._unlinks(engine, result)
            case Route(customer, event, _):
                routed = decode(event, limits=engine.limits)
                if isinstance(routed, BadEvent):
                    return routed
                return self._unlinks(engine, engine.apply_routed(customer, routed, event, position=position))
            case Unlink(anon):
                engine.unlink(anon)
                self._unlinks(engine, [])
        return []

    def _emit(self, changes: list[SegmentChange]) -> None:
        for change in changes:
            self.outbox.change(change)

    def _unlinks(self, engine: Engine, result: Result) -> Result:
        """Send on the unlinks an erasure left for visitors held on other partitions."""
        for anon in engine.take_unlinked():
            self.outbox.handoff(anon, Unlink(anon))
        return result
