"""Histories for the worker's integration tests, what replay makes of them, and how the worker's
output is compared with it."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from worker_harness import Deployment, settle

from streams.engine import Engine
from streams.model.clock import DAY, Instant, parse_instant
from streams.model.events import BadEvent
from streams.offline.replay import latest_accepted
from streams.rules.deployments import Scheduled
from streams.rules.load import load_pack
from streams.tools.produce import produce
from streams.tools.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]


FED_IN_PARTS = {"SEGMENTER_IDLE_AFTER": "3600"}
"""For a history fed in parts: no partition's clock moves up to the wall clock in between (a
backfill fed in pauses would otherwise meet a clock that caught up; docs/worker.md, Time)."""


def quick_rules(tmp_path: Path, seconds: int) -> Path:
    """The default pack, plus ``quick_abandoner``: a cart abandoned after ``seconds``."""
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(ROOT / "rules" / "pack.toml", rules / "pack.toml")
    (rules / "quick_abandoner.toml").write_text(
        'name = "quick_abandoner"\nversion = 1\n'
        f'when = "cart_items > 0 and now - last_cart_activity >= seconds({seconds})"\n')
    return rules


def history(customers: int = 250, days: float = 10, seed: int = 11, noise: bool = True,
            start: str = "2026-01-01T00:00:00Z", personas: list[str] | None = None) -> list[bytes]:
    """Simulated traffic, keeping only customers' own events (the visitor-to-customer hand-off
    between partitions is tested on its own, since live it can reorder a merged visitor's last
    events against the customer's next ones; see docs/worker.md)."""
    lines = list(simulate(customers=customers, days=days, seed=seed, bad_rate=0.01 if noise else 0.0,
                          duplicate_rate=0.01 if noise else 0.0, start=start, personas=personas))

    def customers_own(line: bytes) -> bool:
        if not line.startswith(b'{"event_id"'):
            return True  # a bad event: it must be dead-lettered either way
        return b'"customer_id":"' in line and b'"type":"identify"' not in line

    return [line for line in lines if customers_own(line)]


def recent_history(seed: int) -> list[bytes]:
    """:func:`history` over ten days that ended three days ago: some deadlines after each
    partition's last event are due by the time a worker catches up, others not yet."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=13)
    return history(seed=seed, start=start.isoformat().replace("+00:00", "Z"))


def replay(lines: list[bytes], until: Instant | None = None, rules: Path = ROOT / "rules",
           deployments: Sequence[Scheduled] = ()) -> tuple[list[dict[str, object]], int]:
    """What ``segmenter replay`` gives (``--until`` and ``--deployments`` included): the changes,
    and how many lines were bad events."""
    engine = Engine(load_pack(rules), deployments=deployments)
    changes: list[dict[str, object]] = []

    def add(new: list[object]) -> None:
        changes.extend(json.loads(msgspec.json.encode(c)) for c in new)

    latest = latest_accepted(until)
    for line in lines:
        result = engine.process_bytes(line, latest=latest)
        if not isinstance(result, BadEvent):
            add(list(result))
    add(list(engine.finish(until)))
    return changes, engine.stats.bad


def create_topics(deployment: Deployment) -> None:
    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, deployment.partitions, 1) for t in deployment.topics])
        finally:
            await admin.close()

    asyncio.run(create())


def feed(deployment: Deployment, lines: list[bytes]) -> None:
    asyncio.run(produce(lines, bootstrap_servers=deployment.bootstrap, topics=deployment.topics, ordered=True))


def changes_of(deployment: Deployment, quiet: float = 8.0) -> list[dict[str, object]]:
    return [json.loads(r.value) for r in settle(deployment.bootstrap, deployment.changes, quiet=quiet)]


def compare(live: list[dict[str, object]], expected: list[dict[str, object]], lines: list[bytes]) -> None:
    """Every change replay gives up to a day before the end is there live, and nothing else."""
    same(live, expected, last_event_time(lines) - DAY)


def last_event_time(lines: list[bytes]) -> Instant:
    return max(parse_instant(json.loads(line)["ts"]) for line in lines if _is_event(line))


def same(live: list[dict[str, object]], expected: list[dict[str, object]], cut: Instant) -> None:
    """The changes stamped up to ``cut`` are the same live and in replay (by ``change_id``)."""
    def upto(changes: list[dict[str, object]]) -> dict[str, dict[str, object]]:
        return {str(c["change_id"]): c for c in changes if parse_instant(str(c["at"])) <= cut}

    got, want = upto(live), upto(expected)
    missing = [want[k] for k in want.keys() - got.keys()]
    extra = [got[k] for k in got.keys() - want.keys()]
    customers = sorted({str(c["customer_id"]) for c in missing + extra})
    assert not missing and not extra, (
        f"{len(missing)} changes missing and {len(extra)} extra, of customers {customers[:10]}; "
        f"missing {missing[:3]} extra {extra[:3]}")
    assert len(want) > 100


def _is_event(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line).get("ts"), str) and json.loads(line)["ts"].endswith("Z")
    except (ValueError, AttributeError):
        return False
