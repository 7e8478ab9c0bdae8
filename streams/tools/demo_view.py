"""The demo's live view: segment changes as they come off Kafka, summed up once a second.

``segmenter demo-view --bootstrap-servers HOST:PORT --topic segment-changes`` (or
``python -m streams.tools.demo_view ...``) reads the changes topic from its beginning with a plain
aiokafka consumer (no consumer group, nothing committed) and shows

- per segment: members (entered minus exited), entries and exits so far, and entries and exits
  in the last minute, by the time the worker produced them (the Kafka record timestamp), so a
  backlog read late does not look like a burst;
- the latest changes: customer, segment, change, ``at`` and ``reason``.

On a terminal the view is redrawn in place every second; when stdout is not a terminal (a pipe,
a file, a test) it prints plain snapshot blocks instead, each starting with ``=== snapshot``,
only when something changed, and a last one at the end. It runs until Ctrl-C (or SIGTERM), or
for ``--seconds``.

The summing up (:class:`Tally`, :func:`summarize`, :func:`render`) is pure: a list of change
dicts in, text out; Kafka is only in :func:`watch`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from streams.model.changes import ENTERED, EXITED

if TYPE_CHECKING:
    from streams.live.settings import WorkerSettings

WINDOW_S = 60.0
"""Entries and exits per minute count the changes produced in this many seconds before now."""
LATEST = 10
"""How many of the latest changes the view lists."""
KAFKA_TS = "kafka_ts_ms"
"""Key under which :func:`watch` adds the Kafka record timestamp (epoch ms) to a change dict."""
SNAPSHOT = "=== snapshot"
"""First word of every plain snapshot block."""


@dataclass
class SegmentCounts:
    entered: int = 0
    exited: int = 0
    entered_last_minute: int = 0
    exited_last_minute: int = 0

    @property
    def members(self) -> int:
        return self.entered - self.exited


@dataclass(frozen=True)
class ViewSummary:
    changes: int
    """Changes counted (well-formed ones)."""
    skipped: int
    """Records that were not a change (not JSON, or a field missing)."""
    segments: dict[str, SegmentCounts]
    """By segment name, sorted."""
    latest: list[Mapping[str, Any]]
    """The latest changes, newest first."""
    last_at: str | None
    """The largest ``at`` seen: how far event time has come."""

    @property
    def total(self) -> SegmentCounts:
        total = SegmentCounts()
        for counts in self.segments.values():
            total.entered += counts.entered
            total.exited += counts.exited
            total.entered_last_minute += counts.entered_last_minute
            total.exited_last_minute += counts.exited_last_minute
        return total


@dataclass
class Tally:
    """Running totals over a stream of changes: :meth:`add` each, :meth:`summary` at any time.

    Memory stays bounded: counters per segment, the last :data:`LATEST` changes, and the
    (timestamp, segment, change) of the changes still inside the rate window.
    """

    window_s: float = WINDOW_S
    latest_n: int = LATEST
    changes: int = 0
    skipped: int = 0
    entered: dict[str, int] = field(default_factory=dict)
    exited: dict[str, int] = field(default_factory=dict)
    last_at: str | None = None
    _latest: deque[Mapping[str, Any]] = field(default_factory=deque)
    _recent: deque[tuple[float, str, str]] = field(default_factory=deque)

    def add(self, change: Mapping[str, Any]) -> bool:
        """Count one change dict (docs/contract.md, Output, plus :data:`KAFKA_TS` when known); False if it is not one."""
        segment, kind, at = change.get("segment"), change.get("change"), change.get("at")
        if not isinstance(segment, str) or kind not in (ENTERED, EXITED) or not isinstance(at, str):
            self.skipped += 1
            return False
        self.changes += 1
        counts = self.entered if kind == ENTERED else self.exited
        counts[segment] = counts.get(segment, 0) + 1
        if self.last_at is None or at > self.last_at:  # ISO 8601 UTC text sorts by time
            self.last_at = at
        self._latest.append(change)
        if len(self._latest) > self.latest_n:
            self._latest.popleft()
        stamp = change.get(KAFKA_TS)
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            self._recent.append((stamp / 1000.0, segment, kind))
        return True

    def summary(self, now: float) -> ViewSummary:
        """The state as of ``now`` (epoch seconds, for the per-minute counts)."""
        since = now - self.window_s
        recent = self._recent
        if recent and recent[0][0] <= since:
            # Timestamps come from several partitions, so they are only roughly sorted.
            kept = [item for item in recent if item[0] > since]
            recent.clear()
            recent.extend(sorted(kept))
        names = sorted(set(self.entered) | set(self.exited))
        segments = {name: SegmentCounts(self.entered.get(name, 0), self.exited.get(name, 0)) for name in names}
        for stamp, segment, kind in recent:
            if since < stamp <= now:
                counts = segments[segment]
                if kind == ENTERED:
                    counts.entered_last_minute += 1
                else:
                    counts.exited_last_minute += 1
        return ViewSummary(changes=self.changes, skipped=self.skipped, segments=segments,
                       latest=list(reversed(self._latest)), last_at=self.last_at)


def summarize(changes: Iterable[Mapping[str, Any]], now: float, *, window_s: float = WINDOW_S,
              latest: int = LATEST) -> ViewSummary:
    """The summary of a list of change dicts, in the order they arrived, as of ``now``."""
    tally = Tally(window_s=window_s, latest_n=latest)
    for change in changes:
        tally.add(change)
    return tally.summary(now)


# --- text ----------------------------------------------------------------------------------------


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def format_reason(reason: Any) -> str:
    """``{"cart_items": 2, "since": "..."}`` -> ``cart_items=2 since=...``; ``{}`` -> ``-``."""
    if not isinstance(reason, Mapping) or not reason:
        return "-" if not reason else str(reason)
    parts = []
    for key, value in reason.items():
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def render(summary: ViewSummary, *, width: int = 100, title: str = "", notes: Sequence[str] = ()) -> str:
    """The view as plain text, every line at most ``width`` characters."""
    width = max(width, 40)
    total = summary.total
    head = f"{title} | " if title else ""
    head += f"{summary.changes} changes"
    if summary.skipped:
        head += f" ({summary.skipped} records skipped)"
    if summary.last_at:
        head += f" | event time up to {summary.last_at}"
    lines = [head, *notes, ""]
    name_w = max([len("segment"), len("total"), *map(len, summary.segments)])
    header = (f"{'segment':<{name_w}}  {'members':>8}  {'entered':>8}  {'exited':>8}  "
              f"{'entered/min':>11}  {'exited/min':>10}")
    lines.append(header)
    rows = [*summary.segments.items(), ("total", total)]
    for name, counts in rows:
        if name == "total":
            lines.append("-" * len(header))
        lines.append(f"{name:<{name_w}}  {counts.members:>8}  {counts.entered:>8}  {counts.exited:>8}  "
                     f"{counts.entered_last_minute:>11}  {counts.exited_last_minute:>10}")
    if not summary.segments:
        lines.append("(no segment changes yet)")
    lines += ["", "latest changes (newest first)"]
    seg_w = max([len("segment"), *(len(str(c.get("segment", ""))) for c in summary.latest)])
    cust_w = max([len("customer"), *(len(str(c.get("customer_id", ""))) for c in summary.latest)])
    lines.append(f"{'at':<20}  {'customer':<{cust_w}}  {'segment':<{seg_w}}  {'change':<7}  reason")
    for change in summary.latest:
        lines.append(f"{change.get('at', '')!s:<20}  {change.get('customer_id', '')!s:<{cust_w}}  "
                     f"{change.get('segment', '')!s:<{seg_w}}  {change.get('change', '')!s:<7}  "
                     f"{format_reason(change.get('reason'))}")
    return "\n".join(_clip(line, width) for line in lines)


# --- Kafka ---------------------------------------------------------------------------------------


def decode(value: bytes | None, timestamp_ms: int | None) -> dict[str, Any]:
    """A record of the changes topic as a change dict (``{}`` if it is not a JSON object)."""
    try:
        change = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(change, dict):
        return {}
    if timestamp_ms is not None and timestamp_ms >= 0:
        change[KAFKA_TS] = timestamp_ms
    return change


class Screen:
    """Where the view goes: redrawn in place on a terminal, plain blocks elsewhere."""

    def __init__(self, out: TextIO, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.shown_changes = -1

    def width(self) -> int:
        return shutil.get_terminal_size((100, 40)).columns if self.tty else 120

    def show(self, text: str, changes: int, elapsed: float, final: bool = False) -> None:
        if self.tty:
            # Home, draw, clear what is left of the old frame below; the cursor stays hidden.
            body = text.replace("\n", "\x1b[K\n")
            self.out.write(f"\x1b[?25l\x1b[H{body}\x1b[K\n\x1b[J")
        elif changes != self.shown_changes or final:
            label = "final" if final else f"{elapsed:.0f}s"
            self.out.write(f"{SNAPSHOT} {label} ===\n{text}\n\n")
        self.shown_changes = changes
        self.out.flush()

    def start(self) -> None:
        if self.tty:
            self.out.write("\x1b[H\x1b[2J")
            self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\x1b[?25h")
            self.out.flush()


def _status_line(path: str | None) -> list[str]:
    """The last line of ``path`` (the feed's progress log), if there is one."""
    if not path:
        return []
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(file.tell() - 4096, 0))
            tail = file.read().decode(errors="replace").replace("\r", "\n").strip().splitlines()
    except OSError:
        return []
    return [tail[-1].strip()] if tail else []


async def watch(bootstrap_servers: str, topic: str, *, seconds: float | None, interval: float = 1.0,
                screen: Screen, title: str = "", notes: Sequence[str] = (),
                status_file: str | None = None) -> ViewSummary:
    """Consume ``topic`` from its beginning and show the view until ``seconds`` pass or a
    SIGINT/SIGTERM arrives; returns the last summary."""
    from aiokafka import AIOKafkaConsumer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    tally = Tally()
    started = time.monotonic()
    screen.start()
    try:
        await consumer.start()
        next_draw = started
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if seconds is not None and elapsed >= seconds:
                break
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batches.values():
                for record in records:
                    tally.add(decode(record.value, record.timestamp))
            if time.monotonic() >= next_draw:
                next_draw += interval
                text = render(tally.summary(time.time()), width=screen.width(), title=title,
                              notes=[*notes, *_status_line(status_file)])
                screen.show(text, tally.changes, elapsed)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await consumer.stop()
    summary = tally.summary(time.time())
    text = render(summary, width=screen.width(), title=title, notes=[*notes, *_status_line(status_file)])
    screen.show(text, tally.changes, time.monotonic() - started, final=True)
    return summary


# --- command line --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", metavar="SERVERS",
                        help="Kafka bootstrap servers (env SEGMENTER_BOOTSTRAP_SERVERS; default 127.0.0.1:9092)")
    parser.add_argument("--topic", metavar="TOPIC",
                        help="the segment-changes topic (env SEGMENTER_CHANGES_TOPIC; default segment-changes)")
    parser.add_argument("--seconds", type=float, metavar="N",
                        help="stop after N seconds (default: run until Ctrl-C)")
    parser.add_argument("--interval", type=float, default=1.0, metavar="S",
                        help="seconds between redraws (default 1)")
    parser.add_argument("--title", default="", help="first words of the header line")
    parser.add_argument("--note", action="append", default=[], dest="notes", metavar="TEXT",
                        help="a line shown under the header (repeatable)")
    parser.add_argument("--status-file", metavar="FILE",
                        help="show the last line of FILE under the header (scripts/demo: the feed's log)")


def run(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap_servers or os.environ.get("SEGMENTER_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    topic = args.topic or os.environ.get("SEGMENTER_CHANGES_TOPIC") or "segment-changes"
    if args.seconds is not None and args.seconds <= 0:
        args.seconds = None
    if not args.interval > 0:
        print("segmenter demo-view: --interval must be above 0", file=sys.stderr)
        return 2
    from aiokafka.errors import KafkaError

    screen = Screen(sys.stdout)
    notes = list(args.notes)
    if screen.tty:
        notes.append("Ctrl-C to stop")
    try:
        asyncio.run(watch(bootstrap, topic, seconds=args.seconds, interval=args.interval, screen=screen,
                          title=args.title or f"segment changes on {topic}", notes=notes,
                          status_file=args.status_file))
    except KafkaError as error:
        print(f"segmenter demo-view: reading {topic!r} from Kafka at {bootstrap} failed: {error!r}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        screen.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.tools.demo_view", description="Watch segment changes live.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


async def create_topics(settings: WorkerSettings) -> list[str]:
    """Create the worker's topics (changelogs included) before it starts; returns the names created."""
    from streams.live.app import declare_tables, make_app
    from streams.live.topics import ensure_topics

    app = make_app(settings)
    declare_tables(app, settings)
    return await ensure_topics(settings, app)


async def delete_topics(bootstrap_servers: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (scripts/demo's clean-up of a run)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


if __name__ == "__main__":
    sys.exit(main())
