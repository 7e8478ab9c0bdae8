"""Faults on the real broker: hostile input, hand-offs lost or unreadable, the broker stopped and
started, SIGTERM while it is down, and HTTP as an outsider sees it.

Each test is bounded in time and asserts what an operator would check: the worker stayed up (or
restarted once and carried on), the good events' changes are replay's, and every bad message is
in the dead-letter topic with its reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from histories import FED_IN_PARTS, changes_of, compare, create_topics, feed, history, replay, same
from worker_harness import Deployment, WorkerProcess, read_all, running, wait_for

from streams.live.views import partition_of
from streams.model.clock import SECOND


def send(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], partition: int | None = None) -> None:
    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(topic, value, key=key, partition=partition)
        finally:
            await producer.stop()

    asyncio.run(go())


def dead_letters(deployment: Deployment) -> dict[bytes, str]:
    """Dead-lettered bytes -> reason."""
    return {record.value: dict(record.headers)["segmenter-reason"].decode()
            for record in read_all(deployment.bootstrap, deployment.dead_letter)}


# --- hostile input ---------------------------------------------------------------------------


def hostile_messages() -> dict[bytes, str]:
    """Messages a broken producer or an attacker sends, each with the reason it must get."""
    ts = "2026-01-05T12:00:00Z"

    def event(**fields: object) -> bytes:
        return json.dumps({"event_id": f"h-{len(fields)}-{random.random()}", "ts": ts, **fields}).encode()

    deep = (b'{"event_id":"h-deep","type":"profile_updated","customer_id":"cust-5","ts":"' + ts.encode()
            + b'","properties":{"traits":{"x":' + b"[" * 1000 + b"]" * 1000 + b"}}}")
    messages = {
        b"\x00\xff\xfe garbage": "not valid JSON",
        deep: "nesting:",
        event(type="page_view", customer_id="cust-7", ts="2099-01-01T00:00:00Z"): "future:",
        event(type="order_completed", customer_id="cust-9", properties={"total": 1e300}): "amount:",
        event(type="add_to_cart", customer_id="cust-11", properties={"sku": "A", "price": 5, "quantity": 10**9}):
            "quantity:",
        event(type="page_view", customer_id="c" * 10_000): "too long:",
        event(type="page_view", customer_id="cust-\u0000-13"): "control character:",
        event(type="add_to_cart", customer_id="cust-15", properties={"sku": "s" * 5000, "price": 1}): "too long:",
    }
    # One customer who sends a thousand cart lines: the first hundred count, the rest do not.
    for i in range(120):
        line = json.dumps({"event_id": f"bot-cart-{i}", "type": "add_to_cart", "customer_id": "bot-1",
                           "ts": f"2026-01-05T12:{i // 60:02d}:{i % 60:02d}Z",
                           "properties": {"sku": f"sku-{i:04d}", "price": 1}}).encode()
        messages[line] = "cart lines:" if i >= 100 else ""
    return messages


def test_a_hostile_mix_leaves_the_worker_up_and_the_good_customers_exact(kafka_bootstrap: str,
                                                                         tmp_path: Path) -> None:
    good = history(seed=31, noise=False)
    hostile = hostile_messages()
    rng = random.Random(31)
    lines = list(good)
    bot = [raw for raw in hostile if b'"bot-1"' in raw]
    for raw in hostile:
        if raw not in bot:
            lines.insert(rng.randrange(len(lines) + 1), raw)
    # The bot's carts come last: late (within the allowed lateness), they move no clock, so the
    # good customers' deadlines fire as they would without them.
    lines += bot
    deployment = Deployment(kafka_bootstrap, tmp_path)
    create_topics(deployment)
    feed(deployment, lines)
    worker = WorkerProcess(deployment)
    with running(worker):
        wait_for(lambda: worker.applied() >= len(lines), timeout=120, interval=0.2, what="the worker to catch up")
        caught_up = int(time.time()) * SECOND
        live = changes_of(deployment, quiet=3)
        dead = dead_letters(deployment)
        assert worker.proc is not None and worker.proc.poll() is None, "the worker stayed up"
    expected, _ = replay(lines, until=caught_up)
    same(live, expected, caught_up)
    # No false entry anywhere: the good customers' changes are those of the history without the
    # hostile messages.
    clean, _ = replay(good, until=caught_up)
    goods = {str(c["customer_id"]) for c in clean}
    same([c for c in live if c["customer_id"] in goods], clean, caught_up)
    for raw, reason in hostile.items():
        if reason:
            assert raw in dead, f"not dead-lettered: {raw[:80]!r}"
            assert dead[raw].startswith(reason), (dead[raw], reason)
        else:
            assert raw not in dead
    assert sum(1 for r in dead.values() if r.startswith("cart lines:")) == 20


# --- identity hand-offs ----------------------------------------------------------------------


def owned(worker: WorkerProcess) -> set[int]:
    body = worker.get("/segments/")
    return set() if body is None else set(json.loads(body)["partitions"])


def id_on(partitions: set[int], prefix: str, count: int) -> str:
    return next(f"{prefix}-{i}" for i in range(10_000) if partition_of(f"{prefix}-{i}", count) in partitions)


def test_a_lost_and_an_unreadable_identity_hand_off_hold_nothing_and_stop_nothing(kafka_bootstrap: str,
                                                                                   tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra={"SEGMENTER_HANDOFF_WAIT": "3"})
    create_topics(deployment)
    identity_topic = f"{deployment.prefix}-identity"
    first, second = WorkerProcess(deployment, "w1"), WorkerProcess(deployment, "w2")
    with running(first, second):
        wait_for(lambda: owned(first) and owned(second), timeout=60, what="both workers to own partitions")
        customer = id_on(owned(first), "cust", deployment.partitions)
        visitor = id_on(owned(second), "visitor", deployment.partitions)
        now = time.time()

        def at(seconds: float) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + seconds)) + "Z"

        # Unreadable: bytes on the identity topic that are no hand-off, on the customer's partition.
        garbage = b"\x93not a hand-off"
        send(kafka_bootstrap, identity_topic, [(customer.encode(), garbage)],
             partition=partition_of(customer, deployment.partitions))
        wait_for(lambda: garbage in dead_letters(deployment), timeout=30, interval=0.2,
                 what="the unreadable hand-off in the dead-letter topic")
        assert dead_letters(deployment)[garbage] == "unreadable identity hand-off"
        # Lost: the visitor's worker hangs, so the identify's Link is not answered.
        feed(deployment, [json.dumps({"event_id": "v-view", "type": "page_view", "anonymous_id": visitor,
                                      "ts": at(-60), "properties": {"page_type": "pricing"}}).encode()])
        wait_for(lambda: second.applied() >= 1, timeout=30, interval=0.2, what="the visitor's view")
        assert second.proc is not None
        os.kill(second.proc.pid, signal.SIGSTOP)
        try:
            feed(deployment, [
                json.dumps({"event_id": "c-identify", "type": "identify", "anonymous_id": visitor,
                            "customer_id": customer, "ts": at(-30)}).encode(),
                json.dumps({"event_id": "c-order", "type": "order_completed", "customer_id": customer,
                            "ts": at(-20), "properties": {"total": 20}}).encode(),
            ])
            sent = time.monotonic()
            entered = wait_for(
                lambda: [c for c in (json.loads(r.value) for r in read_all(kafka_bootstrap, deployment.changes))
                         if c["customer_id"] == customer and c["segment"] == "first_time_buyer"],
                timeout=30, interval=0.2, what="the customer's order to count without the merge")
            waited = time.monotonic() - sent
            assert first.metric("segmenter_handoffs_given_up_total") == 1
        finally:
            os.kill(second.proc.pid, signal.SIGCONT)
        assert entered[0]["change"] == "entered"
        assert waited < 3 + 3, f"held {waited:.1f}s for a merge that never came (handoff_wait 3 s)"
        assert first.proc is not None and first.proc.poll() is None
        assert second.proc.poll() is None


# --- the broker goes away --------------------------------------------------------------------


def half_fed(bootstrap: str, tmp_path: Path, seed: int) -> tuple[Deployment, list[bytes], list[dict[str, object]]]:
    """A deployment with the first half of a history on its input topics; the history, and what
    replay makes of all of it."""
    deployment = Deployment(bootstrap, tmp_path, extra=FED_IN_PARTS)
    lines = history(seed=seed, noise=False)
    create_topics(deployment)
    feed(deployment, lines[:len(lines) // 2])
    return deployment, lines, replay(lines)[0]


def caught_up(deployment: Deployment, expected: list[dict[str, object]]) -> bool:
    """Nearly all of replay's changes are out (the rest are checked after the topic settles)."""
    wanted = {str(c["change_id"]) for c in expected}
    return len(wanted & {str(c["change_id"]) for c in changes_of(deployment, quiet=2)}) >= 0.95 * len(wanted)


def test_the_broker_stopped_and_started_mid_stream_loses_nothing(kafka_bootstrap: str, kafka_control: object,
                                                                 tmp_path: Path) -> None:
    control: Any = kafka_control
    deployment, lines, expected = half_fed(kafka_bootstrap, tmp_path, seed=41)
    half = len(lines) // 2
    worker = WorkerProcess(deployment)
    restarts = 0
    with running(worker):
        wait_for(lambda: worker.applied() >= half, timeout=120, interval=0.2, what="the first half")
        control.stop()
        time.sleep(5)  # an outage: the worker's fetches, sends and commits fail meanwhile
        control.start()
        feed(deployment, lines[half:])

        def up_and_caught_up() -> bool:
            nonlocal restarts
            assert worker.proc is not None
            if worker.proc.poll() is not None:  # it may exit once on the outage; a supervisor restarts it
                assert restarts == 0, f"the worker exited again after its restart:\n{worker.log()}"
                restarts += 1
                worker.start()
            return caught_up(deployment, expected)

        wait_for(up_and_caught_up, timeout=240, interval=2, what="the worker to catch up after the outage")
        live = changes_of(deployment)
    print(f"broker outage: {restarts} restart(s); {len(live)} changes, "
          f"{sum(n - 1 for n in Counter(str(c['change_id']) for c in live).values())} sent twice (same id)")
    compare(list({str(c["change_id"]): c for c in live}.values()), expected, lines)


def test_sigterm_while_the_broker_is_down_stops_the_worker_and_a_restart_carries_on(
        kafka_bootstrap: str, kafka_control: object, tmp_path: Path) -> None:
    control: Any = kafka_control
    deployment, lines, expected = half_fed(kafka_bootstrap, tmp_path, seed=43)
    half = len(lines) // 2
    worker = WorkerProcess(deployment)
    with running(worker):
        wait_for(lambda: worker.applied() >= half, timeout=120, interval=0.2, what="the first half")
        control.stop()
        try:
            assert worker.proc is not None
            started = time.monotonic()
            os.killpg(worker.proc.pid, signal.SIGTERM)
            worker.proc.wait(timeout=120)
            took = time.monotonic() - started
        finally:
            control.start()
    print(f"SIGTERM with the broker down: the worker stopped in {took:.1f}s")
    assert took < 30, "within a container's usual grace period, so no SIGKILL is needed"
    feed(deployment, lines[half:])
    with running(WorkerProcess(deployment)):
        wait_for(lambda: caught_up(deployment, expected), timeout=240, interval=2,
                 what="the restarted worker to catch up")
        live = changes_of(deployment)
    compare(list({str(c["change_id"]): c for c in live}.values()), expected, lines)


# --- HTTP ------------------------------------------------------------------------------------


def test_customer_data_needs_the_token_and_is_forwarded_between_workers_on_loopback(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    create_topics(deployment)
    first, second = WorkerProcess(deployment, "w1"), WorkerProcess(deployment, "w2")
    with running(first, second):
        wait_for(lambda: owned(first) and owned(second), timeout=60, what="both workers to own partitions")
        customer = "cust-http"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # live: the partitions' clocks are the wall clock
        feed(deployment, [json.dumps({"event_id": "o-1", "type": "order_completed", "customer_id": customer,
                                      "ts": now, "properties": {"total": 5}}).encode()])
        wait_for(lambda: first.applied() + second.applied() >= 1, timeout=30, interval=0.2, what="the order")
        path = f"/customers/{customer}/"
        partition = partition_of(customer, deployment.partitions)

        def ask_the_other() -> tuple[int, bytes] | None:
            """Asked of the worker that does not hold the customer (the group may still be
            settling: a rebalance in between answers 404 or 503, as a client would see)."""
            holders = [w for w in (first, second) if partition in owned(w)]
            if len(holders) != 1:
                return None
            other = second if holders[0] is first else first
            answer = other.request(path)
            return answer if answer[0] == 200 else None

        forwarded = wait_for(ask_the_other, timeout=30, interval=0.5, what="a forwarded answer")
        without = first.request(path, token=None)
        wrong = second.request(path, token="not-the-token")
        open_paths = {p: first.request(p, token=None)[0] for p in ("/health/", "/metrics/", "/segments/")}
        router = first.request("/router/", token=None)[0]
    assert json.loads(forwarded[1])["segments"] == ["first_time_buyer"]
    assert without[0] == 401 and wrong[0] == 401
    assert open_paths == {"/health/": 200, "/metrics/": 200, "/segments/": 200}
    assert router == 404

    async def retention() -> dict[str, str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            found = {}
            for topic in (f"{deployment.prefix}-identity", deployment.dead_letter):
                [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
                for _code, _message, _type, _name, entries in response.resources:
                    found[topic] = next(value for name, value, *_ in entries if name == "retention.ms")
            return found
        finally:
            await admin.close()

    week = str(7 * 24 * 3600 * 1000)
    assert asyncio.run(retention()) == {f"{deployment.prefix}-identity": week, deployment.dead_letter: week}
