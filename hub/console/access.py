"""Who may use the console, and reading its form posts: an ``ssf.admin`` bearer token from
the Authorization header only (never a cookie or the query string), bounded JSON bodies."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from hub.auth.tokens import SCOPE_ADMIN, Principal, require_scope
from hub.core.inputs import decode_json
from hub.errors import InvalidRequest, PayloadTooLarge, Unauthorized
from hub.runtime.context import HubContext


def hub_of(request: Request) -> HubContext:
    ctx: HubContext = request.app.state.hub
    return ctx


async def admin(request: Request) -> Principal:
    """The caller, when its bearer token holds ``ssf.admin``: else 401 (none, bad) or 403."""
    if "access_token" in request.query_params:
        raise Unauthorized(
            "access tokens are accepted only in the Authorization header", token_presented=True
        )
    principal = await hub_of(request).tokens.authenticate(request.headers.get("authorization"))
    require_scope(principal, SCOPE_ADMIN)
    return principal


async def read_form(request: Request) -> dict[str, Any]:
    """A console form, posted by the console script as one JSON object."""
    limit = hub_of(request).settings.max_body_bytes
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    form = decode_json(bytes(body)) if body.strip() else {}
    if not isinstance(form, dict):
        raise InvalidRequest("the body is the form's fields as one JSON object")
    return form
