"""Running real ``segmenter worker`` processes against the test broker, and reading topics back.

Each test gets its own app id and topic names, so workers, consumer groups and changelogs of
different tests never meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    """The names one test's workers share: app id, topics, partitions, rules."""

    bootstrap: str
    data_root: Path
    partitions: int = 4
    rules: Path = ROOT / "rules"
    prefix: str = field(default_factory=lambda: f"it-{uuid.uuid4().hex[:8]}")
    extra: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    """The workers' web token (SEGMENTER_WEB_TOKEN), which :meth:`WorkerProcess.get` sends."""

    @property
    def topics(self) -> tuple[str, str, str]:
        return (f"{self.prefix}-clickstream", f"{self.prefix}-transactions", f"{self.prefix}-profiles")

    @property
    def changes(self) -> str:
        return f"{self.prefix}-changes"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}-dlq"

    def env(self, name: str, web_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SEGMENTER_BOOTSTRAP_SERVERS": self.bootstrap,
            "SEGMENTER_APP_ID": self.prefix,
            "SEGMENTER_RULES": str(self.rules),
            "SEGMENTER_PARTITIONS": str(self.partitions),
            "SEGMENTER_STANDBY_REPLICAS": "0",
            "SEGMENTER_DATA_DIR": str(self.data_root / name),
            "SEGMENTER_WEB_PORT": str(web_port),
            "SEGMENTER_CLICKSTREAM_TOPIC": self.topics[0],
            "SEGMENTER_TRANSACTIONS_TOPIC": self.topics[1],
            "SEGMENTER_PROFILES_TOPIC": self.topics[2],
            "SEGMENTER_CHANGES_TOPIC": self.changes,
            "SEGMENTER_DEAD_LETTER_TOPIC": self.dead_letter,
            "SEGMENTER_MEMBERSHIPS_TOPIC": f"{self.prefix}-memberships",
            "SEGMENTER_ACTIVATION_TOPIC_PREFIX": f"{self.prefix}-act",
            "SEGMENTER_WEB_TOKEN": self.token,
            **self.extra,
        })
        return env


class WorkerProcess:
    def __init__(self, deployment: Deployment, name: str = "w1", clock_step: Path | None = None) -> None:
        self.deployment = deployment
        self.name = name
        self.clock_step = clock_step
        """A file of seconds by which the worker's system clock is stepped (tests/integration/stepped_clock.py)."""
        self.web_port = free_port()
        self.log_path = deployment.data_root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> WorkerProcess:
        self.deployment.data_root.mkdir(parents=True, exist_ok=True)
        env = self.deployment.env(self.name, self.web_port)
        command = [sys.executable, "-m", "streams.cli"]
        if self.clock_step is not None:
            command = [sys.executable, str(Path(__file__).with_name("stepped_clock.py"))]
            env["SEGMENTER_TEST_CLOCK_STEP"] = str(self.clock_step)
            env["PYTHONPATH"] = str(ROOT)
        command += ["worker", "--loglevel", os.environ.get("SEGMENTER_TEST_LOGLEVEL", "info")]
        with open(self.log_path, "ab") as log:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if self.get("/health/") is not None:
                return
            time.sleep(0.5)
        raise AssertionError(f"worker {self.name} not healthy within {timeout}s:\n{self.log()}")

    def get(self, path: str) -> bytes | None:
        """The body of a 200 answer (sending the deployment's token), or None."""
        return self.request(path)[1] or None

    def request(self, path: str, token: str | None = "") -> tuple[int, bytes]:
        """(status, body); 0 when nothing answers. ``token``: "" the deployment's, None none."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token or self.deployment.token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, b""
        except OSError:
            return 0, b""

    def metric(self, name: str) -> float:
        """A metric's value from ``/metrics/`` (0 while it has none)."""
        body = (self.get("/metrics/") or b"").decode()
        found = re.search(rf"^{name} (\S+)$", body, re.M)
        return float(found.group(1)) if found else 0.0

    def applied(self) -> float:
        """Messages the worker has taken through its engines, dead letters included."""
        return self.metric("segmenter_events_applied_total")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, no goodbye to the group."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def running(*workers: WorkerProcess) -> Iterator[None]:
    try:
        for worker in workers:
            worker.start()
        yield
    finally:
        for worker in workers:
            worker.stop()


async def _read_all(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += batch
        return records
    finally:
        await consumer.stop()


def read_all(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic, as of now."""
    return asyncio.run(_read_all(bootstrap, topic))


def wait_for(predicate: Any, timeout: float, interval: float = 1.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def settle(bootstrap: str, topic: str, quiet: float = 6.0, timeout: float = 120.0) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic until it stops growing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = -1
    since = time.monotonic()
    while time.monotonic() < deadline:
        records = read_all(bootstrap, topic)
        if len(records) != last:
            last, since = len(records), time.monotonic()
        elif time.monotonic() - since >= quiet:
            return records
        time.sleep(1.0)
    raise AssertionError(f"{topic} kept growing for {timeout}s")
