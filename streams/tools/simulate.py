"""A realistic, deterministic event simulator: a population of shoppers as JSON lines (docs/contract.md).

Why it exists: the rules are only as good as the traffic they are tried on. Hand-written
scenarios test one rule at a time; a simulated population exercises every segment at once,
with the identity merges, late refunds, consent changes, erasures, bad messages and
redeliveries that real traffic has, at a size that shows what the engine costs.

How it works:

- Every customer has a *persona* (:mod:`streams.tools.personas`), and behaviour is drawn from
  it (:mod:`streams.tools.shopping`): sessions of events in time order, streamed in constant
  memory.
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import orjson

from streams.tools.personas import PERSONA_NAMES
from streams.tools.shopping import Payload, Simulation

DUPLICATE_DELAY_S = 120
"""A redelivery arrives within this many seconds after the original."""
BROWSING = frozenset({"page_view", "product_view", "search"})
SPARSE_SHARE = 0.1
"""Before ``full_days``, the share of browsing events kept: a long history that feeds fast."""


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
             personas: Sequence[str] | None = None, full_days: float | None = None) -> Iterator[bytes]:
    """Events of ``customers`` simulated customers over ``days``, one JSON object per item.

    ``personas`` restricts the population to the named personas (:data:`PERSONA_NAMES`),
    for a test that needs, say, only lapsing customers. ``full_days``: only the last this many
    days carry every event; before them one browsing event (page and product views, searches)
    in ten is kept, and every order, cart, profile and consent event.
    """
    if customers < 0 or days <= 0:
        raise ValueError("customers must be >= 0 and days > 0")
    if full_days is not None and full_days <= 0:
        raise ValueError("full_days must be > 0")
    for name, rate in (("bad_rate", bad_rate), ("duplicate_rate", duplicate_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {rate}")
    first = parse_start(start)
    sim = Simulation(customers, days, seed, first, personas)
    events = sim.events()
    if full_days is not None and full_days < days:
        events = _sparse(events, first + math.floor((days - full_days) * 86_400), Random(f"{seed}:sparse"))
    return _encode(events, seed, bad_rate, duplicate_rate)


def _sparse(events: Iterable[tuple[int, Payload]], until: int, rng: Random) -> Iterator[tuple[int, Payload]]:
    for ts, payload in events:
        if ts < until and payload[0] in BROWSING and rng.random() >= SPARSE_SHARE:
            continue
        yield ts, payload


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
    parser.add_argument("--full-days", type=float, metavar="N",
                        help="only the last N days carry every event; before them one page view, product "
                             "view or search in ten is kept (a long history that feeds fast)")
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
                   bad_rate=args.bad_rate, duplicate_rate=args.duplicate_rate, personas=args.personas,
                   full_days=args.full_days)
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
