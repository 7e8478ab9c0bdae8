"""Worker benchmark: the streaming worker on a real broker, against plain faust and bare aiokafka.

    .venv/bin/python bench/worker_bench.py                     # 200,000 events, own broker on $KAFKA_PORT
    .venv/bin/python bench/worker_bench.py --bootstrap 127.0.0.1:9092 --events 100000
    .venv/bin/python bench/worker_bench.py --py-spy 25         # the same, the worker under py-spy

One run generates the events once (:mod:`streams.tools.simulate`, customers' own events only: no
visitor-keyed events and no ``identify``, so no identity hand-offs), produces them once to
fresh input topics of ``--partitions`` partitions, and then lets three consumers read those
same topics from the beginning, one after the other, each in a process of its own:

(a) ``segmenter worker`` (rocksdb store, no standby replica): timed from its
    ``segmenter_events_applied_total`` over ``/metrics/``, polled every 0.25 s; then, on the same
    process, the end-to-end latency (event produced to change consumed) at half the rate it
    sustained, on the same kind of traffic (below);
(b) a faust agent as faust's documentation writes one, ``async for key, value in
    stream.items(): table[key] += 1`` (a JSON int per key, rocksdb table, the raw value not
    decoded);
(c) a bare aiokafka loop: ``getmany`` batches, :func:`streams.model.events.decode` per message, a
    small JSON record per message produced (acks=all, idempotent) to an output topic, the
    batch's offsets committed. No state: the ceiling for a Python client.

The throughput of each is the slope between 10 % and 90 % of the events consumed (start-up,
group join and the tail excluded); the first-to-last figure is printed beside it.

The latency run sends live events of simulated traffic like (a)'s (customers' own events,
seed ``--seed`` + 1, so returning customers among new ones), paced at half (a)'s sustained
rate, each with its ``ts`` replaced by the moment it is handed to the producer. A change
caused by an event carries the event's instant as ``at``, so (customer id, ``at``) matches it
to its event; changes fired by time do not match and are left out. Latency is the first
matched change read from the changes topic minus the send; events that change nothing have
none. The same kind of traffic as (a)'s, because a rate measured on one mix says little
about the latency of another.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
from ranks import nearest_rank

from streams.tools import simulate as sim

ROOT = Path(__file__).resolve().parent.parent
PILOT_CUSTOMERS = 2_000
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
STARTED = time.monotonic()


def progress(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {text}", file=sys.stderr, flush=True)


# --- the broker ---------------------------------------------------------------------------------


class Broker:
    """``--bootstrap`` as given, else the ``scripts/kafka`` broker on ``$KAFKA_PORT``: started
    here (and stopped at the end) unless it already runs."""

    def __init__(self, bootstrap: str | None) -> None:
        self.port = os.environ.get("KAFKA_PORT", "9092")
        self.bootstrap = bootstrap or f"127.0.0.1:{self.port}"
        self.own = bootstrap is None
        self.started = False

    def _kafka(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ROOT / "scripts" / "kafka"), command], cwd=ROOT, text=True,
                              capture_output=True, env={**os.environ, "KAFKA_PORT": self.port})

    def __enter__(self) -> Broker:
        if self.own:
            if self._kafka("status").returncode == 0:
                progress(f"using the broker already running on {self.bootstrap} (left running)")
            else:
                progress(f"starting a broker on {self.bootstrap} (scripts/kafka start) ...")
                done = self._kafka("start")
                if done.returncode != 0:
                    raise SystemExit(f"scripts/kafka start failed:\n{done.stdout}{done.stderr}")
                self.started = True
        return self

    def __exit__(self, *_: Any) -> None:
        if self.started:
            progress("stopping the broker (scripts/kafka stop)")
            self._kafka("stop")


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
        return len(mine)
    finally:
        await admin.close()


# --- the data -----------------------------------------------------------------------------------


class _Head(msgspec.Struct):
    type: Any = None
    customer_id: Any = None


_head = msgspec.json.Decoder(_Head)


def customers_own(line: bytes) -> bool:
    """Keyed by a customer id and no ``identify``: nothing crosses partitions."""
    head = _head.decode(line)
    return isinstance(head.customer_id, str) and head.type != "identify"


def choose_days(customers: int, events: int, seed: int) -> float:
    """The shortest span (in half days) whose pilot run, scaled up, gives ``events`` kept events."""
    pilot = min(customers, PILOT_CUSTOMERS)
    days = 0.5
    while sum(map(customers_own, sim.simulate(pilot, days, seed))) * customers / pilot < 1.05 * events:
        days += 0.5
    return days


def generate(customers: int, events: int, seed: int) -> tuple[list[bytes], float, str]:
    """``events`` lines of simulated history, the same bytes on every run but for ``ts``: the
    simulator starts on its default date, and every ``ts`` is then moved by whole weeks (same
    weekday, same time of day) so the history ends within the week before now and live events
    come after it. Returns the lines, the span in days and the first ``ts``."""
    days = choose_days(customers, events, seed)
    while True:
        lines: list[bytes] = []
        for line in sim.simulate(customers, days, seed):
            if customers_own(line):
                lines.append(line)
                if len(lines) >= events:
                    break
        if len(lines) >= events:
            break
        days += max(0.5, round(days * 0.2 * 2) / 2)  # the pilot fell short: a longer span
    last = _parse_ts(_ts_of(lines[-1]))
    weeks = (datetime.now(UTC) - timedelta(hours=1) - last) // timedelta(weeks=1)
    return shift(lines, timedelta(weeks=weeks)), days, _ts_of(shift(lines[:1], timedelta(weeks=weeks))[0]).decode()


def _ts_of(line: bytes) -> bytes:
    start = line.index(b'"ts":"') + 6  # the envelope's ts comes before any properties
    return line[start:line.index(b'"', start)]


def _parse_ts(text: bytes) -> datetime:
    return datetime.fromisoformat(text.decode().replace("Z", "+00:00"))


def shift(lines: list[bytes], delta: timedelta) -> list[bytes]:
    """Every line's ``ts`` moved by ``delta`` (the rest of the bytes untouched)."""
    moved: dict[bytes, bytes] = {}
    out = []
    for line in lines:
        start = line.index(b'"ts":"') + 6
        end = line.index(b'"', start)
        old = line[start:end]
        new = moved.get(old)
        if new is None:
            new = moved[old] = (_parse_ts(old) + delta).isoformat().replace("+00:00", "Z").encode()
        out.append(line[:start] + new + line[end:])
    return out


# --- timelines ----------------------------------------------------------------------------------


@dataclass
class Timeline:
    """(monotonic time, events consumed, CPU seconds of the process) samples of one consumer."""

    points: list[tuple[float, float, float]] = field(default_factory=list)
    finished: bool = False

    def add(self, t: float, count: float, cpu: float) -> None:
        self.points.append((t, count, cpu))

    @property
    def count(self) -> float:
        return self.points[-1][1] if self.points else 0

    def at_count(self, count: float) -> tuple[float, float]:
        """(time, cpu) when ``count`` events had been consumed, interpolated between samples."""
        previous = self.points[0]
        for point in self.points:
            if point[1] >= count:
                if point[1] == previous[1]:
                    return point[0], point[2]
                f = (count - previous[1]) / (point[1] - previous[1])
                return (previous[0] + f * (point[0] - previous[0]),
                        previous[2] + f * (point[2] - previous[2]))
            previous = point
        return previous[0], previous[2]

    def summary(self) -> dict[str, float]:
        """Sustained rate (10 % to 90 % of the events), first-to-last rate, CPU in the window."""
        live = [p for p in self.points if p[1] > 0]
        if len(live) < 2:
            return {"sustained": 0.0, "overall": 0.0, "cpu": 0.0, "cpu_us": 0.0, "seconds": 0.0, "count": self.count}
        total = live[-1][1]
        lo, hi = 0.1 * total, 0.9 * total
        (t_lo, cpu_lo), (t_hi, cpu_hi) = self.at_count(lo), self.at_count(hi)
        span = max(t_hi - t_lo, 1e-9)
        first, last = live[0], live[-1]
        return {
            "sustained": (hi - lo) / span,
            "overall": (last[1] - first[1]) / max(last[0] - first[0], 1e-9),
            "cpu": (cpu_hi - cpu_lo) / span,
            "cpu_us": (cpu_hi - cpu_lo) / (hi - lo) * 1e6,
            "seconds": last[0] - first[0],
            "count": total,
        }


class Marks:
    """In a child: a line ``time count cpu`` to ``path`` at the first event, every 2 % and the last."""

    def __init__(self, path: str, total: int) -> None:
        self.out = open(path, "w")  # noqa: SIM115 (open for the life of the child)
        self.total = total
        self.every = max(total // 50, 1)
        self.count = 0

    def add(self, n: int = 1) -> None:
        before = self.count
        self.count += n
        if before == 0 or self.count // self.every != before // self.every or self.count >= self.total:
            self.out.write(f"{time.monotonic()} {self.count} {time.process_time()}\n")
            self.out.flush()

    @property
    def done(self) -> bool:
        return self.count >= self.total


def read_marks(path: Path) -> Timeline:
    timeline = Timeline()
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                timeline.add(float(parts[0]), float(parts[1]), float(parts[2]))
    return timeline


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's session (it was started in one of its own), SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# --- (a) the worker -----------------------------------------------------------------------------


@dataclass
class Run:
    """Names and places of one benchmark run."""

    bootstrap: str
    prefix: str
    partitions: int
    events: int
    workdir: Path
    stage_timeout: float

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (f"{self.prefix}-clickstream", f"{self.prefix}-transactions", f"{self.prefix}-profiles")


class WorkerUnderTest:
    def __init__(self, run: Run, extra_env: dict[str, str], loglevel: str) -> None:
        self.run = run
        self.loglevel = loglevel
        self.extra_env = extra_env
        self.app_id = f"{run.prefix}-seg"
        self.changes = f"{run.prefix}-changes"
        self.port = free_port()
        self.log = run.workdir / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        r = self.run
        env = {**os.environ,
               "SEGMENTER_BOOTSTRAP_SERVERS": r.bootstrap, "SEGMENTER_APP_ID": self.app_id,
               "SEGMENTER_RULES": str(ROOT / "rules"), "SEGMENTER_STORE": "rocksdb",
               "SEGMENTER_PARTITIONS": str(r.partitions), "SEGMENTER_STANDBY_REPLICAS": "0",
               "SEGMENTER_DATA_DIR": str(r.workdir / "worker-data"), "SEGMENTER_WEB_PORT": str(self.port),
               "SEGMENTER_CLICKSTREAM_TOPIC": r.inputs[0], "SEGMENTER_TRANSACTIONS_TOPIC": r.inputs[1],
               "SEGMENTER_PROFILES_TOPIC": r.inputs[2], "SEGMENTER_CHANGES_TOPIC": self.changes,
               "SEGMENTER_DEAD_LETTER_TOPIC": f"{r.prefix}-dlq", **self.extra_env}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--loglevel", self.loglevel],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                body: bytes = response.read()
                return body
        except OSError:
            return None

    def metrics(self) -> tuple[float, float, bool] | None:
        """(events applied, consumer lag summed over input partitions, whether lag is reported
        yet). Applied, not read: the worker reads ahead into its event-time alignment buffer."""
        body = self.get("/metrics/")
        if body is None:
            return None
        events = lag = 0.0
        lag_seen = False
        for line in body.decode().splitlines():
            if line.startswith("segmenter_events_applied_total "):
                events += float(line.rsplit(" ", 1)[1])
            elif line.startswith("segmenter_consumer_lag{"):
                lag += float(line.rsplit(" ", 1)[1])
                lag_seen = True
        return events, lag, lag_seen

    def lag(self) -> float | None:
        sample = self.metrics()
        return None if sample is None else sample[1]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def measure(self, on_running: Callable[[], None] | None = None) -> Timeline:
        """Sample /metrics/ every 0.25 s until every event is in and the lag is 0."""
        assert self.proc is not None
        timeline = Timeline()
        deadline = time.monotonic() + 90 + self.run.stage_timeout
        shown = 0.0
        while time.monotonic() < deadline:
            if not self.alive():
                raise SystemExit(f"the worker exited with {self.proc.returncode}:\n{log_tail(self.log)}")
            sample = self.metrics()
            now = time.monotonic()
            if sample is not None:
                events, lag, lag_seen = sample
                timeline.add(now, events, cpu_seconds(self.proc.pid))
                if events > 0 and on_running is not None:
                    on_running()
                    on_running = None
                if events >= self.run.events and lag_seen and lag == 0:
                    timeline.finished = True
                    break
                if events and now - shown >= 2:
                    shown = now
                    progress(f"(a) worker: {events:,.0f}/{self.run.events:,} events applied, lag {lag:,.0f}")
                if events == 0:  # start-up does not count against the stage's time
                    deadline = max(deadline, now + self.run.stage_timeout)
            time.sleep(0.25)
        return timeline

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


# --- latency ------------------------------------------------------------------------------------


Pair = tuple[str, str]
"""(customer id, ``ts``) of a live event; a change it causes has the same customer id and ``at``."""


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process meanwhile. A full collection walks every object the
    benchmark keeps (the prepared lines, each event's send time, the changes seen): 50 to 190 ms
    each, a few per run, and nothing collected. The sender stood still meanwhile, then handed the
    worker a burst, and the reader saw changes late: the latency figures charged both to the
    worker. A timed run makes no garbage worth collecting."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def read_changes(bootstrap: str, changes: str, out: str, counted: Any, ready: Any, stop: Any) -> None:
    """In a process of its own (so neither the producer's loop nor its hold on the GIL delays
    it, as an automation platform's consumer would not be): the changes topic read from its
    end. Every (customer id, ``at``) seen goes to ``out`` on ``stop`` with the moment it was
    first read, that change's record timestamp (the worker's wall clock when it handed the
    change to its producer) and how many changes carried it; ``counted`` follows how many
    pairs have been seen. A change caused by a live event has that event's customer id and
    ``at`` (the causing event's instant, formatted as its ``ts`` was)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    seen: dict[Pair, list[float]] = {}

    async def loop() -> None:
        # A short fetch wait: aiokafka leaves the partitions still being read out of the next
        # fetch, and the broker may hold that one this long for want of data.
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(changes) or set()
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(changes) or set()
            tps = [TopicPartition(changes, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
            ready.set()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                now = time.monotonic()
                for records in batches.values():
                    for record in records:
                        if not record.value:
                            continue
                        change = orjson.loads(record.value)
                        pair = (change.get("customer_id"), change.get("at"))
                        first = seen.get(pair)
                        if first is None:
                            seen[pair] = [now, record.timestamp / 1000, 1]
                            counted.value += 1
                        else:
                            first[2] += 1
        finally:
            ready.set()
            await consumer.stop()

    try:
        with collector_paused():
            asyncio.run(loop())
    finally:
        Path(out).write_bytes(msgspec.msgpack.encode(seen))


async def paced(bootstrap: str, inputs: tuple[str, str, str], lines: list[bytes], rate: float,
                sent: dict[Pair, float]) -> tuple[float, list[Pair]]:
    """Each line sent on time at ``rate``, its ``ts`` replaced by the present (the rest of the
    event as simulated); the moment each is handed to the producer goes in ``sent``. Returns the
    seconds it took and the pairs in the order sent.

    The generator shares the machine with the worker and the broker, so the per-event work is
    cut to the bone: each line is split around its ``ts`` and routed beforehand (partition
    included, as the default partitioner would choose it), and the loop wakes every millisecond
    to put what has fallen due into one batch per partition, handed to the producer whole. A
    ``send()`` per event cost this process some 60 % of a CPU at 14,000 events/s, taken from
    the worker it measures."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    from streams.model.clock import format_instant
    from streams.tools.produce import route

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    partitioner = DefaultPartitioner()
    counts = {topic: sorted(await producer.partitions_for(topic)) for topic in inputs}
    prepared = []
    for line in lines:
        start = line.index(b'"ts":"') + 6  # the envelope's ts comes before any properties
        end = line.index(b'"', start)
        topic, key = route(line, inputs)
        partition = partitioner(key, counts[topic], counts[topic])
        prepared.append((line[:start], line[end:], topic, partition, key, (key or b"").decode()))
    second, prefix = -1, ""

    def stamp(instant: int) -> str:
        """``format_instant(instant)``, the date and time formatted once a second: formatting
        each took a sixth of this process's time."""
        nonlocal second, prefix
        micros = instant % 1_000_000
        if instant // 1_000_000 == second and micros % 1000:
            return f"{prefix}{micros:06d}Z"
        text = format_instant(instant)
        if micros % 1000:  # the microseconds form: "...T20:28:39.123456Z"
            second, prefix = instant // 1_000_000, text[:-7]
        return text

    async def send(builder: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        builder.close()
        return await producer.send_batch(builder, topic, partition=partition)

    pending = []
    pairs: list[Pair] = []
    last = 0
    done = 0
    try:
        started = time.monotonic()
        while done < len(prepared):
            due = min(len(prepared), int((time.monotonic() - started) * rate) + 1)
            batches: dict[tuple[str, int], Any] = {}
            while done < due:
                head, tail, topic, partition, key, customer = prepared[done]
                # Strictly increasing, so no two events share a ts (and a pair names one event).
                last = max(time.time_ns() // 1000, last + 1)
                ts = stamp(last)
                pair = (customer, ts)
                pairs.append(pair)
                sent[pair] = time.monotonic()
                value = head + ts.encode() + tail
                builder = batches.get((topic, partition))
                if builder is None:
                    builder = batches[topic, partition] = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is None:
                    # Full (after a stall, a tick's share can outgrow a batch): send it, start anew.
                    pending.append(await send(builder, topic, partition))
                    builder = batches[topic, partition] = producer.create_batch()
                    builder.append(key=key, value=value, timestamp=None)
                done += 1
            for (topic, partition), builder in batches.items():
                pending.append(await send(builder, topic, partition))
            await asyncio.sleep(0.001)
        seconds = time.monotonic() - started
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return seconds, pairs


def latency(bootstrap: str, inputs: tuple[str, str, str], changes: str, rate: float, seconds: float,
            customers: int, seed: int, pid: int, backlog: Callable[[], float | None]) -> dict[str, Any]:
    """Live events of simulated traffic like (a)'s (another seed) at ``rate``, each with ``ts`` =
    the moment it is sent; per event that causes a change, its first change read from the
    changes topic minus the moment it was handed to the producer. The same kind of traffic as
    (a) measured its rate on, so half that rate is a load the worker should carry with room."""
    warm = max(200, int(rate * 2))
    count = max(1, int(rate * seconds))
    progress(f"latency: generating {warm + count:,} events of {customers:,} customers (simulator, seed {seed}) ...")
    lines = generate(customers, warm + count, seed)[0]
    sent: dict[Pair, float] = {}
    wall = time.time() - time.monotonic()  # monotonic + wall = the wall clock the records carry
    mp = multiprocessing.get_context("spawn")
    counted, ready, stop = mp.Value("q", 0), mp.Event(), mp.Event()
    handle, out = tempfile.mkstemp(prefix="segmenter-latency-", suffix=".msgpack")
    os.close(handle)
    reader = mp.Process(target=read_changes, args=(bootstrap, changes, out, counted, ready, stop), daemon=True)
    reader.start()
    ready.wait(60)

    def settle(grace: float) -> None:
        """Until the worker's lag is 0 and no change has come for a second, or ``grace``
        seconds. The lag gauge is refreshed every 0.25 s, hence the first wait."""
        deadline = time.monotonic() + grace
        time.sleep(0.5)
        count_then, quiet_since = counted.value, time.monotonic()
        while time.monotonic() < deadline:
            if counted.value != count_then:
                count_then, quiet_since = counted.value, time.monotonic()
            elif backlog() == 0 and time.monotonic() - quiet_since >= 1.0:
                return
            time.sleep(0.25)

    try:
        with collector_paused():
            # Warm-up: the partitions' clocks jump from the history to now (firing what fell due).
            progress(f"latency: warm-up, {warm:,} events at {rate:,.0f} events/s")
            asyncio.run(paced(bootstrap, inputs, lines[:warm], rate, sent))
            settle(20)
            progress(f"latency: {count:,} live events of simulated traffic at {rate:,.0f} events/s for {seconds:g} s")
            cpu_before = cpu_seconds(pid)
            produce_seconds, keys = asyncio.run(paced(bootstrap, inputs, lines[warm:], rate, sent))
            cpu = (cpu_seconds(pid) - cpu_before) / produce_seconds
            lag = backlog()
            settle(10)
    finally:
        stop.set()
        reader.join(30)
    try:
        seen = msgspec.msgpack.decode(Path(out).read_bytes(), type=dict[tuple[str, str], list[float]])
    finally:
        os.unlink(out)
    late = {k: seen[k][0] - sent[k] for k in keys if k in seen}
    # Split at the worker's send: input read, state updated, rules evaluated | producer, broker, reader.
    inward = sorted(seen[k][1] - wall - sent[k] for k in late)
    outward = sorted(seen[k][0] + wall - seen[k][1] for k in late)
    quarters = [sorted(late[k] for k in keys[q * count // 4:(q + 1) * count // 4] if k in late) for q in range(4)]
    return {"sent": count, "seed": seed, "matched": len(late), "changes": sum(int(seen[k][2]) for k in late),
            "produce_seconds": produce_seconds, "rate": count / produce_seconds,
            "latencies": sorted(late.values()), "inward": inward, "outward": outward, "cpu": cpu, "lag": lag,
            "quarters": [nearest_rank(q, 0.5) for q in quarters]}



# --- py-spy -------------------------------------------------------------------------------------


def py_spy_start(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        progress("py-spy not found (.venv/bin/pip install py-spy); no profile")
        return None
    progress(f"py-spy record -p {pid} (raw, 100 Hz, --nonblocking)")
    return subprocess.Popen([exe, "record", "-f", "raw", "-r", "100", "--nonblocking", "-p", str(pid),
                             "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def py_spy_stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C: py-spy writes its file and exits."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def py_spy_report(out: Path, top: int) -> None:
    if not out.exists():
        print("profile:     py-spy wrote nothing")
        return
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in out.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")[1:] or stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    print(f"profile:     {total:,} samples of the worker on CPU (py-spy, 100 Hz); top {top} by own time:")
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print(f"  top {top} by inclusive time:")
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print(f"  raw stacks: {out}")


def _frame(text: str) -> str:
    """``fn (path/to/file.py:123)`` -> ``fn (file.py)``: one entry per function, not per line."""
    name, _, where = text.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name} ({short})" if where else name


# --- (b) and (c): child processes --------------------------------------------------------------


def faust_child(args: argparse.Namespace) -> None:
    import faust

    app = faust.App(args.app_id, broker=f"kafka://{args.bootstrap}", store="rocksdb://",
                    datadir=args.data_dir, topic_partitions=args.partitions, table_standby_replicas=0,
                    consumer_auto_offset_reset="earliest", producer_acks=-1, web_enabled=False)
    source = app.topic(*args.topics.split(","), key_type=bytes, value_type=bytes)
    counts = app.Table("counts", default=int, partitions=args.partitions, key_type=bytes, value_type=int)
    marks = Marks(args.result, args.events)

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for key, _value in stream.items():
            counts[key] += 1
            marks.add()

    sys.argv = [sys.argv[0], "worker", "--loglevel", "info"]
    app.main()


class _Out(msgspec.Struct):
    event_id: str
    type: str
    customer_id: str | None


def bare_child(args: argparse.Namespace) -> None:
    asyncio.run(_bare(args))


async def _bare(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from streams.model.events import BadEvent, decode, type_of

    encode = msgspec.json.Encoder().encode
    consumer = AIOKafkaConsumer(*args.topics.split(","), bootstrap_servers=args.bootstrap, group_id=args.app_id,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=5, max_batch_size=1 << 20)
    await consumer.start()
    await producer.start()
    marks = Marks(args.result, args.events)
    try:
        while not marks.done:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            futures = []
            for records in batches.values():
                for record in records:
                    event = decode(record.value or b"")
                    if isinstance(event, BadEvent):
                        value = encode(_Out("", "bad", None))
                    else:
                        value = encode(_Out(event.event_id, type_of(event), event.customer_id))
                    futures.append(await producer.send(args.output, value, key=record.key))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
                marks.add(len(futures))
    finally:
        await producer.stop()
        await consumer.stop()


def run_child(run: Run, role: str, label: str) -> Timeline:
    result = run.workdir / f"{role}.marks"
    log = run.workdir / f"{role}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", role, "--bootstrap", run.bootstrap,
               "--events", str(run.events), "--partitions", str(run.partitions),
               "--child-topics", ",".join(run.inputs), "--child-app-id", f"{run.prefix}-{role}",
               "--child-result", str(result), "--child-data-dir", str(run.workdir / f"{role}-data"),
               "--child-output", f"{run.prefix}-bare-out"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90 + run.stage_timeout
        shown = 0.0
        timeline = Timeline()
        while time.monotonic() < deadline:
            timeline = read_marks(result)
            if timeline.count >= run.events:
                timeline.finished = True
                break
            if proc.poll() is not None:
                raise SystemExit(f"{label} exited with {proc.returncode}:\n{log_tail(log)}")
            now = time.monotonic()
            if timeline.count == 0:
                deadline = max(deadline, now + run.stage_timeout)
            elif now - shown >= 2:
                shown = now
                progress(f"{label}: {timeline.count:,.0f}/{run.events:,} events")
            time.sleep(0.25)
        return timeline
    finally:
        stop_process(proc)


# --- the benchmark ------------------------------------------------------------------------------


def describe(label: str, summary: dict[str, float], finished: bool, total: int) -> str:
    unfinished = "" if finished else f"  [stopped at {summary['count']:,.0f} of {total:,}: stage timeout]"
    return (f"{label} {summary['sustained']:>9,.0f} events/s sustained (10-90 %), "
            f"{summary['overall']:,.0f}/s first-to-last over {summary['seconds']:.1f} s; "
            f"CPU {100 * summary['cpu']:.0f} % = {summary['cpu_us']:,.0f} us/event{unfinished}")


def measure(args: argparse.Namespace, bootstrap: str) -> None:
    prefix = f"wb-{uuid.uuid4().hex[:8]}"
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix=f"segmenter-{prefix}-"))
    run = Run(bootstrap, prefix, args.partitions, args.events, workdir, args.stage_timeout)
    try:
        progress(f"generating {args.events:,} events of {args.customers:,} customers (simulator, seed {args.seed}) ...")
        lines, days, start = generate(args.customers, args.events, args.seed)
        run.events = len(lines)
        progress(f"generated {len(lines):,} events over {days:g} days from {start}")

        asyncio.run(create_topics(bootstrap, [*run.inputs, f"{prefix}-bare-out"], args.partitions))
        from streams.tools.produce import produce

        progress(f"producing them to {', '.join(run.inputs)} ({args.partitions} partitions) ...")
        began = time.monotonic()
        last_shown = [0.0]

        def shown(sent: int) -> None:
            if time.monotonic() - last_shown[0] >= 2:
                last_shown[0] = time.monotonic()
                progress(f"produced {sent:,}/{run.events:,}")

        asyncio.run(produce(lines, bootstrap_servers=bootstrap, topics=run.inputs, on_progress=shown))
        produce_seconds = time.monotonic() - began
        progress(f"produced {run.events:,} events in {produce_seconds:.1f} s")
        del lines

        results: dict[str, tuple[dict[str, float], bool]] = {}
        lat: dict[str, Any] | None = None
        profile_args: tuple[Path, int] | None = None
        if "a" in args.only:
            lat, profile_args = stage_a(args, run, results)
        if "b" in args.only:
            progress("(b) starting a plain faust agent with a Table ...")
            b = run_child(run, "faust", "(b) faust agent")
            results["b"] = b.summary(), b.finished
        if "c" in args.only:
            progress("(c) starting a bare aiokafka consume-decode-produce loop ...")
            c = run_child(run, "bare", "(c) bare aiokafka")
            results["c"] = c.summary(), c.finished

        print(f"events:      {run.events:,} ({args.customers:,} customers over {days:g} days, seed {args.seed}; "
              f"customers' own events, no identify), pre-produced to {args.partitions} partitions "
              f"in {produce_seconds:.1f} s")
        print(f"machine:     broker {bootstrap}; {os.cpu_count()} CPUs; load average (1 min) "
              f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
        if args.worker_env:
            print(f"worker env:  {' '.join(args.worker_env)}")
        labels = {"a": "(a) worker  ", "b": "(b) faust   ", "c": "(c) aiokafka"}
        for stage, (summary, finished) in results.items():
            print(describe(labels[stage], summary, finished, run.events))
        rate = {stage: summary["sustained"] for stage, (summary, _) in results.items()}
        ratios = [f"(a)/({k}) {rate['a'] / rate[k]:.2f}x" for k in ("b", "c")
                  if "a" in rate and rate.get(k)]
        if ratios:
            print(f"ratios:      {', '.join(ratios)}")
        if lat is not None:
            ms = lat["latencies"]
            print(f"latency:     {lat['sent']:,} live events of simulated traffic (seed {lat['seed']}) at "
                  f"{lat['rate']:,.0f}/s ({'as set' if args.latency_rate else 'half of (a)'}) over "
                  f"{lat['produce_seconds']:.1f} s; "
                  f"{lat['changes']:,} changes caused by them matched ({lat['matched']:,} events with one or more)")
            print(f"             from send to first change: p50 {1000 * nearest_rank(ms, 0.5):.1f} ms, "
                  f"p99 {1000 * nearest_rank(ms, 0.99):.1f} ms, max {1000 * (ms[-1] if ms else float('nan')):.1f} ms")
            print(f"             of which to the worker's send: p50 {1000 * nearest_rank(lat['inward'], 0.5):.1f} ms, "
                  f"p99 {1000 * nearest_rank(lat['inward'], 0.99):.1f} ms; from there to read: "
                  f"p50 {1000 * nearest_rank(lat['outward'], 0.5):.1f} ms, "
                  f"p99 {1000 * nearest_rank(lat['outward'], 0.99):.1f} ms")
            lag = "?" if lat["lag"] is None else f"{lat['lag']:,.0f}"
            print(f"             worker CPU {100 * lat['cpu']:.0f} % while they were sent; its consumer lag "
                  f"{lag} when the last was sent (the gauge is updated every 0.25 s)")
            print(f"             p50 by quarter of the run: "
                  f"{', '.join(f'{1000 * q:.1f}' for q in lat['quarters'])} ms")
        if profile_args is not None:
            py_spy_report(*profile_args)
    finally:
        with contextlib.suppress(Exception):
            deleted = asyncio.run(delete_topics(bootstrap, prefix))
            progress(f"deleted {deleted} topics of {prefix}")
        if args.py_spy or args.keep:
            progress(f"kept {workdir} (the worker's log{', py-spy output' if args.py_spy else ''})")
            for path in workdir.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def stage_a(args: argparse.Namespace, run: Run, results: dict[str, tuple[dict[str, float], bool]]
            ) -> tuple[dict[str, Any] | None, tuple[Path, int] | None]:
    """(a) the worker, then the latency on the same process (and py-spy on it, if asked)."""
    extra = dict(item.split("=", 1) for item in args.worker_env)
    worker = WorkerUnderTest(run, extra, args.worker_loglevel)
    spy: subprocess.Popen[bytes] | None = None
    spy_out = run.workdir / "worker.pyspy.txt"

    def spy_on() -> None:
        nonlocal spy
        if args.py_spy and worker.proc is not None:
            spy = py_spy_start(worker.proc.pid, spy_out)

    def spy_on_latency() -> None:
        if args.py_spy_latency:
            spy_on()

    progress("(a) starting segmenter worker ...")
    worker.start()
    profile_args: tuple[Path, int] | None = None
    lat: dict[str, Any] | None = None
    try:
        a = worker.measure(on_running=None if args.py_spy_latency else spy_on)
        a_summary = a.summary()
        results["a"] = a_summary, a.finished
        if spy is not None:
            py_spy_stop(spy)
            spy = None
            profile_args = (spy_out, args.py_spy)
        progress(f"(a) done: {a_summary['sustained']:,.0f} events/s sustained")
        if args.latency_seconds > 0 and a_summary["sustained"] > 0:
            rate = args.latency_rate or 0.5 * a_summary["sustained"]
            assert worker.proc is not None
            spy_on_latency()
            lat = latency(run.bootstrap, run.inputs, worker.changes, rate, args.latency_seconds,
                          args.customers, args.seed + 1, worker.proc.pid, worker.lag)
            if spy is not None:
                py_spy_stop(spy)
                spy = None
                profile_args = (spy_out, args.py_spy)
    finally:
        if spy is not None:
            spy.kill()
        worker.stop()
    return lat, profile_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap", default=None,
                        help="an existing broker (default: scripts/kafka on $KAFKA_PORT, started and stopped here "
                        "unless it already runs)")
    parser.add_argument("--latency-seconds", type=float, default=20.0,
                        help="live events for this long at half of (a)'s rate (0: no latency run)")
    parser.add_argument("--latency-rate", type=float, default=0.0, metavar="EVENTS_PER_S",
                        help="the latency run at this rate instead of half of (a)'s, to see how latency "
                        "grows with load")
    parser.add_argument("--stage-timeout", type=float, default=120.0,
                        help="seconds each consumer may take after its first event (default 120)")
    parser.add_argument("--py-spy", type=int, default=0, metavar="N",
                        help="profile the worker during (a) with py-spy and print the top N functions")
    parser.add_argument("--py-spy-latency", action="store_true",
                        help="with --py-spy: profile the latency run instead of (a)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (the worker's log)")
    parser.add_argument("--only", default="abc", metavar="STAGES",
                        help="run only these of the stages a, b, c (default abc)")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the worker in (a), e.g. a faust setting (repeatable)")
    parser.add_argument("--worker-loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"],
                        help="the worker's --loglevel (default info, the worker's own default)")
    parser.add_argument("--child", choices=["faust", "bare"], help=argparse.SUPPRESS)
    for name in ("topics", "app-id", "result", "data-dir", "output"):
        parser.add_argument(f"--child-{name}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child = argparse.Namespace(bootstrap=args.bootstrap, events=args.events, partitions=args.partitions,
                                   topics=args.child_topics, app_id=args.child_app_id, result=args.child_result,
                                   data_dir=args.child_data_dir, output=args.child_output)
        (faust_child if args.child == "faust" else bare_child)(child)
        return 0
    with Broker(args.bootstrap) as broker:
        measure(args, broker.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
