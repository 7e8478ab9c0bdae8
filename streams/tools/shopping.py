"""What the simulated customers do over time: sessions of visits, carts, orders, refunds,
identity, consent and erasure, as events in time order.

Time moves in *sessions*: a burst of events seconds to minutes apart, then hours or days of
nothing. One heap holds, per customer, a wake-up at its next session plus the events already
drawn (a session, a refund days later). A wake-up draws the whole session, which never starts
before the wake-up, so popping the heap yields events in time order while holding only one
pending session per customer: a million events stream in constant memory.
"""


import heapq
from collections.abc import Iterator, Sequence
from random import Random
from typing import Any

from streams.tools.personas import (
    CATALOG,
    DAY_S,
    DEVICES,
    ERASURE_QUIET_S,
    ERASURE_RATE,
    HOUR_S,
    LANDING,
    SEARCHES,
    Customer,
    population,
)

# --- the simulation --------------------------------------------------------------------------

Payload = tuple[str, str | None, str | None, str | None, str | None, str | None, dict[str, Any] | None]
"""(type, customer_id, anonymous_id, session_id, device, channel, properties)"""
Entry = tuple[int, int, int, Payload | None]
"""(ts, customer index, per-customer sequence, payload); a None payload is a session wake-up."""


class _Visit:
    """One session in progress: its ids and the clock that moves with every step."""

    __slots__ = ("anon", "c", "channel", "device", "sid", "t")

    def __init__(self, c: Customer, t: int, anon: str | None, device: str, channel: str) -> None:
        self.c, self.t, self.anon, self.device, self.channel = c, t, anon, device, channel
        self.sid = f"s{c.idx}-{c.sessions}"


class Simulation:
    """Draws sessions on wake-up and keeps every pending event of every customer in one heap."""

    def __init__(self, customers: int, days: float, seed: int, start: int,
                 personas: Sequence[str] | None) -> None:
        self.rng = Random(seed)
        self.start = start
        self.end = start + int(days * DAY_S)
        self.heap: list[Entry] = []
        self.customers = population(customers, seed, personas)
        span = self.end - start
        arrival = Random(f"{seed}:arrival")
        for c in self.customers:
            self._schedule_life(c, arrival, span)

    def _schedule_life(self, c: Customer, rng: Random, span: int) -> None:
        """Half the customers are regulars seen in the first days, half arrive over the run."""
        p = c.persona
        if p.spend_target is not None or rng.random() < 0.5:
            first = self.start + int(rng.random() * min(span, 3 * DAY_S))
        else:
            first = self.start + int(rng.random() * span)
        if p.order_every_days is not None:
            c.next_order = first + int(rng.uniform(0, p.order_every_days[0]) * DAY_S)
        if rng.random() < ERASURE_RATE:
            c.erase_at = first + int(rng.random() * (self.end - first))
        self._wake_at(c, first)

    # --- the stream -----------------------------------------------------------------------

    def events(self) -> Iterator[tuple[int, Payload]]:
        """(ts, payload) in time order; ties by customer, then by the customer's own order."""
        heap = self.heap
        pop = heapq.heappop
        customers = self.customers
        while heap:
            ts, idx, _, payload = pop(heap)
            if payload is None:
                self._wake(customers[idx], ts)
            else:
                yield ts, payload

    def _push(self, c: Customer, ts: int, payload: Payload | None) -> None:
        if ts >= self.end:
            return
        heapq.heappush(self.heap, (ts, c.idx, c.seq, payload))
        c.seq += 1
        if ts > c.horizon:
            c.horizon = ts

    def _wake_at(self, c: Customer, ts: int) -> None:
        self._push(c, ts, None)

    def _wake(self, c: Customer, t: int) -> None:
        if c.erase_at is not None and t >= c.erase_at:
            self._erase(c)
            return
        end = self._session(c, t)
        self._wake_at(c, end + self._gap(c))

    def _gap(self, c: Customer) -> int:
        """Seconds to the next session: exponential (visits cluster, then pause), at least 30 min."""
        mean = c.persona.lapsed_gap_hours if c.lapsed else c.persona.gap_hours
        return 1_800 + int(self.rng.expovariate(1.0 / (mean * HOUR_S)))

    def _erase(self, c: Customer) -> None:
        if c.known:
            payload: Payload = ("customer_erased", c.cid, None, None, None, None, None)
            self._push(c, max(c.erase_at or 0, c.horizon + ERASURE_QUIET_S), payload)

    # --- one session ------------------------------------------------------------------------

    def _session(self, c: Customer, t: int) -> int:
        """Draw a whole session starting at ``t``; returns the time of its last event."""
        rng = self.rng
        p = c.persona
        c.sessions += 1
        t = _daytime(t, rng)
        device = c.device if rng.random() < 0.85 else DEVICES[int(rng.random() * 3)]
        if not c.known:
            anon: str | None = c.anon
        elif rng.random() < p.new_device:
            anon = f"{c.anon}-{c.sessions}"
        else:
            anon = None
        v = _Visit(c, t, anon, device, p.channels.pick(rng))
        if c.sessions == 1 and c.known:
            self._profile(v, signup=False)
        self._land(v)
        self._browse(v)
        if rng.random() < p.lead:
            self._lead(v)
        if not c.lapsed:  # a lapsed customer still looks around now and then, but never buys
            self._shop(v)
        if v.anon is not None and rng.random() < p.signup:
            self._log_in(v)
        if v.anon is None and rng.random() < 0.03:
            self._profile_change(v)
        return v.t

    def _shop(self, v: _Visit) -> None:
        """Cart and checkout: a regular buyer whose purchase is due goes all the way."""
        rng = self.rng
        c = v.c
        purchase_due = c.next_order is not None and v.t >= c.next_order
        if purchase_due or rng.random() < c.persona.cart:
            self._fill_cart(v, purchase_due)
        if c.cart and (purchase_due or rng.random() < c.persona.checkout):
            self._checkout(v, purchase_due)

    def _click(self, v: _Visit, typ: str, props: dict[str, Any] | None = None) -> None:
        """A clickstream event a few seconds to a few minutes after the previous one."""
        v.t += 2 + int(self.rng.expovariate(1 / 35))
        c = v.c
        self._push(c, v.t, (typ, None if v.anon else c.cid, v.anon, v.sid, v.device, v.channel, props))

    def _backend(self, v: _Visit, typ: str, props: dict[str, Any] | None, delay: int = 1) -> None:
        """A transaction or profile event: from a back-end system, keyed by customer, no device."""
        v.t += delay
        self._push(v.c, v.t, (typ, v.c.cid, None, None, None, None, props))

    def _land(self, v: _Visit) -> None:
        rng = self.rng
        landing = LANDING[v.channel]
        page = landing[int(rng.random() * len(landing))]
        if page == "product":
            self._view_product(v)
        else:
            category = v.c.persona.categories.pick(rng) if page == "category" else None
            self._page(v, page, category)

    def _page(self, v: _Visit, page: str, category: str | None = None) -> None:
        url = f"/{page}" if category is None else f"/{page}/{category}"
        self._click(v, "page_view", {"page_type": page, "url": url, "category": category})

    def _browse(self, v: _Visit) -> None:
        rng = self.rng
        p = v.c.persona
        low, high = p.views
        for _ in range(low + int(rng.random() * (high - low + 1))):
            r = rng.random()
            if r < p.pricing:
                self._page(v, "pricing")
            elif r < p.pricing + 0.08:
                category = p.categories.pick(rng)
                queries = SEARCHES[category]
                self._click(v, "search", {"query": queries[int(rng.random() * len(queries))]})
            elif r < p.pricing + 0.2:
                self._page(v, "category", p.categories.pick(rng))
            else:
                self._view_product(v)

    def _pick_sku(self, c: Customer) -> tuple[str, str, float]:
        rng = self.rng
        category = c.persona.categories.pick(rng)
        skus = CATALOG[category]
        sku, price = skus[int(len(skus) * rng.random() ** c.persona.price_bias)]
        return category, sku, price

    def _view_product(self, v: _Visit) -> tuple[str, str, float]:
        item = self._pick_sku(v.c)
        category, sku, price = item
        self._click(v, "product_view", {"sku": sku, "category": category, "price": price})
        viewed = v.c.viewed
        viewed.append(item)
        if len(viewed) > 6:
            del viewed[0]
        return item

    def _lead(self, v: _Visit) -> None:
        """B2B: a form that asks for a work email, so the visitor becomes known first."""
        if v.anon is not None:
            self._log_in(v)
        kind = "demo_request" if self.rng.random() < 0.5 else "quote_request"
        self._click(v, kind, {"form": kind.split("_")[0], "seats": 5 * (1 + int(self.rng.random() * 40))})

    def _fill_cart(self, v: _Visit, purchase: bool) -> None:
        rng = self.rng
        c = v.c
        for _ in range(1 + int(rng.random() * rng.random() * 3)):
            viewed = c.viewed
            category, sku, price = (viewed[int(rng.random() * len(viewed))]
                                    if viewed and rng.random() < 0.7 else self._view_product(v))
            self._add(v, category, sku, price, 1 + int(rng.random() ** 4 * 3))
        if not purchase and c.cart and rng.random() < c.persona.remove:
            sku = next(iter(c.cart))
            self._click(v, "remove_from_cart", {"sku": sku})
            del c.cart[sku]

    def _add(self, v: _Visit, category: str, sku: str, price: float, quantity: int) -> None:
        self._click(v, "add_to_cart", {"sku": sku, "category": category, "price": price, "quantity": quantity})
        line = v.c.cart.get(sku)
        if line is None:
            v.c.cart[sku] = [quantity, price, category]
        else:
            line[0] += quantity
            line[1] = price

    def _checkout(self, v: _Visit, purchase: bool) -> None:
        c = v.c
        p = c.persona
        buying = purchase or self.rng.random() < p.buy
        if buying:
            while _cart_value(c.cart) < p.min_order:
                if len(c.cart) >= 4:  # raise a quantity rather than fill the cart forever
                    sku, line = max(c.cart.items(), key=lambda kv: kv[1][1])
                    self._add(v, line[2], sku, line[1], 1)
                else:
                    self._add(v, *self._view_product(v), 1)
        self._page(v, "cart")
        self._click(v, "checkout_started", {"cart_value": round(_cart_value(c.cart), 2)})
        if not buying:
            return
        if v.anon is not None:
            self._log_in(v)
        self._order(v)

    def _order(self, v: _Visit) -> None:
        rng = self.rng
        c = v.c
        p = c.persona
        items = [{"sku": sku, "category": category, "price": price, "quantity": quantity}
                 for sku, (quantity, price, category) in c.cart.items()]
        total = round(_cart_value(c.cart), 2)
        c.orders += 1
        order_id = f"o{c.idx}-{c.orders}"
        props = {"order_id": order_id, "total": total, "currency": c.currency, "items": items}
        self._backend(v, "order_completed", props, delay=3 + int(rng.random() * 20))
        c.cart.clear()
        c.spend += total
        if p.order_every_days is not None:
            c.next_order = v.t + int(rng.uniform(*p.order_every_days) * DAY_S)
        if p.spend_target is not None and c.spend >= c.spend_target:
            c.lapsed = True
            c.next_order = None
        if rng.random() < p.refund:
            amount = total if rng.random() < 0.6 else round(total * rng.uniform(0.1, 0.9), 2)
            when = v.t + int(rng.uniform(1, 14) * DAY_S)
            self._push(c, when, ("order_refunded", c.cid, None, None, None, None,
                                 {"order_id": order_id, "amount": amount}))

    def _log_in(self, v: _Visit) -> None:
        """The anonymous visitor signs up (first time) or logs in; ``identify`` links the two ids."""
        c = v.c
        anon = v.anon
        first = not c.known
        self._click_both(v, "signup" if first else "login", anon)
        self._click_both(v, "identify", anon)
        v.anon = None
        c.known = True
        if first:
            self._profile(v, signup=True)

    def _click_both(self, v: _Visit, typ: str, anon: str | None) -> None:
        v.t += 2 + int(self.rng.expovariate(1 / 20))
        c = v.c
        self._push(c, v.t, (typ, c.cid, anon, v.sid, v.device, v.channel, None))

    def _profile(self, v: _Visit, *, signup: bool) -> None:
        """Traits and consent as a CRM sends them: at signup, or once for a known customer."""
        rng = self.rng
        c = v.c
        p = c.persona
        traits: dict[str, Any] = {"country": c.country}
        if p.b2b:
            traits["plan"] = "trial" if signup else "team"
            traits["company_size"] = (5, 20, 50, 200, 1_000, 5_000)[int(rng.random() ** 1.5 * 6)]
        else:
            traits["plan"] = "free" if rng.random() < 0.7 else "plus"
        self._backend(v, "profile_updated", {"traits": traits})
        email, sms, push = p.consent
        self._backend(v, "consent_updated", {
            "email": rng.random() < email, "sms": rng.random() < sms, "push": rng.random() < push,
        })

    def _profile_change(self, v: _Visit) -> None:
        """Now and then: a plan change, or a channel opted out of (or into)."""
        rng = self.rng
        if rng.random() < 0.5:
            plan = ("team", "enterprise") if v.c.persona.b2b else ("free", "plus", "premium")
            self._backend(v, "profile_updated", {"traits": {"plan": plan[int(rng.random() * len(plan))]}})
        else:
            channel = ("email", "sms", "push")[int(rng.random() * 3)]
            self._backend(v, "consent_updated", {channel: rng.random() < 0.4})


def _cart_value(cart: dict[str, list[Any]]) -> float:
    return float(sum(line[0] * line[1] for line in cart.values()))


def _daytime(t: int, rng: Random) -> int:
    """Few sessions start between 01:00 and 07:00 UTC: most of them move to the morning."""
    hour = (t % DAY_S) // HOUR_S
    if 1 <= hour < 7 and rng.random() < 0.75:
        return t + 6 * HOUR_S
    return t

