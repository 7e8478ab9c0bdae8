"""docker-compose.yml agrees with itself, with the Dockerfile and with scripts/kafka.env.

No Docker needed: the files are parsed and cross-checked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
KAFKA_ENV_FILE = ROOT / "scripts" / "kafka.env"
DOCKERFILE = ROOT / "Dockerfile"

LISTENER = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)://(?P<host>[^:/]*):(?P<port>\d+)$")


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{path}:{number}: not KEY=VALUE"
        values[key] = value.strip().strip("\"'")
    return values


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=VALUE", ...]
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {NAME: (host, port)}."""
    parsed: dict[str, tuple[str, int]] = {}
    for item in value.split(","):
        match = LISTENER.match(item.strip())
        assert match, f"not a listener: {item!r}"
        parsed[match["name"]] = (match["host"], int(match["port"]))
    return parsed


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """{host port: container port} from short ("9092:9092") or long port syntax."""
    ports: dict[int, int] = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports[int(entry["published"])] = int(entry["target"])
        else:
            *_, host, container = str(entry).split(":")
            ports[int(host)] = int(container.split("/")[0])
    return ports


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def kafka(compose: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"]["kafka"]
    return service


@pytest.fixture(scope="module")
def kafka_env(kafka: dict[str, Any]) -> dict[str, str]:
    return service_env(kafka)


def test_services_exist(compose: dict[str, Any]) -> None:
    assert {"kafka", "worker"} <= set(compose["services"])


def test_kafka_image_is_the_pinned_version(kafka: dict[str, Any]) -> None:
    pinned = read_env_file(KAFKA_ENV_FILE)["KAFKA_VERSION"]
    assert kafka["image"] == f"apache/kafka:{pinned}"


def test_kafka_version_is_pinned_in_one_place() -> None:
    pinned = read_env_file(KAFKA_ENV_FILE)["KAFKA_VERSION"]
    for path in (ROOT / "scripts" / "kafka", ROOT / ".ci" / "run", ROOT / "scripts" / "test"):
        assert pinned not in path.read_text(), f"{path} repeats the Kafka version; read kafka.env"


def test_kafka_is_a_single_kraft_node(kafka_env: dict[str, str]) -> None:
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = kafka_env["KAFKA_NODE_ID"]
    voter_id, _, voter = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == node_id
    controller = kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    defined = listeners(kafka_env["KAFKA_LISTENERS"])
    assert int(voter.rpartition(":")[2]) == defined[controller][1]
    assert kafka_env["CLUSTER_ID"]
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert kafka_env[name] == "1", name


def test_every_listener_has_a_protocol(kafka_env: dict[str, str]) -> None:
    protocols = dict(
        item.split(":", 1) for item in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners(kafka_env["KAFKA_LISTENERS"])) <= set(protocols)
    assert kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners(
        kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    )


def test_host_port_9092_reaches_a_listener_advertised_to_the_host(
    kafka: dict[str, Any], kafka_env: dict[str, str]
) -> None:
    ports = published_ports(kafka)
    assert 9092 in ports
    defined = listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    names = [name for name, (_, port) in defined.items() if port == ports[9092]]
    assert len(names) == 1, f"no single listener on container port {ports[9092]}: {defined}"
    assert advertised[names[0]] in {("localhost", 9092), ("127.0.0.1", 9092)}


def test_worker_bootstrap_is_an_advertised_internal_listener(
    compose: dict[str, Any], kafka: dict[str, Any], kafka_env: dict[str, str]
) -> None:
    worker = compose["services"]["worker"]
    servers = service_env(worker)["SEGMENTER_BOOTSTRAP_SERVERS"].split(",")
    defined = listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    kafka_names = {"kafka", kafka.get("hostname", "kafka")}
    for server in servers:
        host, _, port = server.strip().rpartition(":")
        assert host in kafka_names, f"{server}: not the kafka service"
        names = [name for name, address in advertised.items() if address == (host, int(port))]
        assert names, f"{server} is not among the advertised listeners {advertised}"
        assert defined[names[0]][1] == int(port), f"{server}: advertised but not listened on"

    depends_on = worker.get("depends_on")
    assert depends_on is not None and "kafka" in depends_on


def test_worker_is_built_from_the_project_dockerfile(compose: dict[str, Any]) -> None:
    build = compose["services"]["worker"]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (COMPOSE_FILE.parent / context).resolve() == ROOT
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"^RUN pip install \.\s*$", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["segmenter", "worker"\]\s*$', text, re.MULTILINE)
