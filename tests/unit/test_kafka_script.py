"""scripts/kafka's answers that need no broker: usage, status, bad settings, a taken port.

Every run gets its own cache and state dirs under tmp_path, so nothing here touches a
developer's broker or downloads anything.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

KAFKA_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka"


def run_kafka(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "SEGMENTER_KAFKA_HOME": str(tmp_path / "state"),
        **env,
    }
    for name in ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT"):
        if name not in env:
            full_env.pop(name, None)
    return subprocess.run(
        [str(KAFKA_SCRIPT), *args],
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that some other program listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_help_names_every_command(tmp_path: Path) -> None:
    result = run_kafka(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("start", "stop", "status", "logs", "reset"):
        assert f"scripts/kafka {command}" in result.stdout


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run_kafka(tmp_path, "launch")
    assert result.returncode == 2
    assert "scripts/kafka start" in result.stderr


def test_status_of_a_broker_never_started_is_3(tmp_path: Path) -> None:
    result = run_kafka(tmp_path, "status", KAFKA_PORT="29999")
    assert result.returncode == 3
    assert "not running" in result.stdout


def test_stop_when_not_running_succeeds(tmp_path: Path) -> None:
    result = run_kafka(tmp_path, "stop", KAFKA_PORT="29999")
    assert result.returncode == 0
    assert "not running" in result.stdout


def test_a_stale_pid_file_is_not_a_running_broker(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # Our own pid: alive, but not a Kafka broker of this state dir.
    (state / "kafka.pid").write_text(f"{os.getpid()}\n")
    result = run_kafka(tmp_path, "status", KAFKA_PORT="29999")
    assert result.returncode == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_PORT": "kafka"}, "KAFKA_PORT='kafka' is not a port number"),
        ({"KAFKA_PORT": "70000"}, "KAFKA_PORT='70000' is not a port number"),
        ({"KAFKA_PORT": "29999", "KAFKA_CONTROLLER_PORT": "29999"}, "must differ"),
        ({"KAFKA_NUM_PARTITIONS": "0"}, "KAFKA_NUM_PARTITIONS='0' is not a positive integer"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = run_kafka(tmp_path, "start", **env)
    assert result.returncode == 1
    assert message in result.stderr


def test_start_refuses_a_port_taken_by_another_program(tmp_path: Path, taken_port: int) -> None:
    result = run_kafka(tmp_path, "start", KAFKA_PORT=str(taken_port), KAFKA_CONTROLLER_PORT="29998")
    assert result.returncode == 1
    assert f"port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert not (tmp_path / "state" / "kafka.pid").exists()
    assert not (tmp_path / "cache" / "segmenter").exists(), "fetched jars for nothing"
