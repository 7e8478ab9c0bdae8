"""Rule deployments on the real broker: a pack put live on running workers, without a restart,
at one instant, with the output replay gives for the same history and deployments."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from histories import ROOT, changes_of, create_topics, feed, recent_history, replay, same
from worker_harness import Deployment, WorkerProcess, running, wait_for

from streams.model.clock import format_instant, parse_instant
from streams.rules import deployments
from tests.packs import NEW_SEGMENT, pack_v2


def segmenter(deployment: Deployment, *args: str, fails: bool = False) -> str:
    """The CLI with the workers' settings (their SEGMENTER_* variables), as a user runs it."""
    result = subprocess.run([sys.executable, "-m", "streams.cli", *args], env=deployment.env("cli", 0),
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert (result.returncode != 0) == fails, result.stdout + result.stderr
    return result.stdout


def deploy(deployment: Deployment, folder: Path) -> tuple[int, dict[str, tuple[int, int]]]:
    """``rules deploy --yes``: the instant it goes live, and the preview's counts per segment."""
    out = segmenter(deployment, "rules", "deploy", str(folder), "--yes", "--in", "8", "--by", "test")
    at = parse_instant(re.search(r"goes live at (\S+)", out).group(1))  # type: ignore[union-attr]
    counts = {m.group(1): (int(m.group(2)), int(m.group(3)))
              for m in re.finditer(r"^  (\w+): (\d+) enter, (\d+) exit$", out, re.MULTILINE)}
    return at, counts


def live_pack(worker: WorkerProcess) -> str:
    body = worker.get("/segments/")
    return "" if body is None else str(json.loads(body)["pack_version"])


def switch_changes(changes: list[dict[str, object]], at: int) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = {}
    for c in changes:
        if "deployment" in c["reason"] and parse_instant(str(c["at"])) == at:  # type: ignore[operator]
            counts.setdefault(str(c["segment"]), [0, 0])[0 if c["change"] == "entered" else 1] += 1
    return {segment: (n[0], n[1]) for segment, n in counts.items()}


def test_a_pack_deployed_on_running_workers_gives_replays_output_and_a_rollback_too(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    lines = recent_history(seed=31)
    deployment = Deployment(kafka_bootstrap, tmp_path)
    create_topics(deployment)
    feed(deployment, lines)
    v2 = pack_v2(tmp_path)
    first, second = WorkerProcess(deployment, "w1"), WorkerProcess(deployment, "w2")
    third = WorkerProcess(deployment, "w3")
    with running(first, second):
        wait_for(lambda: first.applied() + second.applied() >= len(lines), timeout=120, interval=0.2,
                 what="the workers to catch up")
        wait_for(lambda: live_pack(first) == live_pack(second) == "1", timeout=60, interval=0.2,
                 what="both workers to own partitions, running pack 1")

        # A pack that does not load is refused with every problem, and nothing reaches the workers.
        broken = tmp_path / "rules-broken"
        shutil.copytree(v2, broken)
        (broken / "pricing_lurker.toml").write_text(NEW_SEGMENT.replace("windows.pricing_views_7d_new", "windows.nope"))
        (broken / "repeat_customer.toml").write_text('name = "repeat_customer"\nversion = 3\nwhen = "orders >="\n')
        refused = segmenter(deployment, "rules", "deploy", str(broken), "--yes", fails=True)
        assert "pricing_lurker.toml" in refused and "repeat_customer.toml" in refused
        assert len(deployments.decode_lines(segmenter(deployment, "rules", "history", "--json"))) == 1

        at, preview = deploy(deployment, v2)
        wait_for(lambda: live_pack(first) == live_pack(second) == "2", timeout=60, interval=0.2,
                 what="both workers to run pack 2")
        # Started with the rules of v1, a worker that joins after the deploy, and one restarted,
        # run the pack live now: it comes from the deployments topic, not from --rules.
        first.stop()
        with running(third):
            first.start()
            workers = (first, second, third)
            wait_for(lambda: {live_pack(w) for w in workers} == {"2"}, timeout=90, interval=0.2,
                     what="the joined and the restarted worker to run pack 2")
            back_at, back_preview = deploy(deployment, ROOT / "rules")
            wait_for(lambda: {live_pack(w) for w in workers} == {"1"}, timeout=60, interval=0.2,
                     what="every worker to run pack 1 again")
            time.sleep(1.5)  # a tick and the send after the switch
            live = changes_of(deployment, quiet=3)

    made = deployments.decode_lines(segmenter(deployment, "rules", "history", "--json"))
    assert [d.pack_version for d in sorted(made, key=lambda d: d.at)] == ["1", "2", "1"]
    expected, _ = replay(lines, until=back_at, deployments=deployments.schedule(made))
    same(live, expected, back_at)

    switched = switch_changes(live, at)
    assert switched == preview, "the preview's counts are what the switch sent"
    assert switched["category_affinity_electronics"][0] == 0 and switched["category_affinity_electronics"][1] > 0
    assert switched["pricing_lurker"][0] > 0, "judged on the 7 days of history before the switch"
    assert switched["repeat_customer"][1] > 0
    removed = [c for c in live if c["segment"] == "category_affinity_electronics" and c["at"] == format_instant(at)]
    assert all(c["reason"] == {"deployment": {"pack_version": "2", "rule": "removed"}} for c in removed)
    assert switch_changes(live, back_at) == back_preview
    assert {"category_affinity_electronics", "repeat_customer", "pricing_lurker"} <= set(back_preview)
    assert all(s.startswith("category_affinity_") for s in set(back_preview) - {"repeat_customer", "pricing_lurker"})
