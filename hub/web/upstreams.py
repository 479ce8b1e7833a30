"""Admin endpoints for upstream subscriptions (scope ``ssf.admin``); changes apply at once."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.auth.tokens import SCOPE_ADMIN
from hub.errors import NotFound
from hub.upstreams.configuration import add_upstream, remove_upstream
from hub.web.http import audit, authorize, empty_response, hub_of, json_response, read_json


async def upstreams_endpoint(request: Request) -> Response:
    """GET: every upstream with its state (health, last event). POST: add one (201)."""
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_ADMIN)
    if request.method == "GET":
        return json_response([u.public_view() for u in await hub.store.list_upstreams()])
    body = await read_json(request, hub.settings.max_body_bytes)
    upstream = await add_upstream(hub.store, body, now=hub.transmitter.clock())
    await audit(hub, "upstream_added", principal, upstream_id=upstream.upstream_id)
    if hub.upstreams is not None:
        hub.upstreams.wake()
    return json_response(upstream.public_view(), 201)


async def upstream_endpoint(request: Request) -> Response:
    """GET one upstream; DELETE it (its stream at the transmitter is deleted too, best effort)."""
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_ADMIN)
    upstream_id = request.path_params["upstream_id"]
    if request.method == "DELETE":
        await remove_upstream(hub.store, upstream_id)
        await audit(hub, "upstream_removed", principal, upstream_id=upstream_id)
        if hub.upstreams is not None:
            hub.upstreams.wake()
        return empty_response(204)
    upstream = await hub.store.get_upstream(upstream_id)
    if upstream is None:
        raise NotFound(f"no upstream {upstream_id}")
    return json_response(upstream.public_view())
