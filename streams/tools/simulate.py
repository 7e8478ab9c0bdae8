"""A realistic, deterministic event simulator: a population of shoppers as JSON lines (docs/contract.md).

Why it exists: the rules are only as good as the traffic they are tried on. Hand-written
scenarios test one rule at a time; a simulated population exercises every segment at once,
with the identity merges, late refunds, consent changes, erasures, bad messages and
redeliveries that real traffic has, at a size that shows what the engine costs.

How it works:

- Every customer has a *persona* (:data:`PERSONAS`): the weights a practitioner would
  recognise in their own analytics (browsers who rarely buy, bargain hunters who abandon
  carts, loyal repeat buyers, ...). Behaviour is drawn from the persona, never scripted, so
  segment membership comes out of behaviour the way it would in production.
- Time moves in *sessions*: a burst of events seconds to minutes apart, then hours or days
  of nothing. One heap holds, per customer, a wake-up at its next session plus the events
  already drawn (a session, a refund days later). A wake-up draws the whole session, which
  never starts before the wake-up, so popping the heap yields events in time order while
  holding only one pending session per customer: a million events stream in constant memory.
- Determinism: one ``random.Random`` per concern, seeded from ``seed``, and a total order
  on the heap (time, customer, per-customer sequence). The same arguments give the same
  bytes on every machine. Event ids are ``f"{seed}-{n}"`` in output order.
- Noise (bad events, duplicate redeliveries) is added after the good stream by its own
  random generator, so the good events are the same bytes whatever ``bad_rate`` and
  ``duplicate_rate`` are: a test can check that the engine's output does not change either.

``segmenter simulate`` writes the events as JSON lines, or with ``--kafka`` produces them to the
worker's input topics through :func:`streams.tools.produce.produce` (``--rate`` paces it), with a progress
line on stderr.

Timestamps have second resolution. Output is sorted by ``ts`` except for injected noise: a
duplicate carries its original's bytes, so it sits up to :data:`DUPLICATE_DELAY_S` seconds
behind its neighbours, the way a redelivery does.
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import sys
import time
from bisect import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import Any

import orjson

DAY_S = 86_400
HOUR_S = 3_600
DUPLICATE_DELAY_S = 120
"""A redelivery arrives within this many seconds after the original."""
ERASURE_RATE = 0.001
"""Customers whose life ends with ``customer_erased`` (GDPR requests are rare)."""
ERASURE_QUIET_S = DAY_S
"""An erasure comes at least this long after the customer's last event."""

CATEGORIES = ("electronics", "apparel", "home", "beauty", "sports", "books")
DEVICES = ("mobile", "desktop", "tablet")
CHANNELS = ("organic", "paid_search", "email", "social", "direct")

_CATALOG_SIZE = 240
"""Skus per category."""
_PRICES: dict[str, tuple[float, float, float, float]] = {
    # category: median, log-sigma, min, max. Electronics has a long tail into the thousands.
    "electronics": (180.0, 1.1, 9.0, 3_200.0),
    "apparel": (45.0, 0.7, 6.0, 450.0),
    "home": (70.0, 1.0, 5.0, 2_400.0),
    "beauty": (28.0, 0.6, 4.0, 220.0),
    "sports": (55.0, 0.9, 5.0, 1_800.0),
    "books": (16.0, 0.4, 3.0, 90.0),
}
_COUNTRIES = {  # ISO 3166 code: (currency of its orders, share of customers)
    "US": ("USD", 40), "GB": ("GBP", 12), "DE": ("EUR", 10), "FR": ("EUR", 8), "CA": ("CAD", 7),
    "AU": ("AUD", 5), "NL": ("EUR", 4), "ES": ("EUR", 4), "IN": ("INR", 4), "BR": ("BRL", 3),
    "JP": ("JPY", 3),
}
_SEARCHES = {
    "electronics": ("headphones", "4k tv", "laptop", "usb-c charger", "smartwatch"),
    "apparel": ("rain jacket", "sneakers", "linen shirt", "jeans"),
    "home": ("sofa", "coffee machine", "desk lamp", "bed sheets"),
    "beauty": ("sunscreen", "moisturiser", "perfume"),
    "sports": ("yoga mat", "running shoes", "bike helmet"),
    "books": ("cookbook", "sci-fi", "bestsellers"),
}
_LANDING = {
    # channel -> page types a visit from it lands on
    "organic": ("home", "category", "product"),
    "paid_search": ("product", "category"),
    "email": ("product", "home"),
    "social": ("product",),
    "direct": ("home",),
}


class Weighted:
    """A fixed weighted choice, drawn with one ``random()`` and a bisect (``choices`` is slower)."""

    __slots__ = ("cum", "items")

    def __init__(self, weights: dict[str, float]) -> None:
        self.items = tuple(weights)
        self.cum = tuple(accumulate(weights.values()))

    def pick(self, rng: Random) -> str:
        return self.items[bisect(self.cum, rng.random() * self.cum[-1])]


@dataclass(frozen=True)
class Persona:
    """How one kind of customer behaves. Chances are per session unless said otherwise."""

    name: str
    weight: float
    why: str
    gap_hours: float
    """Mean time between two sessions (exponential, so visits cluster and pause)."""
    views: tuple[int, int]
    """Browsing steps per session (page views, product views, searches)."""
    devices: Weighted
    channels: Weighted
    categories: Weighted
    price_bias: float = 1.0
    """Which skus they pick: 1 is uniform over the catalog, < 1 leans expensive, > 1 cheap."""
    cart: float = 0.1
    """A session puts something in the cart."""
    remove: float = 0.1
    """A cart session takes something back out."""
    checkout: float = 0.4
    """A session with a cart starts checkout."""
    buy: float = 0.5
    """A started checkout becomes an order."""
    order_every_days: tuple[float, float] | None = None
    """Regular buyers: the next purchase is due this many days after the last one."""
    min_order: float = 0.0
    refund: float = 0.05
    """An order is refunded (fully or in part) days later."""
    anonymous: float = 0.3
    """The customer is first seen as an anonymous visitor."""
    signup: float = 0.2
    """An anonymous session signs up (then ``identify`` merges the visitor in)."""
    new_device: float = 0.05
    """A known customer's session starts anonymous on another device, then logs in."""
    pricing: float = 0.0
    """A browsing step is a view of the pricing page."""
    lead: float = 0.0
    """A session sends a quote or demo request."""
    consent: tuple[float, float, float] = (0.6, 0.15, 0.25)
    """Chance to opt in to email, sms, push at signup."""
    b2b: bool = False
    spend_target: tuple[float, float] | None = None
    """Lapsing customers buy until lifetime spend reaches this, then stop buying."""
    lapsed_gap_hours: float = 0.0
    """Mean time between sessions once lapsed."""


def _w(**weights: float) -> Weighted:
    return Weighted(weights)


_COUNTRY = Weighted({code: share for code, (_, share) in _COUNTRIES.items()})
_WEB = _w(mobile=0.55, desktop=0.35, tablet=0.10)
_MIXED_CHANNELS = _w(organic=0.35, paid_search=0.2, email=0.1, social=0.15, direct=0.2)
_ALL_CATEGORIES = _w(electronics=1, apparel=1.3, home=1, beauty=0.8, sports=0.7, books=0.8)

PERSONAS: tuple[Persona, ...] = (
    Persona(
        "browser", 0.33, "the bulk of traffic: reads product pages, rarely commits",
        gap_hours=200, views=(2, 7), devices=_WEB, channels=_MIXED_CHANNELS, categories=_ALL_CATEGORIES,
        cart=0.06, checkout=0.3, buy=0.35, anonymous=0.6, signup=0.12,
    ),
    Persona(
        "bargain_hunter", 0.18, "price-sensitive: fills carts, removes, starts checkout, walks away",
        gap_hours=84, views=(3, 8), devices=_WEB,
        channels=_w(organic=0.2, paid_search=0.3, email=0.25, social=0.15, direct=0.1),
        categories=_w(electronics=1, apparel=1.5, home=1, beauty=1, sports=0.8, books=0.5),
        price_bias=2.0, cart=0.65, remove=0.35, checkout=0.6, buy=0.18, refund=0.1,
        anonymous=0.3, signup=0.4, consent=(0.75, 0.4, 0.3),
    ),
    Persona(
        "loyal", 0.15, "repeat buyers on a rhythm: an order every few weeks, opened from email",
        gap_hours=144, views=(2, 5), devices=_w(mobile=0.45, desktop=0.45, tablet=0.1),
        channels=_w(organic=0.15, paid_search=0.05, email=0.45, social=0.05, direct=0.3),
        categories=_w(electronics=0.6, apparel=1, home=1, beauty=1.2, sports=0.6, books=1),
        cart=0.15, checkout=0.5, buy=0.6, order_every_days=(12, 35), refund=0.04,
        anonymous=0.05, consent=(0.9, 0.45, 0.45),
    ),
    Persona(
        "high_ticket", 0.05, "few, large orders (1,000 or more), researched on a desktop",
        gap_hours=150, views=(4, 9), devices=_w(mobile=0.2, desktop=0.7, tablet=0.1),
        channels=_w(organic=0.35, paid_search=0.3, email=0.1, social=0.05, direct=0.2),
        categories=_w(electronics=3, home=2, sports=1),
        price_bias=0.15, cart=0.2, checkout=0.4, buy=0.25, order_every_days=(20, 50),
        min_order=1_000.0, refund=0.08, anonymous=0.3, signup=0.3,
    ),
    Persona(
        "mobile_first", 0.15, "phone in hand: many product views in one day, carts, push opt-ins",
        gap_hours=72, views=(5, 14), devices=_w(mobile=0.9, desktop=0.04, tablet=0.06),
        channels=_w(organic=0.15, paid_search=0.1, email=0.1, social=0.5, direct=0.15),
        categories=_w(electronics=1, apparel=2, home=0.5, beauty=1.5, sports=1, books=0.3),
        cart=0.45, checkout=0.35, buy=0.35, anonymous=0.35, signup=0.3, consent=(0.5, 0.2, 0.7),
    ),
    Persona(
        "b2b_lead", 0.07, "evaluating for a company: pricing pages, quote and demo requests",
        gap_hours=96, views=(2, 6), devices=_w(mobile=0.1, desktop=0.85, tablet=0.05),
        channels=_w(organic=0.3, paid_search=0.35, email=0.2, social=0.05, direct=0.1),
        categories=_w(electronics=2, home=1), cart=0.03, checkout=0.3, buy=0.3,
        anonymous=0.5, signup=0.25, pricing=0.35, lead=0.22, consent=(0.8, 0.05, 0.05), b2b=True,
    ),
    Persona(
        "lapsing", 0.07, "spent over 500 in the first weeks, then stopped buying",
        gap_hours=60, views=(2, 6), devices=_WEB, channels=_MIXED_CHANNELS,
        categories=_w(electronics=1.5, apparel=1, home=1.5, sports=1), price_bias=0.3,
        cart=0.2, checkout=0.5, buy=0.5, order_every_days=(3, 7), refund=0.0, anonymous=0.05,
        consent=(0.85, 0.3, 0.2), spend_target=(550, 1_200), lapsed_gap_hours=400,
    ),
)
PERSONA_NAMES = tuple(p.name for p in PERSONAS)


# --- the catalog and the population --------------------------------------------------------


Sku = tuple[str, float]
"""(sku, unit price)"""


def _catalog() -> dict[str, list[Sku]]:
    """Skus per category sorted by price, the same for every seed (so skus are comparable)."""
    rng = Random("segmenter-catalog")
    catalog: dict[str, list[Sku]] = {}
    for category, (median, sigma, low, high) in _PRICES.items():
        prices = sorted(
            min(high, max(low, round(rng.lognormvariate(math.log(median), sigma)))) - 0.01
            for _ in range(_CATALOG_SIZE)
        )
        prefix = category[:3].upper()
        catalog[category] = [(f"{prefix}-{i:04d}", price) for i, price in enumerate(prices)]
    return catalog


CATALOG = _catalog()


class Customer:
    """One simulated customer: persona, identity, and what the simulator must remember."""

    __slots__ = (
        "anon", "cart", "cid", "country", "currency", "device", "erase_at", "horizon", "idx",
        "known", "lapsed", "next_order", "orders", "persona", "seq", "sessions", "spend",
        "spend_target", "viewed",
    )

    def __init__(self, idx: int, persona: Persona, rng: Random) -> None:
        self.idx = idx
        self.persona = persona
        self.cid = f"cust-{idx}"
        self.anon = f"anon-{idx}"
        self.known = rng.random() >= persona.anonymous
        """Signed up: sessions carry ``customer_id`` (on a new device, once logged in)."""
        self.device = persona.devices.pick(rng)
        """The usual device; a session uses another one now and then."""
        self.country = _COUNTRY.pick(rng)
        self.currency = _COUNTRIES[self.country][0]
        self.cart: dict[str, list[Any]] = {}
        """sku -> [quantity, price, category], as the engine will see it."""
        self.viewed: list[tuple[str, str, float]] = []
        """Recent (category, sku, price) views: what a cart is filled from."""
        self.orders = 0
        self.spend = 0.0
        self.next_order: int | None = None
        self.spend_target = rng.uniform(*persona.spend_target) if persona.spend_target else 0.0
        self.lapsed = False
        self.sessions = 0
        self.seq = 0
        self.horizon = 0
        """Latest ts scheduled for this customer, so an erasure comes after everything else."""
        self.erase_at: int | None = None


def _personas(selected: Sequence[str] | None) -> tuple[list[Persona], list[float]]:
    chosen = list(PERSONAS) if not selected else [_persona(name) for name in selected]
    return chosen, list(accumulate(p.weight for p in chosen))


def _persona(name: str) -> Persona:
    for persona in PERSONAS:
        if persona.name == name:
            return persona
    raise ValueError(f"unknown persona {name!r}; known: {', '.join(PERSONA_NAMES)}")


def population(customers: int, seed: int, personas: Sequence[str] | None = None) -> list[Customer]:
    """The customers of a run, with their personas: the ground truth behind the events."""
    rng = Random(f"{seed}:population")
    chosen, cum = _personas(personas)
    return [Customer(i, chosen[bisect(cum, rng.random() * cum[-1])], rng) for i in range(customers)]


def personas_of(customers: int, seed: int, personas: Sequence[str] | None = None) -> dict[str, str]:
    """customer_id -> persona name, for checking segments against who the customers really are."""
    return {c.cid: c.persona.name for c in population(customers, seed, personas)}


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


class _Simulation:
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
        landing = _LANDING[v.channel]
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
                queries = _SEARCHES[category]
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


# --- encoding, noise -------------------------------------------------------------------------


class _Timestamps:
    """ISO 8601 text for epoch seconds. A minute holds many events, so its text is cached."""

    _SECONDS = tuple(f"{second:02d}Z" for second in range(60))

    def __init__(self) -> None:
        self._minutes: dict[int, str] = {}

    def format(self, ts: int) -> str:
        minute, second = divmod(ts, 60)
        text = self._minutes.get(minute)
        if text is None:
            when = datetime(1970, 1, 1) + timedelta(minutes=minute)
            text = self._minutes[minute] = when.strftime("%Y-%m-%dT%H:%M:")
        return text + self._SECONDS[second]


def _event(event_id: str, ts_text: str, payload: Payload) -> dict[str, Any]:
    typ, cid, anon, sid, device, channel, props = payload
    event: dict[str, Any] = {"event_id": event_id, "type": typ, "ts": ts_text}
    if cid is not None:
        event["customer_id"] = cid
    if anon is not None:
        event["anonymous_id"] = anon
    if sid is not None:
        event["session_id"] = sid
        event["device"] = device
        event["channel"] = channel
    if props is not None:
        event["properties"] = props
    return event


def _bad_event(rng: Random, event: dict[str, Any], line: bytes, event_id: str) -> bytes:
    """One message the engine must dead-letter, in the ways real producers get it wrong."""
    kind = int(rng.random() * 7)
    if kind == 0:  # garbage: not UTF-8, not JSON; no newline so it stays one line
        return b"\xff" + bytes(b for b in rng.randbytes(1 + int(rng.random() * 40)) if b not in b"\r\n")
    if kind == 1:  # a write cut short
        return line[: max(1, len(line) // 2)]
    bad = {**event, "event_id": event_id}
    if kind == 2:
        bad["ts"] = 1_767_225_600  # epoch seconds, not ISO text
    elif kind == 3:
        bad["type"] = "page_veiw"
    elif kind == 4:
        del bad["ts"]
    elif kind == 5:  # an order from the web shop that forgot who bought
        bad = {"event_id": event_id, "type": "order_completed", "ts": event["ts"],
               "anonymous_id": event.get("anonymous_id") or "anon-unknown",
               "properties": {"order_id": f"x-{event_id}", "total": 19.99, "currency": "USD"}}
    else:  # an amount as text
        bad = {"event_id": event_id, "type": "order_completed", "ts": event["ts"],
               "customer_id": event.get("customer_id") or "cust-unknown",
               "properties": {"order_id": f"x-{event_id}", "total": "19.99", "currency": "USD"}}
    return orjson.dumps(bad)


# --- the API ---------------------------------------------------------------------------------


def parse_start(text: str) -> int:
    """ISO 8601 with ``Z`` or an offset, to epoch seconds (a naive time is taken as UTC)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return math.floor(value.timestamp())


def simulate(customers: int, days: float, seed: int, start: str = "2026-01-01T00:00:00Z",
             bad_rate: float = 0.0, duplicate_rate: float = 0.0,
             personas: Sequence[str] | None = None) -> Iterator[bytes]:
    """Events of ``customers`` simulated customers over ``days``, one JSON object per item.

    ``personas`` restricts the population to the named personas (:data:`PERSONA_NAMES`),
    for a test that needs, say, only lapsing customers.
    """
    if customers < 0 or days <= 0:
        raise ValueError("customers must be >= 0 and days > 0")
    for name, rate in (("bad_rate", bad_rate), ("duplicate_rate", duplicate_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {rate}")
    sim = _Simulation(customers, days, seed, parse_start(start), personas)
    return _encode(sim.events(), seed, bad_rate, duplicate_rate)


def _encode(events: Iterable[tuple[int, Payload]], seed: int, bad_rate: float,
            duplicate_rate: float) -> Iterator[bytes]:
    dumps = orjson.dumps
    stamps = _Timestamps()
    noise = Random(f"{seed}:noise")
    pending: list[tuple[int, int, bytes]] = []  # duplicates: (due ts, order, bytes)
    bad = 0
    noisy = bad_rate > 0 or duplicate_rate > 0
    for n, (ts, payload) in enumerate(events):
        event = _event(f"{seed}-{n}", stamps.format(ts), payload)
        line = dumps(event)
        if not noisy:
            yield line
            continue
        while pending and pending[0][0] <= ts:
            yield heapq.heappop(pending)[2]
        yield line
        if duplicate_rate and noise.random() < duplicate_rate:
            heapq.heappush(pending, (ts + 1 + int(noise.random() * DUPLICATE_DELAY_S), n, line))
        if bad_rate and noise.random() < bad_rate:
            yield _bad_event(noise, event, line, f"{seed}-bad-{bad}")
            bad += 1
    while pending:
        yield heapq.heappop(pending)[2]


def write_jsonl(path: str | Path, **kwargs: Any) -> int:
    """Write :func:`simulate` ``(**kwargs)`` to ``path`` (``-``: stdout); returns the line count."""
    if str(path) == "-":
        return _write(sys.stdout.buffer, simulate(**kwargs))
    with open(path, "wb") as out:
        return _write(out, simulate(**kwargs))


def _write(out: Any, lines: Iterator[bytes]) -> int:
    count = 0
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= 8192:
            out.write(b"\n".join(batch) + b"\n")
            count += len(batch)
            batch.clear()
    if batch:
        out.write(b"\n".join(batch) + b"\n")
        count += len(batch)
    out.flush()
    return count


_TOPICS = (("clickstream", "clickstream"), ("transactions", "transactions"), ("profiles", "profiles"))
"""(option stem, default topic): the worker's input topics, as ``--<stem>-topic`` and
``SEGMENTER_<STEM>_TOPIC`` (the worker's own variables, so both sides agree by default)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``segmenter simulate`` (also ``python -m streams.tools.simulate``)."""
    parser.add_argument("--customers", type=int, default=1_000, help="population size (default 1000)")
    parser.add_argument("--days", type=float, default=30.0, help="time span in days (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--start", default="2026-01-01T00:00:00Z",
                        help="first instant, ISO 8601 (default 2026-01-01T00:00:00Z)")
    parser.add_argument("--out", metavar="FILE",
                        help="output file, - for stdout (the default, unless --kafka is given)")
    parser.add_argument("--bad-rate", type=float, default=0.0, help="fraction of bad events added")
    parser.add_argument("--duplicate-rate", type=float, default=0.0,
                        help="fraction of events redelivered shortly after")
    parser.add_argument("--persona", action="append", choices=PERSONA_NAMES, dest="personas",
                        help="only this persona (repeatable; default: the whole mix)")
    kafka = parser.add_argument_group(
        "Kafka", "With --kafka the events are produced to Kafka instead of written as JSON lines: "
        "by type to the clickstream, transactions or profiles topic, keyed by customer id (or "
        "visitor id before login), with a progress line on stderr.")
    kafka.add_argument("--kafka", metavar="BOOTSTRAP",
                       help="bootstrap servers (host:port[,host:port...]) to produce to")
    kafka.add_argument("--rate", type=float, metavar="EVENTS_PER_S",
                       help="at most this many events per second (default: as fast as Kafka takes them)")
    for stem, default in _TOPICS:
        env = f"SEGMENTER_{stem.upper()}_TOPIC"
        kafka.add_argument(f"--{stem}-topic", metavar="TOPIC",
                           help=f"(env {env}; default {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segmenter simulate",
        description="Write simulated customer events as JSON lines (deterministic for a seed), "
        "or produce them to Kafka.")
    add_arguments(parser)
    return parser


def topics_of(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    """(clickstream, transactions, profiles): the flag, else ``SEGMENTER_*_TOPIC``, else the default."""
    environ = os.environ if environ is None else environ
    clickstream, transactions, profiles = (
        getattr(args, f"{stem}_topic", None) or environ.get(f"SEGMENTER_{stem.upper()}_TOPIC") or default
        for stem, default in _TOPICS)
    return clickstream, transactions, profiles


def run(args: argparse.Namespace) -> int:
    """``segmenter simulate`` with parsed arguments; returns the exit status."""
    prog = "segmenter simulate"
    if args.kafka is not None and args.out is not None:
        print(f"{prog}: --out and --kafka exclude each other: write JSON lines or produce to Kafka",
              file=sys.stderr)
        return 2
    if args.rate is not None and (args.kafka is None or not args.rate > 0):
        print(f"{prog}: --rate needs --kafka and a number of events per second above 0", file=sys.stderr)
        return 2
    options = dict(customers=args.customers, days=args.days, seed=args.seed, start=args.start,
                   bad_rate=args.bad_rate, duplicate_rate=args.duplicate_rate, personas=args.personas)
    if args.kafka is not None:
        return _to_kafka(args, options)
    out = "-" if args.out is None else args.out
    try:
        count = write_jsonl(out, **options)
    except ValueError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    where = "stdout" if out == "-" else out
    print(f"simulate: {count} events for {args.customers} customers over {args.days:g} days "
          f"to {where}", file=sys.stderr)
    return 0


class Progress:
    """The feed's progress on stderr: one line redrawn in place on a terminal, else a line
    every ``every`` seconds (a log file stays short)."""

    def __init__(self, stream: Any, every: float = 2.0) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = 0.2 if self.tty else every
        self.started = time.monotonic()
        self.shown = 0.0

    def line(self, sent: int) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return f"simulate: {sent:,} events sent in {elapsed:.1f}s ({sent / elapsed:,.0f}/s)"

    def __call__(self, sent: int) -> None:
        now = time.monotonic()
        if now - self.shown < self.every:
            return
        self.shown = now
        if self.tty:
            self.stream.write("\r" + self.line(sent) + "\x1b[K")
        else:
            self.stream.write(self.line(sent) + "\n")
        self.stream.flush()

    def done(self, text: str) -> None:
        self.stream.write(("\r" + text + "\x1b[K\n") if self.tty else text + "\n")
        self.stream.flush()


def _to_kafka(args: argparse.Namespace, options: dict[str, Any]) -> int:
    import asyncio

    from aiokafka.errors import KafkaError

    from streams.tools.produce import produce

    prog = "segmenter simulate"
    topics = topics_of(args)
    try:
        lines = simulate(**options)
    except ValueError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    progress = Progress(sys.stderr)
    progress.done(f"simulate: producing to Kafka at {args.kafka}: {', '.join(topics)}")
    sent = 0

    def counted(sent_so_far: int) -> None:
        nonlocal sent
        sent = sent_so_far
        progress(sent_so_far)

    try:
        asyncio.run(produce(lines, bootstrap_servers=args.kafka, topics=topics, rate=args.rate,
                            on_progress=counted))
    except KafkaError as error:
        if progress.tty:
            sys.stderr.write("\n")  # below the progress line
        print(f"{prog}: producing to Kafka at {args.kafka} failed after {sent:,} events: {error!r}; "
              "is the broker running (scripts/kafka status)?", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.done(f"simulate: interrupted after {sent:,} events")
        return 130
    elapsed = time.monotonic() - progress.started
    progress.done(f"simulate: {sent:,} events for {args.customers} customers over {args.days:g} days "
                  f"sent to Kafka in {elapsed:.1f}s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
