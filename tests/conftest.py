"""Shared test setup: markers by folder, and the real Kafka broker for integration tests.

- Tests under ``tests/unit`` are marked ``unit``; tests under ``tests/integration`` are
  marked ``integration``. Only ``integration`` tests may use the broker fixtures.
- ``kafka_bootstrap`` (session): ``KAFKA_BOOTSTRAP_SERVERS`` when set; otherwise a broker
  started with ``scripts/kafka start`` on a test port (``SEGMENTER_TEST_KAFKA_PORT``,
  default 19092) with its own state dir, so a developer's broker on 9092 is left alone, and
  with topic auto-creation off, as in production.
  The session stops it at the end only if it started it. If it cannot start, the
  integration tests are skipped, except under ``CI`` (or ``SEGMENTER_REQUIRE_KAFKA=1``),
  where they fail.
- ``kafka_control``: ``stop()`` and ``start()`` of that broker, for fault tests (only when the
  session started it; skipped, or failed under ``CI``, with a broker given from outside).
- ``new_topic(partitions=1)`` creates a topic with a name no other test uses;
  ``new_group_id()`` gives a fresh consumer group id.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
KAFKA_SCRIPT = ROOT / "scripts" / "kafka"

BROKER_FIXTURES = frozenset({"kafka_bootstrap", "kafka_control", "new_topic", "new_group_id"})
# Generous: a cold start fetches the broker's jars from Maven first.
KAFKA_START_SUBPROCESS_TIMEOUT_S = 900

T = TypeVar("T")


# --- markers ---------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = item.path.relative_to(TESTS).parts[0]
        except (ValueError, IndexError):
            continue
        if folder == "integration":
            item.add_marker(pytest.mark.integration)
        elif folder == "unit":
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    used = BROKER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if used and item.get_closest_marker("integration") is None:
        pytest.fail(
            f"{item.nodeid} uses {', '.join(sorted(used))}, which needs the real Kafka broker; "
            "only integration tests may (put the test under tests/integration or mark it "
            "@pytest.mark.integration)",
            pytrace=False,
        )


# --- the broker ------------------------------------------------------------


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in {"", "0", "false", "no", "off"}


def _broker_required() -> bool:
    return _truthy(os.environ.get("CI")) or _truthy(os.environ.get("SEGMENTER_REQUIRE_KAFKA"))


def _test_broker_env(port: int) -> dict[str, str]:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    env = dict(os.environ)
    # The developer's own broker settings must not leak into the test broker.
    for name in ("KAFKA_CONTROLLER_PORT", "KAFKA_NUM_PARTITIONS", "KAFKA_JVM_OPTS", "KAFKA_AUTO_CREATE_TOPICS"):
        env.pop(name, None)
    env["KAFKA_PORT"] = str(port)
    # As in production: a topic exists only if someone created it, so a send to a topic the
    # worker did not create fails the test instead of creating it.
    env["KAFKA_AUTO_CREATE_TOPICS"] = "false"
    env["SEGMENTER_KAFKA_HOME"] = str(cache / "segmenter" / f"test-{port}")
    return env


def _kafka(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_SCRIPT), command],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a running broker (``host:port[,host:port...]``)."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if given:
        yield given
        return

    port = int(os.environ.get("SEGMENTER_TEST_KAFKA_PORT", "19092"))
    env = _test_broker_env(port)
    already_running = _kafka("status", env, timeout=30).returncode == 0
    if not already_running:
        # A fresh broker per session: no topics left over from earlier runs.
        _kafka("reset", env, timeout=120)
    try:
        started = _kafka("start", env, timeout=KAFKA_START_SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kafka("stop", env, timeout=120)
        message = f"scripts/kafka start timed out after {KAFKA_START_SUBPROCESS_TIMEOUT_S}s"
    else:
        message = (
            f"scripts/kafka start (KAFKA_PORT={port}) failed with exit code "
            f"{started.returncode}:\n{started.stdout}{started.stderr}"
        )
        if started.returncode == 0:
            message = ""
    if message:
        if _broker_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message + "\n(set CI=true or SEGMENTER_REQUIRE_KAFKA=1 to fail instead)")

    _controlled["env"] = env
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _controlled.clear()
        if not already_running:
            stopped = _kafka("stop", env, timeout=120)
            if stopped.returncode != 0:
                print(f"scripts/kafka stop failed:\n{stopped.stdout}{stopped.stderr}")


_controlled: dict[str, dict[str, str]] = {}
"""The environment of the broker this session runs with scripts/kafka."""


class KafkaControl:
    """Stop and start the session's broker (its data stays): a broker outage, for fault tests."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def stop(self) -> None:
        done = _kafka("stop", self.env, timeout=120)
        assert done.returncode == 0, f"scripts/kafka stop failed:\n{done.stdout}{done.stderr}"

    def start(self) -> None:
        done = _kafka("start", self.env, timeout=300)
        assert done.returncode == 0, f"scripts/kafka start failed:\n{done.stdout}{done.stderr}"


@pytest.fixture
def kafka_control(kafka_bootstrap: str) -> Iterator[KafkaControl]:
    env = _controlled.get("env")
    if env is None:
        message = "the broker was not started by this session (KAFKA_BOOTSTRAP_SERVERS): it cannot be stopped"
        if _broker_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    control = KafkaControl(env)
    try:
        yield control
    finally:
        control.start()  # whatever the test did, the next one finds the broker up


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Runs ``coro`` to completion from sync code, even when called inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _slug(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")[:limit] or "test"


async def _create_topic(
    bootstrap: str, name: str, partitions: int, config: dict[str, str], timeout_s: float
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=config)], timeout_ms=int(timeout_s * 1000)
        )
        for topic, code, message in response.topic_errors:
            if code != 0:
                raise for_code(code)(f"creating topic {topic!r}: {message}")
        # Creation is asynchronous: wait until every partition has a leader.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            (described,) = await admin.describe_topics([name])
            leaders = [p["leader"] for p in described["partitions"]]
            if described["error_code"] == 0 and len(leaders) == partitions and min(leaders) >= 0:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"topic {name!r} has no leader for every partition: {described}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


class TopicFactory(Protocol):
    def __call__(
        self,
        partitions: int = 1,
        *,
        prefix: str | None = None,
        config: dict[str, str] | None = None,
    ) -> str: ...


@pytest.fixture
def new_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> TopicFactory:
    """Creates a topic only this test uses: ``new_topic(partitions=3)`` returns its name."""

    def make(
        partitions: int = 1, *, prefix: str | None = None, config: dict[str, str] | None = None
    ) -> str:
        name = f"{_slug(prefix or request.node.name)}-{uuid.uuid4().hex[:10]}"
        _run_async(_create_topic(kafka_bootstrap, name, partitions, config or {}, timeout_s=30))
        return name

    return make


@pytest.fixture
def new_group_id(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Callable[[], str]:
    """A consumer group id only this test uses: ``new_group_id()``."""
    del kafka_bootstrap  # requested so that only integration tests use it

    def make() -> str:
        return f"{_slug(request.node.name)}-{uuid.uuid4().hex[:10]}"

    return make


# --- what the workers of a failed integration test logged ------------------------------------
#
# A worker's log says which partitions it read from where, and when the group rebalanced: what
# explains a failure that depends on timing. CI keeps only the end of the output, so the lines
# that say it are printed last, just before pytest's short summary.

_WORKER_LOG_LINE = re.compile(r"\] reading |Revoking previously|Setting newly assigned|Heartbeat failed|"
                              r"\[(WARNING|ERROR|CRITICAL)\]|Traceback|Error: ")
_WORKER_LOG_TAIL = 20
_worker_logs = pytest.StashKey[list[str]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    if not (report.failed and report.when == "call" and item.get_closest_marker("integration")):
        return
    tmp = getattr(item, "funcargs", {}).get("tmp_path")
    if not isinstance(tmp, Path):
        return
    lines = [f"{item.nodeid}:"]
    for log in sorted(tmp.glob("*.log")):  # the workers'; their stores below hold RocksDB's own *.log
        picked = [line for line in log.read_text(errors="replace").splitlines() if _WORKER_LOG_LINE.search(line)]
        lines.append(f"  {log.name}: {len(picked)} such lines, the last {min(len(picked), _WORKER_LOG_TAIL)}:")
        lines += [f"    {line[:600]}" for line in picked[-_WORKER_LOG_TAIL:]]
    item.config.stash.setdefault(_worker_logs, []).extend(lines)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_worker_logs, [])
    if lines:
        terminalreporter.section("worker logs of failed integration tests: reads, rebalances, warnings")
        for line in lines:
            terminalreporter.line(line)
