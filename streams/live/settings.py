"""Worker configuration: one Struct, filled from defaults, then ``SEGMENTER_*`` variables, then flags.

Every setting has an environment variable of the same name in upper case with the prefix
``SEGMENTER_`` (``bootstrap_servers`` -> ``SEGMENTER_BOOTSTRAP_SERVERS``), which is how
docker-compose and Kubernetes pass them, and a flag (``--bootstrap-servers``), which wins.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from streams.errors import SegmenterError

ENV_PREFIX = "SEGMENTER_"


class WorkerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "segmenter"
    """Consumer group and prefix of internal topics; workers with the same id share the work."""
    rules: str = "rules"
    store: Literal["rocksdb", "memory"] = "rocksdb"
    data_dir: str = "var/worker"
    partitions: int = 8
    """Partitions of the input, output and internal topics (they must all agree)."""
    standby_replicas: int = 1
    clickstream_topic: str = "clickstream"
    transactions_topic: str = "transactions"
    profiles_topic: str = "profiles"
    changes_topic: str = "segment-changes"
    dead_letter_topic: str = "segmenter-dead-letter"
    segment_topics: bool = False
    """Also write each change to ``<changes_topic>.<segment>``."""
    channel_topics: bool = False
    """Also write each change to ``<changes_topic>.<channel>`` for every channel it has consent on."""
    max_event_bytes: int = 64 * 1024
    idle_after: float = 1.0
    """Seconds without input after which a partition's clock follows the wall clock."""
    tick_interval: float = 0.25
    align_wait: float = 0.5
    """Live events (within seconds of now): how long a partition's other topics wait for one whose
    end is not known yet (event-time alignment). Older events wait as long as for a topic known
    to be behind: 30 s."""
    batch_max: int = 2000
    """Most records one fetch hands to the pipeline."""
    fetch_wait: float = 0.02
    """Seconds the broker may hold a fetch of the source topics while they have nothing new. Keep
    it short: while one fetch is out, no other goes to that broker, so a fetch of the quiet
    partitions that waits delays the busy ones by as much."""
    commit_interval: float = 0.5
    """Seconds between commits. Changes are sent as soon as their batch is applied; a commit makes
    state and offsets durable, so this bounds what a crash re-reads, not when changes go out."""
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @property
    def input_topics(self) -> list[str]:
        return [self.clickstream_topic, self.transactions_topic, self.profiles_topic]

    @property
    def identity_topic(self) -> str:
        return f"{self.app_id}-identity"

    def kafka_security(self) -> dict[str, Any]:
        """aiokafka client arguments for TLS and SASL/SCRAM."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if "SSL" in self.security_protocol:
            import ssl

            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            options["ssl_context"] = context
        if "SASL" in self.security_protocol:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        return options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults stay None so the environment can fill them."""
    for name, field in zip(WorkerSettings.__struct_fields__, msgspec.structs.fields(WorkerSettings),
                           strict=True):
        flag = "--" + name.replace("_", "-")
        env = ENV_PREFIX + name.upper()
        if field.type is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=f"(env {env}; default {field.default})")
        else:
            parser.add_argument(flag, default=None, metavar=name.split("_")[-1].upper(),
                                help=f"(env {env}; default {field.default})")


def load(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> WorkerSettings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in WorkerSettings.__struct_fields__:
        value = environ.get(ENV_PREFIX + name.upper())
        if args is not None and getattr(args, name, None) is not None:
            value = getattr(args, name)
        if value is not None:
            values[name] = value
    try:
        return msgspec.convert(values, WorkerSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise SegmenterError(f"invalid worker setting: {exc} (flags or {ENV_PREFIX}* variables)") from None
