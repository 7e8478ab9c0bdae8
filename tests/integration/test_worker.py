"""The streaming worker on the real broker: the same changes as replay, on time, through bad input,
``kill -9`` and a second worker leaving.

Where a history is fed in two parts, the worker runs with a long ``idle_after``: a backfill fed
in pauses would otherwise meet a clock that caught up with the wall clock in between (see
docs/worker.md, Time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaProducer
from histories import (
    FED_IN_PARTS,
    changes_of,
    compare,
    create_topics,
    feed,
    history,
    quick_rules,
    replay,
)
from worker_harness import Deployment, WorkerProcess, read_all, running, wait_for

from streams.model.clock import SECOND, format_instant
from streams.tools.produce import produce


def test_the_worker_gives_exactly_what_replay_gives(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    lines = history()
    expected, bad = replay(lines)
    create_topics(deployment)
    feed(deployment, lines)
    with running(WorkerProcess(deployment)):
        live = changes_of(deployment)
        dead = read_all(kafka_bootstrap, deployment.dead_letter)
    ids = Counter(str(c["change_id"]) for c in live)
    assert max(ids.values()) == 1, "no change is emitted twice in a clean run"
    compare(live, expected, lines)
    assert len(dead) == bad
    segments = {c["segment"] for c in live}
    assert {"cart_abandoner", "new_visitor", "first_time_buyer"} <= segments


def test_an_abandoned_cart_enters_on_time_with_no_further_event(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, rules=quick_rules(tmp_path, 2))
    with running(WorkerProcess(deployment)):
        now = time.time()
        ts = format_instant(int(now) * SECOND)
        event = {"event_id": "cart-1", "type": "add_to_cart", "customer_id": "live-1", "ts": ts,
                 "properties": {"sku": "A", "price": 5}}

        async def send() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(deployment.topics[0], json.dumps(event).encode(), key=b"live-1")
            finally:
                await producer.stop()

        asyncio.run(send())
        sent = int(now)

        def entered() -> list[dict[str, object]]:
            return [c for c in (json.loads(r.value) for r in read_all(kafka_bootstrap, deployment.changes))
                    if c["segment"] == "quick_abandoner"]

        [change] = wait_for(entered, timeout=30, interval=0.1, what="the abandoner to enter")
        seen = time.time()
    assert change["change"] == "entered"
    assert change["at"] == format_instant((sent + 2) * SECOND)
    assert seen - (sent + 2) < 1.0 + 0.5, f"entered {seen - sent:.2f}s after the cart activity"  # +read loop


def test_bad_messages_are_dead_lettered_and_good_ones_around_them_processed(kafka_bootstrap: str,
                                                                          tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, partitions=1,
                            extra={"SEGMENTER_MAX_EVENT_BYTES": "2048"})
    ts = "2026-02-01T10:00:00Z"
    good_1 = json.dumps({"event_id": "g1", "type": "page_view", "customer_id": "c1", "ts": ts}).encode()
    garbage = b"\x00\xffnot json"
    wrong_type = json.dumps({"event_id": "b2", "type": "order_completed", "customer_id": "c2", "ts": ts,
                             "properties": {"total": "lots"}}).encode()
    no_customer = json.dumps({"event_id": "b3", "type": "order_completed", "anonymous_id": "v3", "ts": ts,
                              "properties": {"total": 5}}).encode()
    oversize = json.dumps({"event_id": "b4", "type": "page_view", "customer_id": "c4", "ts": ts,
                           "properties": {"url": "x" * 4000}}).encode()
    good_2 = json.dumps({"event_id": "g2", "type": "order_completed", "customer_id": "c5", "ts": ts,
                         "properties": {"total": 20}}).encode()
    create_topics(deployment)
    feed(deployment, [good_1, garbage, wrong_type, no_customer, oversize, good_2])
    with running(WorkerProcess(deployment)):
        dead = wait_for(lambda: len(read_all(kafka_bootstrap, deployment.dead_letter)) >= 4 and
                        read_all(kafka_bootstrap, deployment.dead_letter), timeout=60, what="dead letters")
        live = wait_for(lambda: len(changes_of(deployment, quiet=3)) >= 2 and changes_of(deployment, quiet=1),
                        timeout=60, what="changes")
    by_value = {record.value: dict(record.headers) for record in dead}
    assert set(by_value) == {garbage, wrong_type, no_customer, oversize}
    assert by_value[garbage]["segmenter-reason"].startswith(b"not valid JSON")
    assert b"Expected `float`, got `str` - at `$.properties.total`" in by_value[wrong_type]["segmenter-reason"]
    assert b"`customer_id` is required" in by_value[no_customer]["segmenter-reason"]
    assert b"over the maximum of 2048" in by_value[oversize]["segmenter-reason"]
    assert by_value[wrong_type]["segmenter-source-topic"] == deployment.topics[1].encode()
    assert by_value[wrong_type]["segmenter-source-partition"] == b"0"
    assert by_value[wrong_type]["segmenter-source-offset"] == b"0"
    assert {(c["customer_id"], c["segment"]) for c in live} >= {("c1", "new_visitor"), ("c5", "first_time_buyer")}


def test_kill_9_mid_stream_then_restart_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra=FED_IN_PARTS)
    lines = history(seed=12, noise=False)
    expected, _ = replay(lines)
    create_topics(deployment)
    half = len(lines) // 2
    worker = WorkerProcess(deployment)
    with running(worker):
        feed(deployment, lines[:half])
        wait_for(lambda: len(read_all(kafka_bootstrap, deployment.changes)) > 50, timeout=90,
                 interval=0.2, what="changes before the kill")
        worker.kill()
    feed(deployment, lines[half:])
    with running(WorkerProcess(deployment)):
        # The dead worker holds its partitions until its session times out; then they move.
        wanted = {str(c["change_id"]) for c in expected}
        def caught_up() -> bool:
            got = len(wanted & {str(c["change_id"]) for c in changes_of(deployment, quiet=2)})
            print(f"caught up {got}/{len(wanted)}", flush=True)
            return got >= 0.95 * len(wanted)

        wait_for(caught_up, timeout=240, interval=2, what="the restarted worker to catch up")
        live = changes_of(deployment)
    ids = Counter(str(c["change_id"]) for c in live)
    duplicates = sum(n - 1 for n in ids.values())
    print(f"kill -9: {len(live)} changes read, {duplicates} duplicates (at-least-once; same change_id)")
    unique = {str(c["change_id"]): c for c in live}
    compare(list(unique.values()), expected, lines)


@contextlib.contextmanager
def sharing(deployment: Deployment) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    """Two workers of one app, each owning some of the partitions, stopped on the way out.

    With a standby replica, as deployed by default: each worker also follows the other's
    changelogs, and takes over from its warm copy."""
    create_topics(deployment)
    first, second = WorkerProcess(deployment, "w1"), WorkerProcess(deployment, "w2")
    with running(first, second):
        wait_for(lambda: _owned(first) and _owned(second), timeout=60, what="both workers to own partitions")
        assert set(_owned(first)).isdisjoint(_owned(second))
        assert set(_owned(first)) | set(_owned(second)) == set(range(deployment.partitions))
        yield first, second


def test_a_second_worker_shares_the_partitions_and_takes_them_over(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra={"SEGMENTER_STANDBY_REPLICAS": "1", **FED_IN_PARTS})
    lines = history(seed=13, noise=False)
    expected, _ = replay(lines)
    half = len(lines) // 2
    with sharing(deployment) as (first, second):
        feed(deployment, lines[:half])
        changes_of(deployment, quiet=5)
        second.stop()
        wait_for(lambda: len(_owned(first)) == deployment.partitions, timeout=90, what="the takeover")
        feed(deployment, lines[half:])
        live = changes_of(deployment)
    unique = {str(c["change_id"]): c for c in live}
    assert len(unique) == len(live), "a clean stop and a rebalance commit first: nothing is sent twice"
    compare(list(unique.values()), expected, lines)


def test_a_worker_leaving_while_events_flow_hands_over_without_loss_or_repeat(kafka_bootstrap: str,
                                                                             tmp_path: Path) -> None:
    # The takeover above happens between two feeds; in production a worker leaves (a deploy, a
    # scale-down) while events keep coming, and its partitions move in the middle of them.
    deployment = Deployment(kafka_bootstrap, tmp_path, extra={"SEGMENTER_STANDBY_REPLICAS": "1", **FED_IN_PARTS})
    lines = history(seed=17, noise=False)
    expected, _ = replay(lines)
    third = len(lines) // 3
    rest = lines[third:]
    failed: list[BaseException] = []

    def feed_rest() -> None:
        try:
            asyncio.run(produce(rest, bootstrap_servers=deployment.bootstrap, topics=deployment.topics,
                                ordered=True, rate=len(rest) / 6.0))
        except BaseException as exc:  # reported below, in the test's own thread
            failed.append(exc)

    with sharing(deployment) as (first, second):
        feed(deployment, lines[:third])
        feeding = threading.Thread(target=feed_rest)
        feeding.start()
        time.sleep(1.5)
        assert feeding.is_alive(), "the worker must leave while events still arrive"
        second.stop()
        feeding.join(timeout=120)
        assert not failed, failed
        # The takeover may still be settling (the web answers nothing during a rebalance).
        wait_for(lambda: len(_owned(first)) == deployment.partitions, timeout=60, what="the takeover")
        live = changes_of(deployment)
    ids = Counter(str(c["change_id"]) for c in live)
    assert max(ids.values()) == 1, "a clean stop commits before its partitions move: nothing is sent twice"
    compare(live, expected, lines)


def _owned(worker: WorkerProcess) -> list[int]:
    body = worker.get("/segments/")
    return [] if body is None else list(json.loads(body)["partitions"])


def test_a_visitor_on_another_partition_is_merged_at_identify(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    visitor, customer = "v-1", "cust-a"  # partitions 1 and 3 of 4 by Kafka's default partitioner
    from streams.live.views import partition_of

    assert partition_of(visitor, 4) != partition_of(customer, 4)

    def at(minute: int) -> str:
        return f"2026-03-01T10:{minute:02d}:00Z"

    events = [
        {"event_id": "a1", "type": "page_view", "anonymous_id": visitor, "ts": at(0),
         "properties": {"page_type": "pricing"}},
        {"event_id": "a2", "type": "add_to_cart", "anonymous_id": visitor, "ts": at(1),
         "properties": {"sku": "S", "price": 10}},
        {"event_id": "a3", "type": "identify", "anonymous_id": visitor, "customer_id": customer, "ts": at(2)},
        {"event_id": "a5", "type": "page_view", "customer_id": customer, "ts": at(4),
         "properties": {"page_type": "pricing"}},
        {"event_id": "a6", "type": "page_view", "customer_id": customer, "ts": at(5),
         "properties": {"page_type": "pricing"}},
        {"event_id": "a7", "type": "page_view", "customer_id": customer, "ts": "2026-03-01T11:00:00Z"},
    ]
    lines = [json.dumps(e).encode() for e in events]
    create_topics(deployment)
    feed(deployment, lines)
    worker = WorkerProcess(deployment)
    with running(worker):
        live = changes_of(deployment, quiet=5)
        # Read to the end, the partitions' clocks moved up to the wall clock: months after.
        expected, _ = replay(lines, until=int(time.time()) * SECOND)
        profile = json.loads(worker.get(f"/customers/{customer}/") or b"{}")
        unknown = worker.request("/customers/nobody/")[0]
        metrics = (worker.get("/metrics/") or b"").decode()
    assert set(profile["segments"]) == {"cart_abandoner"}  # months later: no longer new, nor a lead
    assert profile["state"]["cart"] == {"S": [1, 10.0]}
    assert unknown == 404
    assert 'segmenter_changes_total{change="entered",segment="cart_abandoner"}' in metrics
    mine = [(c["segment"], c["change"], c["at"]) for c in live if c["customer_id"] == customer]
    assert mine == [(c["segment"], c["change"], c["at"]) for c in expected if c["customer_id"] == customer]
    assert ("cart_abandoner", "entered", at(31)) in mine  # the visitor's cart came along
    assert ("new_visitor", "entered", at(2)) in mine  # at the identify, with the visitor's history
    assert ("high_intent_lead", "entered", at(5)) in mine  # one pricing view as a visitor, two after


def test_an_erased_customer_stays_erased_on_a_worker_that_restores_from_the_changelogs(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """docs/contract.md, Identity, consent, erasure: erasure forgets the customer everywhere. An event from before the erasure that
    arrives after it (a late one, within the allowed lateness) must not bring them back, also on
    a worker that did not see the erasure and has only the changelogs."""
    deployment = Deployment(kafka_bootstrap, tmp_path)
    customer = "cust-gone"

    def event(event_id: str, kind: str, minute: int, **properties: object) -> bytes:
        return json.dumps({"event_id": event_id, "type": kind, "customer_id": customer,
                           "ts": f"2026-03-01T10:{minute:02d}:00Z", "properties": properties}).encode()

    create_topics(deployment)
    feed(deployment, [event("e1", "page_view", 0, page_type="pricing"),
                      event("e2", "add_to_cart", 1, sku="S", price=10),
                      event("e3", "customer_erased", 5)])
    with running(WorkerProcess(deployment, "w1")):
        before = [c for c in changes_of(deployment, quiet=5) if c["customer_id"] == customer]
    assert ("new_visitor", "exited") in {(c["segment"], c["change"]) for c in before}  # erased

    feed(deployment, [event("e4", "add_to_cart", 2, sku="T", price=20)])  # late, before the erasure
    worker = WorkerProcess(deployment, "w2")  # its own, empty data directory
    with running(worker):
        after = [c for c in changes_of(deployment, quiet=5) if c["customer_id"] == customer]
        profile = worker.request(f"/customers/{customer}/")[0]
        metrics = (worker.get("/metrics/") or b"").decode()
    assert after == before, "the late event brought the erased customer back"
    assert profile == 404
    assert "segmenter_events_in_total" in metrics
