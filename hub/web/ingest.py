"""``POST /ssf/ingest``: upstream transmitters push SETs in (RFC 8935, DESIGN.md contract).

The bearer token (scope ``ssf.ingest``) is checked before the body is read and before any
cryptography (R-PUSH-10, R-SEC-9); the body is bounded (413) and must be
``application/secevent+jwt``. ``202`` means the SET and everything it caused are durable
(R-PUSH-3, R-PUSH-4); a refusal is ``400 {"err", "description"}`` (R-PUSH-5, R-PUSH-6).
The ``202`` body stays empty (R-PUSH-4); when optional claims were repaired rather than
refused (:mod:`hub.core.tolerance`), the :data:`TOLERATED_HEADER` header lists them as
``event.member=action``, so the sender can see what it should fix.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from hub import logs, metrics
from hub.auth.tokens import SCOPE_INGEST
from hub.core.secevent import SET_MEDIA_TYPE
from hub.errors import HubError, InvalidRequest, PayloadTooLarge
from hub.ingest.pipeline import claimed_issuer, tolerated_summary
from hub.runtime.context import HubContext
from hub.web.http import NO_STORE, authorize, error_response, hub_of, log_refusal

log = logging.getLogger("hub.ingest")

TOLERATED_HEADER = "SSF-Hub-Tolerated"
# R-PUSH-5: a description goes with Content-Language; ours are English.
_ERROR_HEADERS = {"Content-Language": "en"}


async def ingest_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    body = b""
    try:
        await authorize(request, SCOPE_INGEST)
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != SET_MEDIA_TYPE:
            raise InvalidRequest(f"the body must be one SET with Content-Type {SET_MEDIA_TYPE}")
        body = await _read_body(request, hub.settings.max_body_bytes)
        result = await hub.ingest.accept(body)
    except HubError as exc:
        log_refusal(request, exc)
        iss = claimed_issuer(body) if body else None
        metrics.INGEST.labels(_issuer_label(hub, iss), exc.err).inc()
        # The sender got the reason; the operator gets it too (an IdP's lost revocation).
        logs.event(
            log,
            logging.WARNING,
            "ingest_refused",
            issuer=iss,
            status=exc.status_code,
            err=exc.err,
            description=exc.description,
        )
        response = error_response(exc)
        response.headers.update(_ERROR_HEADERS)
        return response
    metrics.INGEST.labels(_issuer_label(hub, result.iss), "accepted").inc()
    if not result.sets and not result.duplicate:
        metrics.EMITS_UNROUTED.inc()
    headers = dict(NO_STORE)
    if result.tolerated:
        headers[TOLERATED_HEADER] = tolerated_summary(result.tolerated)
    return Response(status_code=202, headers=headers)


def _issuer_label(hub: HubContext, iss: str | None) -> str:
    # Only issuers the operator registered become label values: a stranger's iss would let
    # anyone grow the metric's series without bound.
    return iss if iss is not None and hub.issuers.is_registered(iss) else "unregistered"


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
