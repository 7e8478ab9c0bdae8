"""Replay benchmark: the default rule pack over a million simulated events, on one core.

    .venv/bin/python bench/replay_bench.py                      # 100,000 customers, >= 1,000,000 events
    .venv/bin/python bench/replay_bench.py --profile 30         # the same under cProfile, top 30 functions
    .venv/bin/python bench/replay_bench.py --deploy DIR         # then time putting the pack in DIR live

The events come from :mod:`streams.tools.simulate`, generated once in a child process (so this
process's memory figures are the replay's alone) and cached under ``$TMPDIR`` in a file keyed
by the parameters and a hash of the simulator's source. The replay is the code behind
``segmenter replay``: :func:`streams.offline.replay.run` driving an :class:`~streams.engine.Engine`,
every change and bad event encoded to JSON as the command does, then written to /dev/null.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
from ranks import nearest_rank

from streams.engine import Engine, collector
from streams.model.changes import SegmentChange
from streams.model.clock import SECOND
from streams.model.events import BadEvent
from streams.model.state import encode as encode_state
from streams.offline.replay import BadEventRecord, Summary, run
from streams.rules.deployments import of_folder, schedule
from streams.rules.load import load_pack
from streams.tools import personas, shopping
from streams.tools import simulate as sim

ROOT = Path(__file__).resolve().parent.parent

PILOT_CUSTOMERS = 2_000
MIB = 1024 * 1024


# --- the data ------------------------------------------------------------------------------


def data_path(args: argparse.Namespace) -> Path:
    """A cache file name that changes whenever the events it holds would."""
    source = b"".join(Path(module.__file__ or "").read_bytes() for module in (sim, personas, shopping))
    key = hashlib.sha256(source).hexdigest()[:10]
    span = f"d{args.days:g}" if args.days else f"min{args.events_min}"
    folder = Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
    return folder / f"segmenter-bench-c{args.customers}-{span}-s{args.seed}-{key}.jsonl"


def choose_days(customers: int, events_min: int, seed: int) -> float:
    """The shortest span (in half days) whose pilot run, scaled up, reaches ``events_min``."""
    pilot = min(customers, PILOT_CUSTOMERS)
    scale = customers / pilot
    days = 1.0
    while sum(1 for _ in sim.simulate(pilot, days, seed)) * scale < 1.05 * events_min:
        days += 0.5
    return days


def prepare(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """Generate the events file (in this process: the child of the benchmark) and its sidecar."""
    days = args.days or choose_days(args.customers, args.events_min, args.seed)
    while True:
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        count = sim.write_jsonl(partial, customers=args.customers, days=days, seed=args.seed)
        seconds = time.perf_counter() - started
        if count >= args.events_min or args.days:
            break
        days = round(days * 1.1 + 0.5)
    partial.replace(path)
    meta = {"events": count, "customers": args.customers, "days": days, "seed": args.seed,
            "generate_seconds": round(seconds, 2), "bytes": path.stat().st_size}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return meta


def ensure_data(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    path = data_path(args)
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--prepare-only", "--customers", str(args.customers),
                   "--events-min", str(args.events_min), "--seed", str(args.seed)]
        if args.days:
            command += ["--days", str(args.days)]
        subprocess.run(command, check=True, cwd=ROOT)
    meta: dict[str, Any] = json.loads(sidecar.read_text())
    return path, meta


# --- measuring -----------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size now, from /proc (no tracemalloc: it would slow the replay down)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def pin_to_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to cpu {cpu}"



def replay(engine: Engine, path: Path) -> Summary:
    """What ``segmenter replay`` does, with stdout and stderr sent to /dev/null."""
    encoder = msgspec.json.Encoder()
    with open(os.devnull, "wb") as sink, open(path, "rb") as lines:
        buffer: list[bytes] = []

        def emit(change: SegmentChange) -> None:
            buffer.append(encoder.encode(change))
            if len(buffer) >= 4096:
                sink.write(b"\n".join(buffer) + b"\n")
                buffer.clear()

        def bad(event: BadEvent) -> None:
            record = BadEventRecord(event.where, event.reason, event.raw.decode("utf-8", "replace"))
            sink.write(encoder.encode(record) + b"\n")

        summary = run(engine, lines, name=str(path), until=None, emit=emit, bad=bad)
        if buffer:
            sink.write(b"\n".join(buffer) + b"\n")
    return summary


def measure(args: argparse.Namespace, path: Path, meta: dict[str, Any]) -> None:
    pinned = pin_to_one_core()
    collector.tune()  # as every segmenter command does
    pack = load_pack(args.rules)
    engine = Engine(pack)
    rss_before = rss_bytes()
    cpu_before = time.process_time()
    started = time.perf_counter()
    if args.profile:
        profiler = cProfile.Profile()
        summary = profiler.runcall(replay, engine, path)
    else:
        summary = replay(engine, path)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    rss_after = rss_bytes()

    sizes = sorted(len(encode_state(state)) for state in engine.states.values())
    identified = sum(1 for state in engine.states.values() if state.identified)
    changes = sum(engine.stats.changes.values())
    print(f"data:        {path} ({meta['bytes'] / MIB:,.0f} MiB; {meta['customers']:,} customers over "
          f"{meta['days']:g} days, seed {meta['seed']}; generated in {meta['generate_seconds']}s)")
    print(f"rules:       {args.rules} ({len(pack.rules)} segments, {len(pack.windows)} windows); {pinned}")
    print(f"events:      {summary.events_read:,} read, {engine.stats.events:,} applied, "
          f"{summary.bad:,} bad, {summary.duplicates:,} duplicates")
    print(f"customers:   {meta['customers']:,} simulated; {len(engine.states):,} states held "
          f"({identified:,} identified, {len(engine.states) - identified:,} anonymous), "
          f"{len(engine.aliases):,} aliases")
    print(f"wall:        {wall:,.2f} s ({cpu:,.2f} s CPU)" + ("  [under cProfile]" if args.profile else ""))
    print(f"throughput:  {summary.events_read / wall:,.0f} events/s")
    print(f"memory:      peak RSS {peak_rss_bytes() / MIB:,.0f} MiB (ru_maxrss); RSS {rss_before / MIB:,.0f} MiB "
          f"before, {rss_after / MIB:,.0f} MiB after, +{(rss_after - rss_before) / MIB:,.0f} MiB "
          f"= {(rss_after - rss_before) / max(len(engine.states), 1):,.0f} B per state")
    if sizes:
        print(f"state bytes: mean {sum(sizes) / len(sizes):,.1f}, p50 {nearest_rank(sizes, 0.5, 0):,}, "
              f"p99 {nearest_rank(sizes, 0.99, 0):,}, max {sizes[-1]:,} "
              f"(total {sum(sizes) / MIB:,.1f} MiB encoded)")
    print(f"changes:     {changes:,}")
    for (segment, kind), count in sorted(engine.stats.changes.items()):
        print(f"  {segment:<24} {kind:<8} {count:>9,}")
    if args.deploy:
        switch(engine, args.deploy)
    if args.profile:
        print()
        stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
        stats.sort_stats("tottime").print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)


def switch(engine: Engine, folder: str) -> None:
    """Put the pack in ``folder`` live a second after the replay's last event: how long the
    switch takes over every state held, and what it sends."""
    assert engine.clock is not None
    at = engine.clock + SECOND
    engine.deploy(schedule([of_folder(folder, at)])[0])
    started = time.perf_counter()
    changes = engine.advance(at)
    wall = time.perf_counter() - started
    by_deployment = sum(1 for change in changes if "deployment" in change.reason)
    print(f"deploy:      {folder} live at the last event + 1 s: {wall:,.2f} s over {len(engine.states):,} states "
          f"({len(engine.states) / wall:,.0f} states/s), {by_deployment:,} changes by the deployment")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events-min", type=int, default=1_000_000,
                        help="generate at least this many events (the span in days is tuned to it)")
    parser.add_argument("--days", type=float, default=None, help="fix the span instead of tuning it")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules", default=str(ROOT / "rules"))
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="run under cProfile and print the top N functions (slows the replay)")
    parser.add_argument("--deploy", metavar="DIR",
                        help="after the replay, put this pack live and time the switch over every state")
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare_only:
        prepare(args, data_path(args))
        return 0
    path, meta = ensure_data(args)
    measure(args, path, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
