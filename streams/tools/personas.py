"""The simulated population: personas, the catalog they shop from, and the customers drawn from
them.

Every customer has a *persona* (:data:`PERSONAS`): the weights a practitioner would recognise
in their own analytics (browsers who rarely buy, bargain hunters who abandon carts, loyal
repeat buyers, ...). Behaviour is drawn from the persona (:mod:`streams.tools.shopping`), never
scripted, so segment membership comes out of behaviour the way it would in production.
"""


import math
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from random import Random
from typing import Any

DAY_S = 86_400
HOUR_S = 3_600
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
SEARCHES = {
    "electronics": ("headphones", "4k tv", "laptop", "usb-c charger", "smartwatch"),
    "apparel": ("rain jacket", "sneakers", "linen shirt", "jeans"),
    "home": ("sofa", "coffee machine", "desk lamp", "bed sheets"),
    "beauty": ("sunscreen", "moisturiser", "perfume"),
    "sports": ("yoga mat", "running shoes", "bike helmet"),
    "books": ("cookbook", "sci-fi", "bestsellers"),
}
LANDING = {
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

