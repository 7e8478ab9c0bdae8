"""From one customer's segment changes to activations, through the pack's policies.

Everything is decided in event time, from the customer's record alone, so replay and the
worker give the same activations. For an ``entered`` change of a segment feeding a channel, in
this order: consent on the channel at the change, priority (not while in a higher segment of
its group), once per value of the segment's ``once_per`` field (one text per cart), the
segment's cool-down (since its latest activation), the channel's cap (sends within its
period), then quiet hours in the customer's time zone, which hold the message (its
``send_at``) rather than drop it. An ``exited`` change, a consent withdrawn, a higher segment of
the group entered or an erasure cancels what is still held. Each suppression is counted by
policy, segment and channel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from streams.engine.judge import consent_of
from streams.model.activations import CANCEL, SEND, Activation, activation_id
from streams.model.changes import ENTERED, SegmentChange
from streams.model.clock import SECOND, Instant, format_instant, from_datetime
from streams.model.state import CustomerState
from streams.rules.activation import ActivationSettings as Settings
from streams.rules.activation import Channel, QuietHours
from streams.rules.pack import RulePack

POLICIES = ("consent", "priority", "once_per", "cooldown", "cap")
"""The policies that suppress an activation, in the order they are checked: the first that
says no is the one counted."""

Counts = Counter[tuple[str, str, str]]
"""(policy, segment, channel) -> suppressions; ("held", segment, channel) -> holds."""


def activate(pack: RulePack, key: str, state: CustomerState, changes: list[SegmentChange], now: Instant,
             out: list[Activation], counts: Counts) -> None:
    """The activations the customer's changes at ``now`` give, into ``out``."""
    settings = pack.activation
    if not settings.channels:
        return
    if state.held:
        state.held = [h for h in state.held if h[3] > now]  # gone out already
    for change in changes:
        if change.change == ENTERED:
            _entered(settings, key, state, change, now, out, counts)
        else:
            _cancel(state, out, now, key, _of_segment(change.segment), "exited")
    if state.held:
        def withdrawn(h: list[Any]) -> bool:
            channel = settings.channels.get(str(h[1]))
            return channel is None or (channel.consent is not None and not _consented(state, channel))

        _cancel(state, out, now, key, withdrawn, "consent withdrawn")


def _of_segment(segment: str) -> Callable[[list[Any]], bool]:
    return lambda held: held[2] == segment


def cancel_all(key: str, state: CustomerState, now: Instant, out: list[Activation]) -> None:
    """The customer is erased: nothing held may go out."""
    _cancel(state, out, now, key, lambda h: True, "erased")


def _entered(settings: Settings, key: str, state: CustomerState, change: SegmentChange, now: Instant,
             out: list[Activation], counts: Counts) -> None:
    segment = change.segment
    channels = settings.feeds(segment)
    if not channels:
        return
    group = settings.groups.get(segment, ())
    rank = settings.priority.get(segment, 0)
    higher = next((s for s in group[:rank] if state.is_member(s)), None)
    cooldown = settings.cooldowns.get(segment)
    last = state.activated.get(segment)
    cooling = cooldown is not None and last is not None and now - last < cooldown
    once = settings.once_per.get(segment)
    value = once.get(state) if once is not None else None
    again = once is not None and segment in state.activated_on and state.activated_on[segment] == value
    activated = False
    prior = [last, [state.activated_on[segment]] if segment in state.activated_on else None]
    held_now: list[list[Any]] = []
    for channel in channels:
        policy = None
        if channel.consent is not None and not _consented(state, channel):
            policy = "consent"
        elif higher is not None:
            policy = "priority"
        elif again:
            policy = "once_per"
        elif cooling:
            policy = "cooldown"
        elif channel.cap is not None and _sends_within(state, channel, now) >= channel.cap.count:
            policy = "cap"
        if policy is not None:
            counts[policy, segment, channel.name] += 1
            continue
        send_at = now
        if channel.quiet_hours is not None:
            send_at = _after_quiet_hours(channel.quiet_hours, settings, state, now)
            if send_at > now:
                counts["held", segment, channel.name] += 1
        ident = activation_id(change.change_id, channel.name)
        out.append(Activation(ident, SEND, channel.name, key, segment, change.change_id, change.at,
                              format_instant(send_at), change.reason, change.consent))
        sends = state.sent.setdefault(channel.name, [])
        sends.append(send_at)
        if channel.cap is not None:
            del sends[:-channel.cap.count]
        else:
            del sends[:-1]
        if send_at > now:
            held_now.append([ident, channel.name, segment, send_at, change.change_id])
        else:
            prior = [-1, None]  # one went out: cancelling the others does not undo the activation
        activated = True
    for held in held_now:
        state.held.append(held + prior)
    if activated:
        state.activated[segment] = now
        if once is not None:
            state.activated_on[segment] = value
        if group:  # a lower segment of the group held: this one wins
            lower = set(group[rank + 1:])
            _cancel(state, out, now, key, lambda h: h[2] in lower, f"{segment} has priority")


def _consented(state: CustomerState, channel: Channel) -> bool:
    return getattr(state, f"consent_{channel.consent}") is True


def _sends_within(state: CustomerState, channel: Channel, now: Instant) -> int:
    assert channel.cap is not None
    start = now - channel.cap.period
    return sum(1 for t in state.sent.get(channel.name, ()) if t > start)


def _after_quiet_hours(quiet: QuietHours, settings: Settings, state: CustomerState, now: Instant) -> Instant:
    """``now``, or the end of the quiet hours ``now`` falls in, in the customer's time zone."""
    zone = settings.zone(state.traits)
    local = datetime.fromtimestamp(now / SECOND, zone)
    minute = local.hour * 60 + local.minute
    if not quiet.holds(minute):
        return now
    end = local.replace(hour=quiet.end // 60, minute=quiet.end % 60, second=0, microsecond=0)
    if end <= local:
        end = (end.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
    return from_datetime(end)


def _cancel(state: CustomerState, out: list[Activation], now: Instant, key: str,
            which: Callable[[list[Any]], bool], why: str) -> None:
    keep, cancelled = [], []
    for held in state.held:
        if which(held):
            ident, channel, segment, send_at, change_id = held[:5]
            out.append(Activation(ident, CANCEL, channel, key, segment, change_id, format_instant(now),
                                  format_instant(send_at), {"cancelled": why}, consent_of(state)))
            cancelled.append(held)
        else:
            keep.append(held)
    state.held = keep
    for held in cancelled:
        _never_sent(state, held, still_held=any(other[4] == held[4] for other in keep))


def _never_sent(state: CustomerState, held: list[Any], *, still_held: bool) -> None:
    """A cancelled message did not reach the customer: it counts for no cap, and unless another
    channel sent that activation (or still holds it), for no cool-down or ``once_per`` either."""
    channel, segment, send_at = held[1], held[2], held[3]
    sends = state.sent.get(channel)
    if sends and send_at in sends:
        sends.remove(send_at)
    if len(held) < 7 or held[5] == -1 or still_held:
        return
    prior_at, prior_once = held[5], held[6]
    if prior_at is None:
        state.activated.pop(segment, None)
    else:
        state.activated[segment] = prior_at
    if prior_once is None:
        state.activated_on.pop(segment, None)
    else:
        state.activated_on[segment] = prior_once[0]
