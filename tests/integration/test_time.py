"""Time on the real broker: after a backfill, after a restart, and when the wall clock is stepped.

An idle partition read to its end moves its clock up to the wall clock (docs/contract.md, Time),
so the deadlines after each partition's last event fire without further input; waits are timed
on the monotonic clock, so a step of the system clock fires nothing early and loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from histories import (
    changes_of,
    create_topics,
    feed,
    history,
    last_event_time,
    quick_rules,
    recent_history,
    replay,
    same,
)
from worker_harness import Deployment, WorkerProcess, read_all, running, wait_for

from streams.model.clock import SECOND, format_instant, parse_instant


def test_a_backfill_gives_what_replay_gives_until_the_moment_the_worker_caught_up(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    # Ten days that ended three days ago: some deadlines after each partition's last event are
    # due by the time the worker catches up (carts abandoned, visitors no longer new), others
    # not yet (customers lapsing after 90 days).
    lines = recent_history(seed=21)
    deployment = Deployment(kafka_bootstrap, tmp_path)
    create_topics(deployment)
    feed(deployment, lines)
    worker = WorkerProcess(deployment)
    with running(worker):
        wait_for(lambda: worker.applied() >= len(lines), timeout=120, interval=0.2, what="the worker to catch up")
        caught_up = int(time.time()) * SECOND
        time.sleep(1.0 + 0.25 + 1.0)  # idle_after, a tick, and the send: nothing arrives later than this
        live = changes_of(deployment, quiet=3)
        read_at = int(time.time()) * SECOND
    expected, _ = replay(lines, until=caught_up)
    last_event = last_event_time(lines)
    due_after_last = [c for c in expected if last_event < parse_instant(str(c["at"])) <= caught_up]
    assert len(due_after_last) > 10, "the history has deadlines between its end and now"
    same(live, expected, caught_up)
    assert all(parse_instant(str(c["at"])) <= read_at for c in live), "nothing fires before its time"


def test_a_history_produced_to_a_new_deployment_the_worker_already_waits_on_is_a_backfill(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    # Partitions with no input yet have nothing to fire: their clocks start with their first
    # event, so a history from months ago is not dead-lettered as late.
    lines = history(seed=23)
    deployment = Deployment(kafka_bootstrap, tmp_path)
    create_topics(deployment)
    worker = WorkerProcess(deployment)
    with running(worker):
        time.sleep(1.0 + 0.25 + 0.5)  # idle for longer than idle_after
        feed(deployment, lines)
        wait_for(lambda: worker.applied() >= len(lines), timeout=120, interval=0.2, what="the worker to catch up")
        caught_up = int(time.time()) * SECOND
        live = changes_of(deployment, quiet=3)
        dead = read_all(kafka_bootstrap, deployment.dead_letter)
    expected, bad = replay(lines, until=caught_up)
    assert len(dead) == bad
    same(live, expected, caught_up)



def cart(customer: str, at: int) -> bytes:
    return json.dumps({"event_id": f"cart-{customer}-{at}", "type": "add_to_cart", "customer_id": customer,
                       "ts": format_instant(at * SECOND), "properties": {"sku": "A", "price": 5}}).encode()


def entered(deployment: Deployment, customer: str) -> list[dict[str, object]]:
    return [c for c in (json.loads(r.value) for r in read_all(deployment.bootstrap, deployment.changes))
            if c["segment"] == "quick_abandoner" and c["customer_id"] == customer]


def test_a_restarted_worker_fires_a_due_deadline_with_no_new_input(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, partitions=2, rules=quick_rules(tmp_path, 5))
    create_topics(deployment)
    worker = WorkerProcess(deployment)
    with running(worker):
        sent = int(time.time())
        feed(deployment, [cart("quiet-1", sent)])
        wait_for(lambda: worker.applied() >= 1, timeout=30, interval=0.1, what="the cart to be applied")
    assert entered(deployment, "quiet-1") == [], "stopped before the deadline"
    time.sleep(max(0.0, sent + 6 - time.time()))  # the deadline passes while no worker runs
    restarted = WorkerProcess(deployment)
    with running(restarted):
        healthy = time.monotonic()
        [change] = wait_for(lambda: entered(deployment, "quiet-1"), timeout=30, interval=0.1,
                            what="the due deadline to fire")
        took = time.monotonic() - healthy
    assert change["at"] == format_instant((sent + 5) * SECOND)
    assert took < 1.0 + 0.25 + 1.0, f"fired {took:.2f}s after the worker was up (idle_after 1 s, tick 0.25 s)"


def test_a_stepped_wall_clock_fires_nothing_early_and_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, partitions=1, rules=quick_rules(tmp_path, 6))
    create_topics(deployment)
    step = tmp_path / "step"
    worker = WorkerProcess(deployment, clock_step=step)
    with running(worker):
        sent = int(time.time())
        feed(deployment, [cart("stepped-1", sent)])
        wait_for(lambda: worker.applied() >= 1, timeout=30, interval=0.1, what="the cart to be applied")
        step.write_text("3600")  # the system clock jumps an hour ahead
        time.sleep(max(0.0, sent + 4 - time.time()))  # idle for longer than idle_after, before the deadline
        assert entered(deployment, "stepped-1") == [], "a clock stepped forward fired a deadline early"
        step.write_text("-3600")  # and an hour back, before the deadline
        [change] = wait_for(lambda: entered(deployment, "stepped-1"), timeout=30, interval=0.1,
                            what="the deadline to fire")
        late = time.time() - (sent + 6)
        metrics = (worker.get("/metrics/") or b"").decode()
    assert change["at"] == format_instant((sent + 6) * SECOND)
    assert late < 1.0 + 0.25 + 1.0, f"fired {late:.2f}s after its deadline"
    gauge = re.search(r"^segmenter_clock_step_seconds (\S+)$", metrics, re.M)
    assert gauge and abs(float(gauge.group(1)) + 3600) < 5, "the step is visible in the metrics"


def test_a_partition_written_in_transactions_counts_as_read_to_its_end(kafka_bootstrap: str,
                                                                        tmp_path: Path) -> None:
    # A transactional producer (Kafka Connect, Flink, Debezium with exactly-once) ends each
    # transaction with a marker that takes an offset but is no record: the partition's end is
    # one past the last record the worker can read.
    deployment = Deployment(kafka_bootstrap, tmp_path, partitions=1, rules=quick_rules(tmp_path, 2))
    create_topics(deployment)
    worker = WorkerProcess(deployment)
    with running(worker):
        sent = int(time.time())

        async def send() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"{deployment.prefix}-tx")
            await producer.start()
            try:
                async with producer.transaction():
                    await producer.send(deployment.topics[0], cart("tx-1", sent), key=b"tx-1")
            finally:
                await producer.stop()

        asyncio.run(send())
        [change] = wait_for(lambda: entered(deployment, "tx-1"), timeout=30, interval=0.1,
                            what="the deadline on a partition that ends with a transaction marker")
        late = time.time() - (sent + 2)
    assert change["at"] == format_instant((sent + 2) * SECOND)
    assert late < 1.0 + 0.25 + 1.0, f"fired {late:.2f}s after its deadline"
