"""Activations and memberships on the real broker: the worker sends to each channel's topic
exactly what ``segmenter replay --activations`` gives for the same history, and the memberships
topic holds exactly replay's members (docs/activation.md)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from histories import ROOT, create_topics, feed, recent_history, replay
from worker_harness import Deployment, WorkerProcess, read_all, running, settle, wait_for

from streams.engine import Engine
from streams.live.readers import read_compacted
from streams.live.settings import load as load_settings
from streams.model.clock import SECOND, parse_instant
from streams.model.events import BadEvent
from streams.model.memberships import decode as decode_membership
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


def cluster_sizes(worker: WorkerProcess) -> dict[str, int] | None:
    body = json.loads(worker.get("/segments/") or b"{}")
    return body["segments"] if body.get("cluster") else None


def current_members(deployment: Deployment) -> set[tuple[str, str]]:
    settings = load_settings(environ=deployment.env("reader", 0))
    values = asyncio.run(read_compacted(settings, settings.memberships_topic))
    return {(m.customer_id, m.segment) for m in map(decode_membership, values.values())}


def replayed_members(changes: list[dict[str, object]]) -> set[tuple[str, str]]:
    inside: set[tuple[str, str]] = set()
    for change in changes:
        pair = (str(change["customer_id"]), str(change["segment"]))
        if change["change"] == "entered":
            inside.add(pair)
        else:
            inside.discard(pair)
    return inside


def segmenter(deployment: Deployment, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "streams.cli", *args], env=deployment.env("cli", 0),
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def topics(bootstrap: str) -> set[str]:
    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(listed())


def auto_creation(bootstrap: str) -> str:
    """The broker's ``auto.create.topics.enable``."""
    async def described() -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
            [(_, _, _, _, entries)] = response.resources
            return next(str(value) for name, value, *_ in entries if name == "auto.create.topics.enable")
        finally:
            await admin.close()

    return asyncio.run(described())


def test_activations_and_memberships_are_what_replay_gives(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    lines = recent_history(seed=41)
    # With segment_topics too: every topic the worker sends to is one it created itself, since
    # the test broker creates none on first use.
    deployment = Deployment(kafka_bootstrap, tmp_path, extra={"SEGMENTER_SEGMENT_TOPICS": "true"})
    assert auto_creation(kafka_bootstrap) == "false"
    prefix = f"{deployment.prefix}-act"  # the harness's SEGMENTER_ACTIVATION_TOPIC_PREFIX
    pack = load_pack(ROOT / "rules")
    channels = sorted(pack.activation.channels)
    create_topics(deployment)
    worker = WorkerProcess(deployment)
    with running(worker):
        assert {f"{prefix}.{c}" for c in channels} <= topics(kafka_bootstrap), "created before any output"
        assert {f"{deployment.changes}.{r.name}" for r in pack.rules} <= topics(kafka_bootstrap)
        feed(deployment, lines)
        wait_for(lambda: worker.applied() >= len(lines), timeout=120, interval=0.2, what="the worker to catch up")
        caught_up = int(time.time()) * SECOND
        time.sleep(1.0 + 0.25 + 1.0)  # idle_after, a tick, and the send
        live = [json.loads(r.value) for c in channels for r in settle(kafka_bootstrap, f"{prefix}.{c}", quiet=3)]
        sizes = wait_for(lambda: cluster_sizes(worker), timeout=30, interval=0.2, what="cluster-wide sizes")
    # A consumer that starts after the run learns every current member from the memberships topic.
    members = current_members(deployment)
    changes, _ = replay(lines, until=caught_up)
    per_segment = [json.loads(r.value) for r in read_all(kafka_bootstrap, f"{deployment.changes}.repeat_customer")]
    assert sorted(c["change_id"] for c in per_segment) == sorted(
        str(c["change_id"]) for c in changes if c["segment"] == "repeat_customer")
    assert per_segment
    expected_members = replayed_members(changes)
    assert members == expected_members
    assert sizes == dict(sorted(Counter(segment for _, segment in expected_members).items()))
    exported = segmenter(deployment, "members", "cart_abandoner", "--format", "csv").splitlines()
    assert exported[0].startswith("customer_id,segment,since")
    assert sorted(line.split(",")[0] for line in exported[1:]) == sorted(
        c for c, s in expected_members if s == "cart_abandoner")
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


def night_zone(now: float) -> str:
    """A fixed-offset zone in which it is 23:00-ish now: inside the SMS quiet hours."""
    hour = datetime.fromtimestamp(now, UTC).hour
    offset = (23 - hour + 12) % 24 - 12  # in -12..+11
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")  # Etc/GMT-2 is UTC+2


def test_a_consent_withdrawn_while_the_text_is_held_cancels_it_on_the_channel_topic(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    topic = f"{deployment.prefix}-act.sms"
    create_topics(deployment)
    worker = WorkerProcess(deployment)
    now = time.time()
    zone = night_zone(now)

    def at(seconds_ago: float) -> str:
        return datetime.fromtimestamp(now - seconds_ago, UTC).isoformat().replace("+00:00", "Z")

    def event(event_id: str, type_: str, seconds_ago: float, **properties: object) -> bytes:
        return json.dumps({"event_id": event_id, "type": type_, "customer_id": "night-1", "ts": at(seconds_ago),
                           "properties": properties}).encode()

    def sms() -> list[dict[str, object]]:
        return [json.loads(r.value) for r in read_all(kafka_bootstrap, topic)]

    with running(worker):
        feed(deployment, [event("n1", "profile_updated", 40 * 60, traits={"timezone": zone}),
                          event("n2", "consent_updated", 40 * 60, sms=True),
                          event("n3", "add_to_cart", 31 * 60, sku="A", price=9.0)])
        [held] = wait_for(sms, timeout=30, interval=0.2, what="the held text")
        assert held["action"] == "send" and parse_instant(str(held["send_at"])) > parse_instant(str(held["at"]))
        feed(deployment, [event("n4", "consent_updated", 0, sms=False)])
        cancel = wait_for(lambda: [a for a in sms() if a["action"] == "cancel"], timeout=30, interval=0.2,
                          what="the cancel")
    assert cancel == [{**held, "action": "cancel", "at": cancel[0]["at"], "reason": cancel[0]["reason"],
                       "consent": cancel[0]["consent"]}]
    assert parse_instant(str(cancel[0]["at"])) < parse_instant(str(held["send_at"]))
