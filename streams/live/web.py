"""The worker's HTTP endpoints (faust web; bound to loopback unless configured).

- ``GET /customers/{id}``: a customer's segments and state, answered by the worker that owns
  the id (faust forwards the request there, token included), and only to a caller who sends
  the worker's token (``Authorization: Bearer <web_token>``): without a token configured,
  customer data is served to no one;
- ``GET /segments``: segment sizes for the whole cluster (from the memberships topic; this
  worker's own until it has read that topic once), and the live rule pack;
- ``GET /health``: 200 once the worker owns its partitions and has restored them, else 503;
- ``GET /metrics``: Prometheus text.

The endpoints read the worker through a :class:`Readout`, never change it. faust's own table
views and its ``/router/`` pages stay off: they would tell anyone which worker holds whom.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import faust
import msgspec
from faust.web import Request, Response, View

from streams.live.membership_sizes import ClusterSizes
from streams.live.metrics import Metrics
from streams.live.partitions import Partitions
from streams.live.settings import WorkerSettings
from streams.model.clock import format_instant

TIME_FIELDS = ("clock", "first_seen", "last_seen", "last_cart_activity", "last_checkout_at",
               "first_order_at", "last_order_at", "deadline", "consent_at", "traits_at", "cart_started_at")
"""A record's instants, served as ISO 8601 text."""


@dataclass(frozen=True)
class Readout:
    """What the endpoints may read of a worker."""

    partitions: Partitions
    metrics: Metrics
    ready: Callable[[], bool]


def authenticated(token: str | None) -> Callable[[Any], Any]:
    """Let through only a request that carries ``token`` as a bearer token."""
    expected = None if not token else f"Bearer {token}".encode()

    def decorate(handler: Any) -> Any:
        @wraps(handler)
        async def checked(web: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            sent = request.headers.get("Authorization", "").encode()
            if expected is None:
                return web.json({"error": "customer data is served only with a token: set SEGMENTER_WEB_TOKEN "
                                          "on the workers and send Authorization: Bearer <token>"}, status=403)
            if not hmac.compare_digest(sent, expected):
                return web.json({"error": "a valid bearer token is required"}, status=401,
                                headers={"WWW-Authenticate": "Bearer"})
            return await handler(web, request, *args, **kwargs)

        return checked

    return decorate


def register(app: faust.App, customers: Any, readout: Readout, settings: WorkerSettings) -> None:
    """Add the endpoints to ``app``; ``customers`` is the table whose owner answers for an id;
    the ``web_token`` of ``settings`` guards customer data."""
    token = settings.web_token
    cluster = ClusterSizes(settings)
    app.task(cluster.follow)

    @app.page("/customers/{customer_id}/")
    @authenticated(token)
    @app.table_route(table=customers, match_info="customer_id")
    async def customer(web: View, request: Request, customer_id: str) -> Response:
        partition, state = readout.partitions.state_of(customer_id)
        if state is None:
            return web.json({"customer_id": customer_id, "error": "unknown customer"}, status=404)
        # The record is a msgpack array on disk; here each field gets its name.
        body: dict[str, Any] = {name: msgspec.to_builtins(getattr(state, name))
                                for name in state.__struct_fields__}
        for name in TIME_FIELDS:
            if body.get(name) is not None:
                body[name] = format_instant(body[name])
        return web.json({"customer_id": customer_id, "segments": state.memberships(), "partition": partition,
                         "state": body})

    @app.page("/segments/")
    async def segments(web: View, request: Request) -> Response:
        packs = readout.partitions.packs()
        versions = sorted(set(packs.values()))
        pending = sorted({d.id for engine in readout.partitions.engines.values() for d in engine.pending})
        own = readout.partitions.segment_sizes()
        return web.json({"segments": cluster.current() if cluster.caught_up else own,
                         "cluster": cluster.caught_up, "this_worker": own,
                         "partitions": sorted(readout.partitions.engines),
                         "pack_version": versions[0] if len(versions) == 1 else versions,
                         "packs": {str(p): v for p, v in packs.items()}, "pending_deployments": pending,
                         "clocks": {str(p): format_instant(e.clock) for p, e in readout.partitions.engines.items()
                                    if e.clock is not None}})

    @app.page("/health/")
    async def health(web: View, request: Request) -> Response:
        ok = readout.ready()
        return web.json({"status": "ok" if ok else "starting",
                         "partitions": sorted(readout.partitions.engines)},
                        status=200 if ok else 503)

    @app.page("/metrics/")
    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(readout.metrics.render(), content_type="text/plain; version=0.0.4")
