"""The rule language's newer parts on the real broker: RFM scores (their windows over the horizon,
recency falling at exact instants) and segments read by others (``in_segment``) give live
exactly what replay gives."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from histories import ROOT, changes_of, compare, create_topics, feed, history, replay
from worker_harness import Deployment, WorkerProcess, running

RFM_FOR_TWO_MONTHS = '''[rfm]
horizon = "30d"
recency = ["3d", "7d", "14d", "30d"]
frequency = [1, 2, 3, 4]
monetary = [50, 150, 300, 600]'''
"""Cut points a two-month history reaches every score of (the default pack's are for a year)."""


def rfm_pack(tmp_path: Path) -> Path:
    folder = tmp_path / "rules-rfm"
    shutil.copytree(ROOT / "rules", folder, ignore=shutil.ignore_patterns("tests", "templates"))
    pack = folder / "pack.toml"
    text = pack.read_text()
    start = text.index("[rfm]")
    pack.write_text(text[:start] + RFM_FOR_TWO_MONTHS + text[text.index("\n\n", start):])
    return folder


def test_rfm_and_segments_of_segments_are_what_replay_gives(kafka_bootstrap: str, tmp_path: Path) -> None:
    rules = rfm_pack(tmp_path)
    lines = history(customers=150, days=60, seed=5, noise=False,
                    personas=["loyal", "lapsing", "bargain_hunter", "high_ticket"])
    expected, _ = replay(lines, rules=rules)
    deployment = Deployment(kafka_bootstrap, tmp_path, rules=rules)
    create_topics(deployment)
    feed(deployment, lines)
    with running(WorkerProcess(deployment)):
        live = changes_of(deployment)
    compare(live, expected, lines)
    seen = Counter(str(c["segment"]) for c in live)
    # Every RFM segment and the segment written on cart_abandoner changed live, many times over.
    for segment in ("champions", "loyal_customers", "at_risk", "hibernating", "sms_cart_recovery"):
        assert seen[segment] >= 10, seen
