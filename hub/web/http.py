"""HTTP plumbing shared by the routes: bounded JSON bodies, bearer auth, one error shape."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub import logs, metrics
from hub.auth.tokens import Principal, TokenValidator, require_scope
from hub.core.inputs import decode_json
from hub.core.model import AuditRecord
from hub.errors import (
    HubError,
    InvalidRequest,
    PayloadTooLarge,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from hub.runtime.context import HubContext
from hub.store.outages import OUTAGE_RETRY_AFTER, describe_outage

log = logging.getLogger("hub.web")

NO_STORE = {"Cache-Control": "no-store"}  # R-STREAM-14


async def read_json(request: Request, max_bytes: int, *, required: bool = True) -> Any:
    """The request body as JSON, refusing more than ``max_bytes`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
        except ValueError:
            raise InvalidRequest("bad Content-Length header") from None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
    if not body.strip():
        if required:
            raise InvalidRequest("a JSON request body is required")
        return {}
    return decode_json(bytes(body))


def hub_of(request: Request) -> HubContext:
    ctx: HubContext = request.app.state.hub
    return ctx


async def audit(
    hub: HubContext, kind: str, actor: Principal, stream_id: str | None = None, **detail: Any
) -> None:
    """A durable audit record of an admin action, naming who made it (GET /ssf/admin/audit)."""
    record = AuditRecord(hub.transmitter.clock(), kind, stream_id, {"actor": actor.sub, **detail})
    await hub.store.append_audit(record)


async def authorize(request: Request, *scopes: str) -> Principal:
    """Bearer token from the Authorization header only (RFC 6750 §2.1, CAEP interop 2.7.2)."""
    if "access_token" in request.query_params:
        raise Unauthorized(
            "access tokens are accepted only in the Authorization header", token_presented=True
        )
    validator: TokenValidator = request.app.state.hub.tokens
    principal = await validator.authenticate(request.headers.get("authorization"))
    require_scope(principal, *scopes)
    return principal


def json_response(data: Any, status_code: int = 200, *, cache: bool = False) -> JSONResponse:
    return JSONResponse(data, status_code=status_code, headers=None if cache else NO_STORE)


def empty_response(status_code: int) -> Response:
    return Response(status_code=status_code, headers=NO_STORE)


def error_response(exc: HubError) -> JSONResponse:
    headers = dict(NO_STORE)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = exc.www_authenticate
    if isinstance(exc, TooManyRequests | Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(exc.as_dict(), status_code=exc.status_code, headers=headers)


class StoreOutage:
    """One log line when the store becomes unavailable, one when it answers again."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self, reason: str) -> None:
        metrics.STORE_OUTAGES.inc()
        if self.since is None:
            self.since = time.monotonic()
            logs.event(log, logging.ERROR, "store_unavailable", reason=reason)

    def answered(self) -> None:
        if self.since is not None:
            logs.event(
                log, logging.WARNING, "store_recovered", after_s=round(time.monotonic() - self.since, 1)
            )
            self.since = None


STORE_OUTAGE = StoreOutage()


def log_refusal(request: Request, exc: HubError) -> None:
    # Status and err only: descriptions may echo input, and tokens or SETs never belong in logs.
    metrics.REQUESTS_REFUSED.labels(str(exc.status_code), exc.err).inc()
    log.info("refused %s %s: %s %s", request.method, request.url.path, exc.status_code, exc.err)


async def handle_hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    if isinstance(exc, StoreUnavailable):
        STORE_OUTAGE.failed(_cause(exc))
    log_refusal(request, exc)
    return error_response(exc)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__
    return describe_outage(cause) if cause is not None else str(exc)


async def handle_client_gone(request: Request, exc: Exception) -> Response:
    # The client went away mid-request (or was cut for sending too slowly): nobody to answer.
    log.debug("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=499)


async def handle_nesting(request: Request, exc: Exception) -> Response:
    log.warning("nested input past the decoders on %s %s", request.method, request.url.path)
    return await handle_hub_error(request, InvalidRequest("the request nests too deeply"))


async def handle_store_outage(request: Request, exc: Exception) -> Response:
    # The store (Redis) is unreachable: fail fast and say when to come back, not a 500.
    STORE_OUTAGE.failed(describe_outage(exc))
    log_refusal(request, Unavailable("store unreachable"))
    return error_response(
        Unavailable("the hub's store is unreachable; retry shortly", retry_after=OUTAGE_RETRY_AFTER)
    )


_HTTP_ERRS = {404: "not_found", 405: "method_not_allowed"}


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    err = _HTTP_ERRS.get(exc.status_code, "invalid_request")
    return JSONResponse(
        {"err": err, "description": str(exc.detail)},
        status_code=exc.status_code,
        headers={**NO_STORE, **(exc.headers or {})},
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not bad input: log it with the trace, answer without one.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"err": "server_error", "description": "internal error; see the hub log"}, status_code=500
    )
