"""What reading the input costs the worker: a bare consumer in aiokafka against one in librdkafka.

    .venv/bin/pip install confluent-kafka     # librdkafka's Python client; not a dependency of segmenter
    .venv/bin/python bench/consumer_bench.py --bootstrap 127.0.0.1:9092
    .venv/bin/python bench/consumer_bench.py --rate 2000 --rounds 3

The worker's loop is 85-90 % busy at half the rate it sustains (bench/README.md): aiokafka
encodes every fetch request and decodes every response in Python, for every partition, so a
fetch costs about a millisecond whatever it holds. This measures that cost alone, to size the
gain of a reader on librdkafka (whose fetches run in C threads of its own) before anyone
builds one. A process of its own produces fixed 330-byte records to three fresh topics of
``--partitions`` partitions (80/10/10 %, like clickstream, transactions and profiles) at
``--rate``; then, for ``--seconds`` each, ``--rounds`` times in turn, a consumer in a process of
its own reads all their partitions from the end and does nothing with the records (timed from
the first ones it gets):

- aiokafka: ``getmany`` in a loop, the settings of ``streams.live.source`` (20 ms fetch wait);
- librdkafka: ``consume(num_messages=2000, timeout=--wait)`` in a loop, the same fetch wait.

Each prints records per second, its process's CPU (librdkafka's threads included), calls per
second, and delivery latency p50 and p99 (record timestamp, set by the producer, to the
moment the call returned it). The topics are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sys
import time
import uuid
from typing import Any


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def report(name: str, calls: int, delays: list[float], cpu: float, seconds: float) -> None:
    delays.sort()

    def at(fraction: float) -> float:
        return delays[min(len(delays) - 1, int(fraction * len(delays)))] if delays else float("nan")

    print(f"{name:<11} {len(delays) / seconds:>9,.0f} records/s  CPU {100 * cpu / seconds:>3.0f} %  "
          f"{calls / seconds:>6,.0f} calls/s  delivery p50 {at(0.5):5.1f} ms  p99 {at(0.99):6.1f} ms", flush=True)


def produce(bootstrap: str, topics: list[str], rate: float, stop: Any) -> None:
    """At ``rate``, in ticks of a millisecond; keys spread over 50,000 customers."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1})
    value = b"x" * 330
    started, sent = time.monotonic(), 0
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate)
        while sent < due:
            share = sent % 10
            topic = topics[0] if share < 8 else topics[1] if share == 8 else topics[2]
            producer.produce(topic, value, key=str(sent % 50_000).encode())
            sent += 1
        producer.poll(0)
        time.sleep(0.001)
    producer.flush(10)


def read_aiokafka(bootstrap: str, topics: list[str], partitions: int, seconds: float) -> None:
    asyncio.run(_read_aiokafka(bootstrap, topics, partitions, seconds))


async def _read_aiokafka(bootstrap: str, topics: list[str], partitions: int, seconds: float) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=20, max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        while not await consumer.getmany(timeout_ms=1000):
            pass  # timed from the first records on, as the other consumer is
        delays: list[float] = []
        calls, started, cpu = 0, time.monotonic(), cpu_seconds()
        while time.monotonic() - started < seconds:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            now, calls = time.time() * 1000, calls + 1
            for records in batches.values():
                delays.extend(now - record.timestamp for record in records)
        report("aiokafka", calls, delays, cpu_seconds() - cpu, time.monotonic() - started)
    finally:
        await consumer.stop()


def read_librdkafka(bootstrap: str, topics: list[str], partitions: int, seconds: float, wait: float) -> None:
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"consumer-bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 20})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_END) for topic in topics for p in range(partitions)])
        while not consumer.consume(num_messages=2000, timeout=1.0):
            pass  # the end offsets are looked up first: timed from the first records on
        delays: list[float] = []
        calls, started, cpu = 0, time.monotonic(), cpu_seconds()
        while time.monotonic() - started < seconds:
            messages = consumer.consume(num_messages=2000, timeout=wait)
            now, calls = time.time() * 1000, calls + 1
            delays.extend(now - m.timestamp()[1] for m in messages if m.error() is None)
        report("librdkafka", calls, delays, cpu_seconds() - cpu, time.monotonic() - started)
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--rate", type=float, default=14_000.0, help="records per second (default 14000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="each consumer's turn (default 15)")
    parser.add_argument("--rounds", type=int, default=2, help="turns of each consumer (default 2)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of each of the 3 topics (default 4)")
    parser.add_argument("--wait", type=float, default=0.002,
                        help="librdkafka's consume() timeout in seconds (default 0.002)")
    args = parser.parse_args()
    try:
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError:
        print("consumer_bench: needs confluent-kafka (.venv/bin/pip install confluent-kafka)", file=sys.stderr)
        return 2

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topics = [f"cb-{uuid.uuid4().hex[:8]}-{name}" for name in ("clickstream", "transactions", "profiles")]
    for future in admin.create_topics([NewTopic(t, args.partitions, 1) for t in topics]).values():
        future.result(30)
    print(f"{len(topics)} topics of {args.partitions} partitions, {args.rate:,.0f} records/s of 330 bytes; "
          f"{args.rounds} x {args.seconds:g} s per consumer", flush=True)
    mp = multiprocessing.get_context("spawn")
    stop = mp.Event()
    producer = mp.Process(target=produce, args=(args.bootstrap, topics, args.rate, stop), daemon=True)
    producer.start()
    try:
        time.sleep(3)  # the producer's connection and the partitions' leaders settle
        for _ in range(args.rounds):
            for target, extra in ((read_aiokafka, ()), (read_librdkafka, (args.wait,))):
                consumer = mp.Process(target=target, args=(args.bootstrap, topics, args.partitions, args.seconds, *extra))
                consumer.start()
                consumer.join()
    finally:
        stop.set()
        producer.join(15)
        for future in admin.delete_topics(topics).values():
            future.result(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
