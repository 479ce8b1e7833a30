"""What is refused before any route runs: query strings no handler should have to interpret.

A query parameter given twice (``?stream_id=a&stream_id=b``) is ambiguous: Starlette's
``query_params.get`` takes the last one, a proxy or a log reader may take the first, and the
two would then disagree on which stream a request was about. The hub answers 400 instead, for
every route, so no handler carries its own special case.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.errors import InvalidRequest
from hub.web.http import STORE_OUTAGE, error_response, log_refusal

MAX_QUERY_PARAMETERS = 32  # the SSF API uses at most two


def query_problem(query_string: bytes) -> str | None:
    """Why the query string is refused, or None when it is acceptable."""
    if not query_string:
        return None
    try:
        pairs = parse_qsl(
            query_string.decode("latin-1"),
            keep_blank_values=True,
            max_num_fields=MAX_QUERY_PARAMETERS,
        )
    except ValueError:
        return f"more than {MAX_QUERY_PARAMETERS} query parameters"
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            return f"query parameter {name[:64]!r} is given more than once"
        seen.add(name)
    return None


class RequestGuard:
    """ASGI middleware answering 400 ``invalid_request`` for a refused query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = query_problem(scope.get("query_string", b""))
            if problem is not None:
                exc = InvalidRequest(problem)
                log_refusal(Request(scope), exc)
                await error_response(exc)(scope, receive, send)
                return
            if STORE_OUTAGE.since is not None:  # only during an outage: watch for the first 2xx
                await self.app(scope, receive, _watching_for_success(send))
                return
        await self.app(scope, receive, send)


def _watching_for_success(send: Send) -> Send:
    async def watched(message: Message) -> None:
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
            STORE_OUTAGE.answered()
        await send(message)

    return watched
