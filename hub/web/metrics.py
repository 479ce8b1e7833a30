"""``GET /metrics``: the Prometheus text format (hub.metrics), with the store's gauges fresh.

By default a scrape needs a bearer token with ``ssf.metrics`` (what a Prometheus scrape
config sends) or ``ssf.admin``; ``metrics_public = true`` opens it, for a private network.
Queue gauges are read from the shared store at most every :data:`STORE_GAUGES_TTL` seconds,
so a tight scrape interval does not turn into a store scan per scrape.
"""

from __future__ import annotations

import os
import time
from collections import Counter

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from hub import metrics
from hub.auth.tokens import SCOPE_ADMIN, SCOPE_METRICS
from hub.core.model import PUSH_METHOD, Status
from hub.runtime.context import HubContext
from hub.web.http import NO_STORE, authorize, hub_of

STORE_GAUGES_TTL = 10.0


async def refresh_store_gauges(hub: HubContext, now: float) -> None:
    """Queue depth, oldest undelivered age and streams by status, from the store."""
    depth, oldest, failing = 0, 0.0, 0
    streams: Counter[tuple[str, str]] = Counter()
    for stream in await hub.store.list_streams():
        streams[(stream.status.value, metrics.method_label(stream.delivery.method))] += 1
        stats = await hub.store.queue_stats(stream.stream_id)
        depth += stats.depth
        if stats.oldest_queued_at is not None:
            oldest = max(oldest, now - stats.oldest_queued_at)
        if stream.status is Status.ENABLED and stream.delivery.method == PUSH_METHOD:
            health = await hub.store.get_health(stream.stream_id)
            failing += health.consecutive_failures > 0
    metrics.QUEUE_DEPTH.set(depth)
    metrics.OLDEST_UNDELIVERED.set(oldest)
    metrics.STREAMS_FAILING.set(failing)
    metrics.STREAMS.clear()
    for (status, method), count in streams.items():
        metrics.STREAMS.labels(status=status, method=method).set(count)


async def metrics_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    if not hub.settings.metrics_public:
        await authorize(request, SCOPE_METRICS, SCOPE_ADMIN)
    state = request.app.state
    if time.monotonic() - getattr(state, "store_gauges_at", float("-inf")) >= STORE_GAUGES_TTL:
        await refresh_store_gauges(hub, hub.transmitter.clock())
        state.store_gauges_at = time.monotonic()
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)


def _registry() -> CollectorRegistry:
    """This process's metrics, or, under ``serve --processes``, every hub process's together."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
