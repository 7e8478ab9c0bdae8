"""scripts/demo end to end, headless, on the test broker: what a user sees, and what it leaves.

About 75 s: the worker's start, 60 s of view (DEMO_SECONDS) in which it reads a year of history
and goes live, the shutdown.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo"
ROW = re.compile(r"^(\w+)\s+(-?\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _processes_with(marker: bytes) -> list[str]:
    """Processes whose environment holds ``marker``: everything the demo started inherits it."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{proc.name}: {cmdline}")
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def test_demo_shows_segments_filling_and_leaves_nothing_running(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("SEGMENTER_", "DEMO_"))}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DEMO_SECONDS": "60",
        "DEMO_DIR": str(tmp_path / "demo"),
        "DEMO_WEB_PORT": str(_free_port()),
    })
    run = subprocess.run([str(DEMO)], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=170, check=False)
    out = run.stdout
    worker_log = tmp_path / "demo" / "worker.log"
    context = (f"exit {run.returncode}\n--- stdout (end) ---\n{out[-6000:]}\n--- stderr ---\n{run.stderr[-3000:]}"
               f"\n--- worker log (end) ---\n{worker_log.read_text(errors='replace')[-3000:] if worker_log.exists() else ''}")
    assert run.returncode == 0, context

    # The broker was given: none started or stopped.
    assert f"using the broker at {kafka_bootstrap}" in out, context
    assert "scripts/kafka" not in out, context

    # The final snapshot: at least three segments that customers entered, and the latest changes.
    assert "=== snapshot final ===" in out, context
    final = out.split("=== snapshot final ===", 1)[1]
    rows = {m[1]: [int(n) for n in m.groups()[1:]] for m in map(ROW.match, final.splitlines()) if m}
    total = rows.pop("total")
    entered = {name: counts[1] for name, counts in rows.items() if counts[1] > 0}
    # A year of history: the three headline segments and the RFM ones all show.
    headline = {"cart_abandoner", "lapsed_high_value", "high_intent_lead",
                "champions", "loyal_customers", "at_risk", "hibernating"}
    assert headline <= set(entered), f"missing {sorted(headline - set(entered))}\n{context}"
    assert "live: caught up with history at " in final, context
    assert total[1] == sum(counts[1] for counts in rows.values())
    assert all(counts[0] == counts[1] - counts[2] for counts in rows.values())  # members = in - out
    latest = final.split("latest changes (newest first)", 1)[1].splitlines()[2:]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+cust-\d+\s+\w+\s+(entered|exited)\s", latest[0]), context

    # Everything it started is stopped: the worker by SIGTERM, shut down in order.
    match = re.search(r"app id (segmenter-demo-[\w-]+),", out)
    assert match, context
    assert _processes_with(f"SEGMENTER_APP_ID={match[1]}".encode()) == []
    log = worker_log.read_text(errors="replace")
    assert "Crashed" not in log, context
    assert "[^Worker]: Stopping" in log, context
    assert "deleted this run's" in out, context
