"""Worker configuration: one Struct, filled from defaults, then ``SEGMENTER_*`` variables, then flags.

Every setting has an environment variable of the same name in upper case with the prefix
``SEGMENTER_`` (``bootstrap_servers`` -> ``SEGMENTER_BOOTSTRAP_SERVERS``), which is how
docker-compose and Kubernetes pass them, and a flag (``--bootstrap-servers``), which wins.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import msgspec

from streams.errors import SegmenterError
from streams.model.limits import Limits, limits_of

ENV_PREFIX = "SEGMENTER_"
_LIMITS = Limits()


class WorkerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "segmenter"
    rules: str = "rules"
    store: Literal["rocksdb", "memory"] = "rocksdb"
    data_dir: str = "var/worker"
    partitions: int = 8
    standby_replicas: int = 1
    clickstream_topic: str = "clickstream"
    transactions_topic: str = "transactions"
    profiles_topic: str = "profiles"
    changes_topic: str = "segment-changes"
    memberships_topic: str = "segment-memberships"
    dead_letter_topic: str = "segmenter-dead-letter"
    activation_topic_prefix: str = "activations"
    segment_topics: bool = False
    max_event_bytes: int = _LIMITS.max_event_bytes
    max_nesting: int = _LIMITS.max_nesting
    max_id_length: int = _LIMITS.max_id_length
    max_amount: float = _LIMITS.max_amount
    max_quantity: int = _LIMITS.max_quantity
    max_trait_length: int = _LIMITS.max_trait_length
    max_cart_lines: int = _LIMITS.max_cart_lines
    max_visitor_ids: int = _LIMITS.max_visitor_ids
    max_recent_events: int = _LIMITS.max_recent_events
    max_state_bytes: int = _LIMITS.max_state_bytes
    max_clock_skew: float = 300.0
    handoff_wait: float = 30.0
    identity_retention: float = 7 * 24 * 3600.0
    dead_letter_retention: float = 7 * 24 * 3600.0
    idle_after: float = 1.0
    tick_interval: float = 0.25
    # Live events wait at most align_wait for a topic whose end is not known yet; older ones as
    # long as for a topic known to be behind (30 s): see docs/worker.md.
    align_wait: float = 0.5
    batch_max: int = 2000
    # Keep fetch_wait short: while one fetch is out no other goes to that broker, so a fetch of
    # quiet partitions that waits delays the busy ones by as much.
    fetch_wait: float = 0.02
    # Changes are sent as soon as their batch is applied; a commit makes state and offsets
    # durable, so commit_interval bounds what a crash re-reads, not when changes go out.
    commit_interval: float = 0.5
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_url: str | None = None
    web_token: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def web_address(self) -> str:
        """Where the other workers reach this one's HTTP endpoints."""
        if self.web_url:
            return self.web_url
        host = socket.gethostname() if self.web_host in ("0.0.0.0", "::", "") else self.web_host
        return f"http://{host}:{self.web_port}"

    def limits(self) -> Limits:
        """The bounds of messages and customers' records, for the engines."""
        return limits_of({name: getattr(self, name) for name in Limits.__struct_fields__})

    @property
    def input_topics(self) -> list[str]:
        return [self.clickstream_topic, self.transactions_topic, self.profiles_topic]

    @property
    def identity_topic(self) -> str:
        return f"{self.app_id}-identity"

    def segment_topic(self, segment: str) -> str:
        return f"{self.changes_topic}.{segment}"

    def activation_topic(self, channel: str) -> str:
        return f"{self.activation_topic_prefix}.{channel}"

    @property
    def deployments_topic(self) -> str:
        """Compacted, one partition: every rule pack put live, and when (``segmenter rules deploy``)."""
        return f"{self.app_id}-rule-deployments"

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


HELP: dict[str, str] = {
    "bootstrap_servers": "Kafka brokers to connect to, host:port, comma-separated",
    "app_id": "consumer group and prefix of internal topics; workers with the same id share the work",
    "rules": "folder of the rule pack the first worker records as the initial deployment; later packs "
             "come from the deployments topic",
    "store": "where tables live on the worker: rocksdb (on disk) or memory (restored from the "
             "changelogs at every start)",
    "data_dir": "folder for the RocksDB tables",
    "partitions": "partitions of the input, output and internal topics (they must all agree)",
    "standby_replicas": "warm copies of each table partition kept on other workers, for fast takeover",
    "clickstream_topic": "input topic of clickstream events",
    "transactions_topic": "input topic of orders and refunds",
    "profiles_topic": "input topic of profile, consent and erasure events",
    "changes_topic": "output topic of segment changes",
    "memberships_topic": "compacted topic of current memberships, keyed by customer and segment (a "
                         "tombstone when one ends)",
    "dead_letter_topic": "topic of bad events, with the reason in headers",
    "activation_topic_prefix": "activations of channel C go to <prefix>.C (docs/activation.md); the worker "
                               "creates the topic of every channel a pack feeds",
    "segment_topics": "also write each change to <changes_topic>.<segment>; the worker creates the topic "
                      "of every segment a pack defines",
    "max_event_bytes": "largest input message accepted (bytes); larger ones are bad events",
    "max_id_length": "longest id accepted (characters): event, customer, visitor, session, order and "
                     "sku ids, device and channel; longer ones are bad events (too long)",
    "max_amount": "largest price, total, refund or cart value accepted; larger ones are bad events "
                  "(amount)",
    "max_quantity": "largest quantity of a cart line or order item; larger ones are bad events (quantity)",
    "max_trait_length": "longest string value of a declared trait (characters); longer ones are bad "
                        "events (too long)",
    "max_cart_lines": "distinct skus one customer's cart may hold; an add_to_cart of one more is a bad "
                      "event (cart lines)",
    "max_visitor_ids": "visitor ids merged into one customer; an identify of one more is a bad event "
                       "(visitor ids)",
    "max_recent_events": "events one customer may send within the allowed lateness (their ids are kept "
                         "that long to drop duplicates); more are bad events (too many events)",
    "max_state_bytes": "largest customer record the bounds above may lead to (bytes); the worker refuses "
                       "to start with bounds that would allow more. Keep it under the changelog "
                       "topics' max.message.bytes less max_event_bytes",
    "identity_retention": "seconds the identity topic keeps hand-offs (they carry visitors' records); set "
                          "when the worker creates the topic",
    "dead_letter_retention": "seconds the dead-letter topic keeps bad events (they may carry customer "
                             "data); set when the worker creates the topic",
    "handoff_wait": "seconds a customer's events wait for the visitor record an identify asked another "
                    "partition for; then they go on without it",
    "max_clock_skew": "seconds an event's ts may be ahead of the wall clock; later ones are bad "
                      "events (reason future) and move no clock",
    "max_nesting": "deepest nesting of objects and arrays accepted in an input message; deeper "
                   "ones are bad events",
    "idle_after": "seconds without input after which a partition read to its end moves its clock up "
                  "to the wall clock",
    "tick_interval": "seconds between checks of idle partitions' deadlines",
    "align_wait": "seconds a live event waits for another topic of its partition whose end is not "
                  "known yet (event-time alignment)",
    "batch_max": "most records one fetch hands to the pipeline",
    "fetch_wait": "seconds the broker may hold a fetch of the input topics while they have nothing new",
    "commit_interval": "seconds between commits of state and offsets (bounds what a crash re-reads)",
    "web_host": "address the HTTP endpoints bind to (loopback unless told otherwise)",
    "web_port": "port of the HTTP endpoints (health, metrics, segments, customers)",
    "web_url": "URL the other workers reach this one's HTTP endpoints at, to forward requests for the "
               "customers it holds (default http://<web_host>:<web_port>)",
    "web_token": "token a caller of /customers/ must send (Authorization: Bearer <token>); without one, "
                 "customer data is served to no one. Give it as the environment variable, not the flag",
    "security_protocol": "Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    "sasl_mechanism": "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    "sasl_username": "SASL user name",
    "sasl_password": "SASL password (prefer the environment variable to the flag)",
    "ssl_cafile": "CA certificate file to verify the brokers with",
    "ssl_certfile": "client certificate file, for mutual TLS",
    "ssl_keyfile": "client key file, for mutual TLS",
}
"""What each setting does, in one line: the worker's --help and docs/settings.md come from here."""


class Setting(NamedTuple):
    name: str
    flag: str
    env: str
    type: Any
    default: Any
    help: str


def describe() -> list[Setting]:
    """Every setting, in declaration order, with its flag, variable, default and help."""
    return [Setting(field.name, "--" + field.name.replace("_", "-"), ENV_PREFIX + field.name.upper(),
                    field.type, field.default, HELP[field.name])
            for field in msgspec.structs.fields(WorkerSettings)]


def markdown_table() -> str:
    """docs/settings.md: every setting as a table row."""
    lines = ["# Worker settings", "",
             "Each setting of `segmenter worker` is a flag and an environment variable; the flag wins.",
             "This page is generated: `python -m streams.live.settings > docs/settings.md`.", "",
             "| flag | environment variable | default | what it does |", "|---|---|---|---|"]
    for s in describe():
        default = "" if s.default is None else f"`{s.default}`"
        lines.append(f"| `{s.flag}` | `{s.env}` | {default} | {s.help} |")
    return "\n".join(lines) + "\n"


RETIRED = {
    "channel_topics": "it sent every change to every channel the customer had consented to, whatever "
                      "the segment; channels are now declared in the rule pack, with their policies "
                      "(docs/activation.md)",
}
"""Settings that are gone, with what replaces them: set, they stop the worker instead of being
ignored."""


def load(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> WorkerSettings:
    """Defaults, then ``SEGMENTER_*`` variables, then ``flags`` (name -> value; None: not given)."""
    environ = os.environ if environ is None else environ
    flags = {} if flags is None else flags
    for name, why in RETIRED.items():
        if environ.get(ENV_PREFIX + name.upper()) is not None:
            raise SegmenterError(f"{ENV_PREFIX}{name.upper()} is no longer a setting: {why}")
    values: dict[str, Any] = {}
    for name in WorkerSettings.__struct_fields__:
        value = environ.get(ENV_PREFIX + name.upper())
        if flags.get(name) is not None:
            value = flags[name]
        if value is not None:
            values[name] = value
    try:
        return msgspec.convert(values, WorkerSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise SegmenterError(f"invalid worker setting: {exc} (flags or {ENV_PREFIX}* variables)") from None


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
