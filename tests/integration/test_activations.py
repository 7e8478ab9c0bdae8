"""Activations on the real broker: the worker sends to each channel's topic exactly what
``segmenter replay --activations`` gives for the same history (docs/activation.md)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from aiokafka.admin import AIOKafkaAdminClient
from histories import ROOT, create_topics, feed, history
from worker_harness import Deployment, WorkerProcess, running, settle, wait_for

from streams.engine import Engine
from streams.model.clock import SECOND, parse_instant
from streams.model.events import BadEvent
from streams.offline.replay import latest_accepted
from streams.rules.load import load_pack


def replay_activations(lines: list[bytes], until: int) -> list[dict[str, object]]:
    engine = Engine(load_pack(ROOT / "rules"))
    out: list[dict[str, object]] = []
    latest = latest_accepted(until)
    for line in lines:
        if not isinstance(engine.process_bytes(line, latest=latest), BadEvent):
            out += [json.loads(msgspec.json.encode(a)) for a in engine.take_activations()]
    engine.finish(until)
    out += [json.loads(msgspec.json.encode(a)) for a in engine.take_activations()]
    return out


def topics(bootstrap: str) -> set[str]:
    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(listed())


def test_the_worker_sends_the_activations_replay_gives_to_topics_it_created(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=13)
    lines = history(seed=41, start=start.isoformat().replace("+00:00", "Z"))
    deployment = Deployment(kafka_bootstrap, tmp_path)
    prefix = f"{deployment.prefix}-act"
    deployment.extra["SEGMENTER_ACTIVATION_TOPIC_PREFIX"] = prefix
    channels = sorted(load_pack(ROOT / "rules").activation.channels)
    create_topics(deployment)
    worker = WorkerProcess(deployment)
    with running(worker):
        assert {f"{prefix}.{c}" for c in channels} <= topics(kafka_bootstrap), "created before any output"
        feed(deployment, lines)
        wait_for(lambda: worker.applied() >= len(lines), timeout=120, interval=0.2, what="the worker to catch up")
        caught_up = int(time.time()) * SECOND
        time.sleep(1.0 + 0.25 + 1.0)  # idle_after, a tick, and the send
        live = [json.loads(r.value) for c in channels for r in settle(kafka_bootstrap, f"{prefix}.{c}", quiet=3)]
    expected = replay_activations(lines, caught_up)

    def keyed(activations: list[dict[str, object]]) -> dict[tuple[str, str], dict[str, object]]:
        return {(str(a["activation_id"]), str(a["action"])): a for a in activations
                if parse_instant(str(a["at"])) <= caught_up}

    got, want = keyed(live), keyed(expected)
    assert got == want, (f"{len(want.keys() - got.keys())} missing, {len(got.keys() - want.keys())} extra: "
                         f"{list(want.keys() - got.keys())[:3]} {list(got.keys() - want.keys())[:3]}")
    actions = {(str(a["channel"]), str(a["action"])) for a in want.values()}
    assert ("sms", "send") in actions and ("push", "send") in actions
    assert len(want) > 20
