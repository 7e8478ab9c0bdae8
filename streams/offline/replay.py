"""``segmenter replay``: the engine over a JSONL file, offline.

Changes go to stdout as JSON lines, bad events to stderr as JSON lines (with the file and line
they came from, the reason and the original text), and a one-line summary to stderr at the
end. On a terminal, a progress line on stderr shows how far through the file it is.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

import msgspec

from streams.engine import Engine
from streams.model.activations import Activation
from streams.model.changes import SegmentChange
from streams.model.clock import Instant, format_instant, from_datetime
from streams.model.events import DEFAULT_MAX_CLOCK_SKEW, BadEvent
from streams.model.limits import DEFAULT_LIMITS, Limits
from streams.rules.deployments import Scheduled
from streams.rules.pack import RulePack


class BadEventRecord(msgspec.Struct):
    where: str
    reason: str
    raw: str


@dataclass
class Summary:
    events_read: int
    bad: int
    duplicates: int
    seconds: float
    changes: dict[str, dict[str, int]]

    def line(self) -> str:
        rate = self.events_read / self.seconds if self.seconds > 0 else 0.0
        parts = ", ".join(
            f"{segment} +{kinds.get('entered', 0)}/-{kinds.get('exited', 0)}"
            for segment, kinds in sorted(self.changes.items())
        )
        return (f"replay: {self.events_read} events read, {self.bad} bad, {self.duplicates} duplicates, "
                f"{sum(sum(k.values()) for k in self.changes.values())} changes ({parts or 'none'}), "
                f"{rate:,.0f} events/s")


_encoder = msgspec.json.Encoder()


def latest_accepted(until: Instant | None, wall: float | None = None) -> Instant:
    """The latest event time replay accepts: the later of the wall clock and ``until``, plus
    the allowed clock skew, as live."""
    now = from_datetime(datetime.fromtimestamp(time.time() if wall is None else wall, UTC))
    return max(now, until if until is not None else now) + DEFAULT_MAX_CLOCK_SKEW


def run(engine: Engine, lines: Iterable[bytes], *, name: str, until: Instant | None,
        emit: Callable[[SegmentChange], None], bad: Callable[[BadEvent], None],
        latest: Instant | None = None, activation: Callable[[Activation], None] | None = None) -> Summary:
    """Feed every line to the engine, then move the clock to ``until`` (or the last event).
    An event after ``latest`` is a bad event (reason ``future``). ``activation``: where the
    activations go (by default, nowhere)."""
    started = time.perf_counter()
    read = 0
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        read += 1
        result = engine.process_bytes(raw, latest=latest)
        if isinstance(result, BadEvent):
            result.where = f"{name}:{number}"
            bad(result)
            continue
        for change in result:
            emit(change)
        if engine.activations:
            _drain(engine, activation)
    for change in engine.finish(until):
        emit(change)
    _drain(engine, activation)
    changes: dict[str, dict[str, int]] = {}
    for (segment, kind), count in engine.stats.changes.items():
        changes.setdefault(segment, {})[kind] = count
    return Summary(read, engine.stats.bad, engine.stats.duplicates, time.perf_counter() - started, changes)


def _drain(engine: Engine, activation: Callable[[Activation], None] | None) -> None:
    for made in engine.take_activations():
        if activation is not None:
            activation(made)


def replay_file(pack: RulePack, path: str, *, until: Instant | None = None,
                out: BinaryIO | None = None, err: TextIO | None = None, progress: bool | None = None,
                limits: Limits = DEFAULT_LIMITS, deployments: Sequence[Scheduled] = (),
                activations: bool = False) -> Summary:
    """The command: ``path`` is a file name or ``-`` for standard input. ``deployments``: the
    packs that go live later, each at its instant, as on the live workers. ``activations``:
    print the activations instead of the changes, and what each policy suppressed."""
    out = out if out is not None else sys.stdout.buffer
    err = err if err is not None else sys.stderr
    engine = Engine(pack, limits=limits, deployments=deployments)
    write = out.write
    buffer: list[bytes] = []

    def emit(change: SegmentChange | Activation) -> None:
        buffer.append(_encoder.encode(change))
        if len(buffer) >= 4096:
            flush()

    def skip(_: SegmentChange) -> None:
        pass

    changes, made = (skip, emit) if activations else (emit, None)

    def flush() -> None:
        if buffer:
            write(b"\n".join(buffer) + b"\n")
            buffer.clear()

    def bad(event: BadEvent) -> None:
        flush()  # keep stdout and stderr in input order for a reader watching both
        record = BadEventRecord(event.where, event.reason, event.raw.decode("utf-8", "replace"))
        err.write(_encoder.encode(record).decode() + "\n")

    if progress is None:
        progress = err.isatty()
    if path == "-":
        summary = run(engine, sys.stdin.buffer, name="<stdin>", until=until, emit=changes, bad=bad,
                      latest=latest_accepted(until), activation=made)
    else:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            lines: Iterable[bytes] = _with_progress(handle, size, err) if progress else handle
            summary = run(engine, lines, name=path, until=until, emit=changes, bad=bad,
                          latest=latest_accepted(until), activation=made)
    flush()
    out.flush()
    if until is not None and engine.clock is not None and until < engine.clock:
        err.write(f"replay: warning: --until {format_instant(until)} is before the last event; the clock "
                  f"stayed at {format_instant(engine.clock)}\n")
    err.write(summary.line() + "\n")
    if activations:
        err.write(activation_summary(engine.stats.activations) + "\n")
    return summary


def activation_summary(counts: Counter[tuple[str, str, str]]) -> str:
    """What each policy suppressed and what quiet hours held, per segment and channel."""
    parts = [f"{policy} {segment}->{channel} {n}" for (policy, segment, channel), n in sorted(counts.items())]
    return f"activations: suppressed or held: {', '.join(parts) or 'none'}"


def _with_progress(handle: BinaryIO, size: int, err: TextIO) -> Iterator[bytes]:
    """Yield the file's lines, redrawing a progress line on stderr twice a second."""
    done = 0
    next_draw = time.monotonic() + 0.5
    started = time.monotonic()
    for count, line in enumerate(handle, start=1):
        done += len(line)
        yield line
        if count % 1024 == 0 and time.monotonic() >= next_draw:
            next_draw = time.monotonic() + 0.5
            rate = count / max(time.monotonic() - started, 1e-9)
            err.write(f"\rreplay: {100 * done / max(size, 1):5.1f}%  {count:,} lines  {rate:,.0f} lines/s")
            err.flush()
    err.write("\r" + " " * 70 + "\r")
