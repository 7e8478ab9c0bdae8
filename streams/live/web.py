"""The worker's HTTP endpoints (faust web; bound to loopback unless configured).

- ``GET /customers/{id}``: a customer's segments and state, answered by the worker that owns
  the id (faust forwards the request there);
- ``GET /segments``: segment sizes on this worker;
- ``GET /health``: 200 once the worker owns its partitions and has restored them, else 503;
- ``GET /metrics``: Prometheus text.

faust's own table views stay off: they would serve every customer's record to anyone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from faust.web import Request, Response, View

from streams.live.views import partition_of
from streams.model.clock import format_instant

if TYPE_CHECKING:
    from streams.live.worker import Worker


def register(worker: Worker) -> None:
    app = worker.app

    @app.page("/customers/{customer_id}/")
    @app.table_route(table=worker.customers, match_info="customer_id")
    async def customer(web: View, request: Request, customer_id: str) -> Response:
        partition = partition_of(customer_id, worker.settings.partitions)
        engine = worker.engines.get(partition)
        with worker.writing(partition):
            state = None if engine is None else engine.states.get(customer_id)
        if state is None:
            return web.json({"customer_id": customer_id, "error": "unknown customer"}, status=404)
        # The record is a msgpack array on disk; here each field gets its name.
        body: dict[str, Any] = {name: msgspec.to_builtins(getattr(state, name))
                                for name in state.__struct_fields__}
        for name in ("clock", "first_seen", "last_seen", "last_cart_activity", "last_checkout_at",
                     "first_order_at", "last_order_at", "deadline", "consent_at", "traits_at"):
            if body.get(name) is not None:
                body[name] = format_instant(body[name])
        return web.json({"customer_id": customer_id, "segments": state.memberships(), "partition": partition,
                         "state": body})

    @app.page("/segments/")
    async def segments(web: View, request: Request) -> Response:
        return web.json({"segments": worker.segment_sizes(),
                         "partitions": sorted(worker.engines)})

    @app.page("/health/")
    async def health(web: View, request: Request) -> Response:
        ok = worker.ready.is_set() and not app.rebalancing
        return web.json({"status": "ok" if ok else "starting", "partitions": sorted(worker.engines)},
                        status=200 if ok else 503)

    @app.page("/metrics/")
    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(worker.metrics.render(), content_type="text/plain; version=0.0.4")
