"""The faust app of a worker and its tables, declared in one place.

faust does what it does well: consumer-group membership and partition assignment, tables with
changelogs restored on rebalance (RocksDB by default), standby replicas and the web server. The
tables hold encoded bytes (the engine's records are msgpack); keys are UTF-8 strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import faust
from faust.serializers import codecs

from streams.live.settings import WorkerSettings

UTF8 = "segmenter-utf8"
"""The codec of the tables' keys (and of ``progress`` values): plain UTF-8, no JSON quoting."""


class _Utf8Codec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, s: bytes) -> Any:
        return s.decode()


def register_codecs() -> None:
    """Make the tables' codec known to faust (by name, process-wide); safe to call again."""
    codecs.register(UTF8, _Utf8Codec())


class Tables(NamedTuple):
    customers: Any
    """customer or visitor id -> its record (:class:`streams.model.state.CustomerState`)."""
    aliases: Any
    """visitor id -> the customer it was identified as."""
    progress: Any
    """``<topic>#<partition>`` -> offset of the last message applied and committed."""
    erasures: Any
    """Erased customers and when, within the allowed lateness (the engine's ``erased``)."""


def make_app(settings: WorkerSettings) -> faust.App:
    s = settings
    register_codecs()
    Path(s.data_dir).mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if s.security_protocol != "PLAINTEXT":
        options["broker_credentials"] = _credentials(s)
    return faust.App(
        s.app_id,
        broker=[f"kafka://{server.strip()}" for server in s.bootstrap_servers.split(",")],
        store="rocksdb://" if s.store == "rocksdb" else "memory://",
        datadir=s.data_dir,
        topic_partitions=s.partitions,
        table_standby_replicas=s.standby_replicas,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=s.batch_max,
        web_enabled=True,
        web_bind=s.web_host,
        web_port=s.web_port,
        canonical_url=s.web_address(),  # where the other workers forward requests for this one's customers
        web_router_enabled=False,  # it would tell anyone which worker holds whom
        web_tables_enabled=False,  # it would serve customer data to anyone who asks
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        **options,
    )


def declare_tables(app: faust.App, settings: WorkerSettings) -> Tables:
    return Tables(
        customers=_table(app, settings, "customers", "raw"),
        aliases=_table(app, settings, "aliases", "raw"),
        progress=_table(app, settings, "progress", UTF8),
        erasures=_table(app, settings, "erasures", "raw"),
    )


def _table(app: faust.App, settings: WorkerSettings, name: str, value_serializer: str) -> Any:
    schema: Any = faust.Schema(key_serializer=UTF8, value_serializer=value_serializer)
    table: Any = app.Table(name, partitions=settings.partitions, schema=schema)
    # faust derives a table's own serializers from key_type/value_type (JSON for anything but
    # bytes) and builds the changelog topic with them at once; ours are set here, for the
    # store, the changelog and its recovery alike.
    table.key_serializer = UTF8
    table.value_serializer = value_serializer
    table._changelog_topic = None
    assert table.changelog_topic.schema.value_serializer == value_serializer
    return table


def _credentials(settings: WorkerSettings) -> Any:
    s = settings
    security = s.kafka_security()
    if "SASL" in s.security_protocol:
        return faust.SASLCredentials(username=s.sasl_username, password=s.sasl_password,
                                     mechanism=s.sasl_mechanism, ssl_context=security.get("ssl_context"))
    return security["ssl_context"]
