"""``ContinuousAccessMiddleware``: refuse requests from revoked or denied callers (pure ASGI).

For every HTTP request (and WebSocket handshake) it asks the identity who is calling
(:mod:`receivers.identity`), then asks :meth:`ContinuousAccess.check`:

- a credential issued at or before a revocation of one of its subjects (session-revoked,
  credential-change...) → ``401`` with ``WWW-Authenticate: Bearer error="invalid_token"``
  (RFC 6750 §3.1), until the caller re-authenticates: a token issued after the revocation
  passes;
- a subject policy now denies (risk HIGH, device non-compliant, your policy) → ``403``;
- a token that fails verification → ``401 invalid_token`` as well;
- no credential → passed through (the app's own authentication decides), unless
  ``require_caller=True`` (then ``401`` with ``WWW-Authenticate: Bearer``).

Responses are streamed through untouched (no buffering), so it sits in front of
server-sent-event LLM streams. Every refusal is audited with the SET that caused it.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from receivers.continuous import ContinuousAccess, Verdict
from receivers.errors import TokenError
from receivers.identity import Caller, Identity

__all__ = ["ContinuousAccessMiddleware"]

log = logging.getLogger("receivers.middleware")


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")[:200]


class ContinuousAccessMiddleware:
    """ASGI middleware: 401 for revoked credentials, 403 where policy denies, otherwise the app."""

    def __init__(
        self, app: ASGIApp, access: ContinuousAccess, *, identity: Identity, require_caller: bool = False
    ) -> None:
        self.app = app
        self.access = access
        self.identity = identity
        self.require_caller = require_caller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            caller = await self.identity(headers)
        except TokenError as exc:
            await self._refuse(
                scope, send, 401, "invalid_token", exc.args[0] if exc.args else "invalid token"
            )
            return
        if caller is None:
            if self.require_caller:
                await self._refuse(scope, send, 401, None, "authentication required")
                return
            await self.app(scope, receive, send)
            return
        verdict = self.access.check(caller)
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        self._audit(scope, caller, verdict)
        error = "invalid_token" if verdict.status == 401 else "access_denied"
        await self._refuse(scope, send, verdict.status, error, verdict.reason)

    def _audit(self, scope: Scope, caller: Caller, verdict: Verdict) -> None:
        self.access.record_refusal(
            caller, verdict, method=scope.get("method", "WEBSOCKET"), path=scope.get("path", "")
        )

    async def _refuse(
        self, scope: Scope, send: Send, status: int, error: str | None, description: str
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": description[:120]})
            return
        if status == 401:
            challenge = (
                "Bearer"
                if error is None
                else f'Bearer error="{error}", error_description="{_quote(description)}"'
            )
        else:
            challenge = None
        body = json.dumps({"error": error or "unauthorized", "error_description": description}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if challenge is not None:
            headers.append((b"www-authenticate", challenge.encode("latin-1", "replace")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
