"""``POST /ssf/ingest``: upstream transmitters push SETs in (RFC 8935, DESIGN.md contract).

The bearer token (scope ``ssf.ingest``) is checked before the body is read and before any
cryptography (R-PUSH-10, R-SEC-9); the body is bounded (413) and must be
``application/secevent+jwt``. ``202`` means the SET and everything it caused are durable
(R-PUSH-3, R-PUSH-4); a refusal is ``400 {"err", "description"}`` (R-PUSH-5, R-PUSH-6).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.access import SCOPE_INGEST
from hub.core.secevent import SET_MEDIA_TYPE
from hub.errors import HubError, InvalidRequest, PayloadTooLarge
from hub.web.context import hub_of
from hub.web.http import NO_STORE, authorize, error_response, log_refusal

# R-PUSH-5: a description goes with Content-Language; ours are English.
_ERROR_HEADERS = {"Content-Language": "en"}


async def ingest_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    try:
        await authorize(request, SCOPE_INGEST)
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != SET_MEDIA_TYPE:
            raise InvalidRequest(f"the body must be one SET with Content-Type {SET_MEDIA_TYPE}")
        body = await _read_body(request, hub.settings.max_body_bytes)
        await hub.ingest.accept(body)
    except HubError as exc:
        log_refusal(request, exc)
        response = error_response(exc)
        response.headers.update(_ERROR_HEADERS)
        return response
    return Response(status_code=202, headers=NO_STORE)


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("bad Content-Length header")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
    return bytes(body)
