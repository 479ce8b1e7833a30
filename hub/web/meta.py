"""Discovery (R-DISC-*), the JWKS and the health check."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.core.discovery import issuer_path, metadata, well_known_path
from hub.web.http import STORE_OUTAGE, hub_of, json_response
from hub.web.openapi import openapi_document


async def configuration_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    return json_response(
        metadata(
            hub.settings.issuer_url,
            delivery_methods=hub.policy.delivery_methods,
            default_subjects=hub.settings.default_subjects,
        ),
        cache=True,
    )


async def openapi_endpoint(request: Request) -> Response:
    issuer = hub_of(request).settings.issuer_url
    return json_response(openapi_document(issuer, issuer_path(issuer), well_known_path(issuer)), cache=True)


async def jwks_endpoint(request: Request) -> Response:
    return json_response(hub_of(request).keys.jwks(), cache=True)


async def healthz_endpoint(request: Request) -> Response:
    ok = await hub_of(request).store.ping()
    if ok:
        STORE_OUTAGE.answered()
    else:
        STORE_OUTAGE.failed("the store did not answer a ping")
    return json_response({"status": "ok" if ok else "store unavailable"}, 200 if ok else 503)
