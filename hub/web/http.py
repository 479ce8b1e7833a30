"""HTTP plumbing shared by the routes: bounded JSON bodies, bearer auth, one error shape."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.access import Principal, TokenValidator, require_scope
from hub.errors import HubError, InvalidRequest, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable
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
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON ({type(exc).__name__})") from None


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259) though Python's parser accepts them.
    raise ValueError(f"{name} is not valid JSON")


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


def log_refusal(request: Request, exc: HubError) -> None:
    # Status and err only: descriptions may echo input, and tokens or SETs never belong in logs.
    log.info("refused %s %s: %s %s", request.method, request.url.path, exc.status_code, exc.err)


async def handle_hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    log_refusal(request, exc)
    return error_response(exc)


async def handle_store_outage(request: Request, exc: Exception) -> Response:
    # The store (Redis) is unreachable: fail fast and say when to come back, not a 500.
    log.warning("store unreachable on %s %s: %s", request.method, request.url.path, describe_outage(exc))
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
