"""``segmenter replay`` as a user runs it: a subprocess, a file, stdout, stderr and the exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

from scenario import ROOT, event, iso, minutes

COMMAND = [sys.executable, "-m", "streams.cli"]


def replay(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*COMMAND, "replay", *args], cwd=ROOT, input=stdin, capture_output=True,
                          timeout=60, check=False)


def test_replay_prints_changes_bad_events_and_a_summary(tmp_path: Path) -> None:
    lines = [
        event("add_to_cart", 0, "c1", sku="A", price=5),
        b'{"type": "page_view", "event_id": "x"',
        event("order_completed", minutes(1), None, anonymous="v1", total=3),
        event("page_view", minutes(45), "c2"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n\n")
    result = replay(str(path))
    assert result.returncode == 0, result.stderr
    changes = [msgspec.json.decode(line) for line in result.stdout.splitlines()]
    assert [(c["customer_id"], c["segment"], c["change"], c["at"]) for c in changes] == [
        ("c1", "new_visitor", "entered", iso(0)),
        ("c1", "cart_abandoner", "entered", iso(minutes(30))),
        ("c2", "new_visitor", "entered", iso(minutes(45))),
    ]
    assert set(changes[0]) == {"change_id", "customer_id", "segment", "change", "at", "reason", "consent",
                               "rule_version", "pack_version"}
    err = result.stderr.decode().splitlines()
    bad = [msgspec.json.decode(line) for line in err[:-1]]
    assert [b["where"] for b in bad] == [f"{path}:2", f"{path}:3"]
    assert bad[0]["reason"].startswith("not valid JSON")
    assert "`customer_id` is required for `order_completed`" in bad[1]["reason"]
    assert bad[1]["raw"] == lines[2].decode()
    assert err[-1].startswith("replay: 4 events read, 2 bad, 0 duplicates, 3 changes")
    assert "events/s" in err[-1]


def test_replay_reads_stdin_and_until_moves_the_clock() -> None:
    result = replay("-", "--until", iso(minutes(30)), stdin=event("add_to_cart", 0, "c1", sku="A"))
    assert result.returncode == 0
    segments = [msgspec.json.decode(line)["segment"] for line in result.stdout.splitlines()]
    assert segments == ["new_visitor", "cart_abandoner"]


def test_replay_with_an_invalid_rules_folder_says_why_and_fails(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text('name = "broken"\nversion = 1\nwhen = "ordrs > 1"\n')
    result = replay("-", "--rules", str(tmp_path), stdin=b"")
    assert result.returncode == 1
    assert "broken.toml:3: rule 'broken': `when` column 1: unknown field `ordrs`" in result.stderr.decode()


def test_replay_of_a_missing_file_fails_with_its_name() -> None:
    result = replay("/nonexistent/events.jsonl")
    assert result.returncode == 2
    assert b"no such file: /nonexistent/events.jsonl" in result.stderr


def test_help_lists_the_commands() -> None:
    result = subprocess.run([*COMMAND, "--help"], cwd=ROOT, capture_output=True, check=True, timeout=60)
    assert b"replay" in result.stdout and b"rules" in result.stdout


def test_an_until_before_the_last_event_is_reported() -> None:
    result = replay("-", "--until", iso(-minutes(5)), stdin=event("page_view", 0, "c1"))
    assert result.returncode == 0
    assert f"--until {iso(-minutes(5))} is before the last event" in result.stderr.decode()
