"""Admin API for the trusted-issuer registry (scope ``ssf.admin``).

``GET {admin}/issuers`` lists, ``POST {admin}/issuers`` adds or replaces one (201 / 200),
``GET`` and ``DELETE {admin}/issuers/{iss}`` read and remove one (``iss`` percent-encoded).
Changes take effect on every hub process sharing the store within a second.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.auth.tokens import SCOPE_ADMIN
from hub.errors import NotFound
from hub.ingest.registry import parse_registration
from hub.web.http import audit, authorize, empty_response, hub_of, json_response, read_json


async def issuers_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_ADMIN)
    if request.method == "GET":
        return json_response([issuer.public_view() for issuer in await hub.issuers.all_issuers()])
    body = await read_json(request, hub.settings.max_body_bytes)
    issuer = parse_registration(body, now=hub.transmitter.clock())
    existed = await hub.store.get_issuer(issuer.iss) is not None
    await hub.issuers.put(issuer)
    await audit(hub, "issuer_updated" if existed else "issuer_added", principal, issuer=issuer.iss)
    return json_response(issuer.public_view(), 200 if existed else 201)


async def issuer_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_ADMIN)
    iss = request.path_params["iss"]
    if request.method == "DELETE":
        if not await hub.issuers.remove(iss):
            raise NotFound(f"no trusted issuer {iss}")
        await audit(hub, "issuer_removed", principal, issuer=iss)
        return empty_response(204)
    issuer = await hub.store.get_issuer(iss)
    if issuer is None:
        raise NotFound(f"no trusted issuer {iss}")
    return json_response(issuer.public_view())
