"""The demo's live view: segment changes as they come off Kafka, summed up once a second.

``segmenter demo-view --bootstrap-servers HOST:PORT --topic segment-changes`` (or
``python -m streams.tools.demo_view ...``) reads the changes topic from its beginning with a plain
aiokafka consumer (no consumer group, nothing committed) and shows

- per segment: members (entered minus exited), entries and exits so far, and entries and exits
  in the latest minute of *event time* (the shoppers' clock), so during a backfill they show
  the pace of the simulated day, not the speed of the replay, and live they are per minute;
- whether it is still catching up with history (how far event time is behind the wall clock)
  or live, and since when;
- the latest changes by ``at``, newest first: customer, segment, change, ``at`` and ``reason``.

On a terminal the view is a live table drawn with rich, redrawn every second; when stdout is
not a terminal (a pipe, a file, a test) it prints plain snapshot blocks instead, each starting
with ``=== snapshot``, only when something changed, and a last one at the end. It runs until
Ctrl-C (or SIGTERM), or for ``--seconds``.

The summing up (:class:`Tally`, :func:`summarize`, :func:`render`, :func:`tables`) is pure: a
list of change dicts in, text or tables out; Kafka is only in :func:`watch`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.model.changes import ENTERED
from streams.tools.demo_tally import KAFKA_TS, SegmentCounts, Tally, ViewSummary, epoch

SNAPSHOT = "=== snapshot"
"""First word of every plain snapshot block."""

if TYPE_CHECKING:
    from streams.live.settings import WorkerSettings

# --- text and tables ------------------------------------------------------------------------------


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


COLUMNS = ("members", "entered", "exited", "entered/min", "exited/min")


def _row(counts: SegmentCounts) -> tuple[int, ...]:
    return (counts.members, counts.entered, counts.exited, counts.entered_last_minute, counts.exited_last_minute)


def _head(summary: ViewSummary, title: str) -> str:
    head = f"{title} | " if title else ""
    head += f"{summary.changes} changes"
    if summary.skipped:
        head += f" ({summary.skipped} records skipped)"
    if summary.last_at:
        head += f" | event time up to {summary.last_at}"
    return head


def render(summary: ViewSummary, *, width: int = 100, title: str = "", notes: Sequence[str] = ()) -> str:
    """The view as plain text, every line at most ``width`` characters."""
    width = max(width, 40)
    lines = [_head(summary, title), summary.status, *notes, ""]
    name_w = max([len("segment"), len("total"), *map(len, summary.segments)])
    header = f"{'segment':<{name_w}}  " + "  ".join(f"{c:>{max(len(c), 8)}}" for c in COLUMNS)
    lines.append(header)
    for name, counts in [*summary.segments.items(), ("total", summary.total)]:
        if name == "total":
            lines.append("-" * len(header))
        lines.append(f"{name:<{name_w}}  " + "  ".join(f"{v:>{max(len(c), 8)}}" for c, v in zip(COLUMNS, _row(counts),
                                                                                                 strict=True)))
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


def tables(summary: ViewSummary, *, title: str = "", notes: Sequence[str] = ()) -> Group:
    """The view for a terminal: the header, a table of the segments, a table of the latest changes."""
    segments = Table(title="segments (per minute: the latest minute of event time)", title_justify="left",
                     expand=False)
    segments.add_column("segment")
    for column in COLUMNS:
        segments.add_column(column, justify="right")
    for name, counts in summary.segments.items():
        segments.add_row(name, *map(str, _row(counts)))
    segments.add_section()
    segments.add_row("total", *map(str, _row(summary.total)), style="bold")
    latest = Table(title="latest changes (newest first, by at)", title_justify="left")
    for column in ("at", "customer", "segment", "change", "reason"):
        latest.add_column(column, overflow="ellipsis", no_wrap=column != "reason")
    for change in summary.latest:
        kind = str(change.get("change", ""))
        latest.add_row(str(change.get("at", "")), str(change.get("customer_id", "")), str(change.get("segment", "")),
                       Text(kind, style="green" if kind == ENTERED else "red"), format_reason(change.get("reason")))
    head = Text(_head(summary, title), style="bold")
    return Group(head, Text(summary.status, style="cyan" if summary.live_since else "yellow"),
                 *(Text(note) for note in notes), segments, latest)


# --- Kafka ---------------------------------------------------------------------------------------


def decode(value: bytes | None, timestamp_ms: int | None = None) -> dict[str, Any]:
    """A record of the changes topic as a change dict (``{}`` if it is not a JSON object), with
    the record's timestamp under :data:`KAFKA_TS` when it has one."""
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
    """Where the view goes: a rich live display on a terminal, plain blocks elsewhere."""

    def __init__(self, out: TextIO, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.shown_changes = -1
        self.live: Live | None = None

    def width(self) -> int:
        return shutil.get_terminal_size((100, 40)).columns if self.tty else 120

    def show(self, summary: ViewSummary, elapsed: float, *, title: str = "", notes: Sequence[str] = (),
             final: bool = False) -> None:
        if self.live is not None:
            self.live.update(tables(summary, title=title, notes=notes), refresh=True)
        elif not self.tty and (summary.changes != self.shown_changes or final):
            label = "final" if final else f"{elapsed:.0f}s"
            text = render(summary, width=self.width(), title=title, notes=notes)
            self.out.write(f"{SNAPSHOT} {label} ===\n{text}\n\n")
            self.out.flush()
        self.shown_changes = summary.changes

    def start(self) -> None:
        if self.tty:
            self.live = Live(Text("reading the changes topic..."), console=Console(file=self.out),
                             auto_refresh=False, screen=False)
            self.live.start()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


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


def worker_clock(url: str) -> float | None:
    """The event time of the worker at ``url`` (its ``/segments/``): that of its partition
    furthest behind, epoch seconds; None if it does not answer or has no clock yet."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/segments/", timeout=0.5) as response:
            clocks = orjson.loads(response.read()).get("clocks") or {}
        return min(epoch(str(at)) for at in clocks.values()) if clocks else None
    except (OSError, ValueError, AttributeError):
        return None


async def watch(bootstrap_servers: str, topic: str, *, seconds: float | None, interval: float = 1.0,
                screen: Screen, title: str = "", notes: Sequence[str] = (),
                status_file: str | None = None, worker_url: str | None = None) -> ViewSummary:
    """Consume ``topic`` from its beginning and show the view until ``seconds`` pass or a
    SIGINT/SIGTERM arrives; returns the last summary. With ``worker_url`` the worker's own clock
    says how far behind it is (else the changes do)."""
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
                if worker_url is not None:
                    tally.worker_clock = await asyncio.to_thread(worker_clock, worker_url)
                screen.show(tally.summary(time.time()), elapsed, title=title,
                            notes=[*notes, *_status_line(status_file)])
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await consumer.stop()
    summary = tally.summary(time.time())
    screen.show(summary, time.monotonic() - started, title=title, notes=[*notes, *_status_line(status_file)],
                final=True)
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
    parser.add_argument("--worker-url", metavar="URL",
                        help="the worker's HTTP address: its clock says whether history is still being read")
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
                          status_file=args.status_file, worker_url=args.worker_url))
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
