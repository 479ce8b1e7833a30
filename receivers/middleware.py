"""``ContinuousAccessMiddleware``: refuse requests from revoked or denied callers (pure ASGI).

For every HTTP request (and WebSocket handshake) it asks the identity who is calling
(:mod:`receivers.identity`), then asks :meth:`ContinuousAccess.check`:

- a credential issued at or before a revocation of one of its subjects (session-revoked,
  credential-change...) → ``401`` with ``WWW-Authenticate: Bearer error="invalid_token"``
  (RFC 6750 §3.1) and ``Retry-After``: the whole seconds until a token issued now postdates the
  revocation (``iat`` has whole seconds, so a token minted in the revocation's second is refused
  too); a client re-authenticates after that and passes. ``Retry-After`` is only on ``401``\\ s
  caused by a revocation;
- a subject policy now denies (risk HIGH, device non-compliant, your policy) → ``403``;
- a token that fails verification → ``401 invalid_token`` as well;
- no credential → ``401`` with ``WWW-Authenticate: Bearer`` (``require_caller=True``, the
  default); with ``require_caller=False`` such requests pass and the app's own authentication
  decides — then this middleware protects nothing for them, so only choose it knowingly;
- the access state cannot be read (a Redis store is down) → ``503`` with ``Retry-After``: a
  gateway that cannot tell whether a caller was revoked does not guess.

The verified caller is handed to the app in ``scope["state"]["caller"]`` (Starlette:
``request.state.caller``), a :class:`~receivers.caller.Caller`.

**Fail-closed feeds.** Given ``feed`` (a :class:`~receivers.poll.PollConsumer`, or anything with
``last_success_at`` and ``error``) and ``max_feed_age``, every request is answered ``503`` with
``Retry-After: feed_retry_after`` while the feed's last success is older than ``max_feed_age``
seconds (before the feed's first success: since the middleware was created), or at once when
the stream is gone (``error`` set). The trade-off: failing closed turns
an outage of the hub (or of the link to it) into an outage of your gateway; failing open keeps
serving callers who may have been revoked meanwhile. The default is open (no ``feed``), as
before; a gateway in front of sensitive tools should pass its feed. Choose ``max_feed_age``
above the transmitter's long-poll wait (the hub holds an idle poll 20 s by default) plus the
consumer's back-off, or an idle but healthy feed looks stale.

**Long-lived responses.** Responses are streamed through untouched (no buffering), so it sits in
front of server-sent-event LLM streams. The check happens when a request starts; with
``cut_revoked_streams=True`` an HTTP response or WebSocket still running is re-checked whenever
the access state changes (a local revocation, or one recorded by another replica and heard
through the store) and every ``recheck_interval`` seconds, and is cut when its caller is now
refused: a response that has not started gets the refusal, a started one ends (its body is
closed), a WebSocket is closed with ``1008``. Off by default: cutting a stream mid-answer is a
product decision.

Every refusal is audited with the SET that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receivers.continuous import ContinuousAccess, Verdict
from receivers.errors import TokenError
from receivers.identity import Caller, Identity

__all__ = ["ContinuousAccessMiddleware", "FeedHealth"]

log = logging.getLogger("receivers.middleware")


class FeedHealth(Protocol):
    """What the middleware reads of a feed (a :class:`~receivers.poll.PollConsumer`)."""

    @property
    def last_success_at(self) -> float | None: ...

    @property
    def error(self) -> BaseException | None: ...


class _Changes:
    """Wakes whoever waits (the middleware's stream guards) when access state changed."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, within: float) -> None:
        """Return on the next change, or after ``within`` seconds."""
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), within)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")[:200]


@dataclass
class _Exchange:
    """One request's response as the app sends it."""

    started: bool = False
    finished: bool = False
    cut: bool = False


class ContinuousAccessMiddleware:
    """ASGI middleware: 401 for revoked credentials, 403 where policy denies, otherwise the app."""

    def __init__(
        self,
        app: ASGIApp,
        access: ContinuousAccess,
        *,
        identity: Identity,
        require_caller: bool = True,
        feed: FeedHealth | None = None,
        max_feed_age: float = 60.0,
        feed_retry_after: int = 5,
        cut_revoked_streams: bool = False,
        recheck_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.access = access
        self.identity = identity
        self.require_caller = require_caller
        self.feed = feed
        self.max_feed_age = max_feed_age
        self.feed_retry_after = feed_retry_after
        self.cut_revoked_streams = cut_revoked_streams
        self.recheck_interval = recheck_interval
        self.clock = clock
        self.created_at = clock()
        self.refused_for_feed = 0
        self._changes = _Changes()
        access.on_change(self._changes.notify)

    def feed_fresh(self) -> bool:
        """Whether the feed is fresh enough to serve (always, without a feed)."""
        if self.feed is None:
            return True
        if self.feed.error is not None:
            return False
        last = self.feed.last_success_at
        return self.clock() - (self.created_at if last is None else last) <= self.max_feed_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self.feed_fresh():
            self.refused_for_feed += 1
            await self._unavailable(scope, send, "the revocation feed is stale", self.feed_retry_after)
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
        try:
            verdict = await self.access.check(caller)
        except Exception:  # the state store is down: do not guess
            log.exception("could not check the caller against the access state")
            await self._unavailable(scope, send, "access state unavailable", self.feed_retry_after)
            return
        if not verdict.allowed:
            await self._refuse_verdict(scope, send, caller, verdict)
            return
        scope.setdefault("state", {})["caller"] = caller
        if self.cut_revoked_streams:
            await self._guarded(scope, receive, send, caller)
        else:
            await self.app(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """Run the app while re-checking ``caller``; cut the response when it is refused."""
        exchange = _Exchange()

        async def tracked(message: Message) -> None:
            if exchange.cut:
                return
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept"):
                exchange.started = True
            elif (kind == "http.response.body" and not message.get("more_body", False)) or (
                kind == "websocket.close"
            ):
                exchange.finished = True
            await send(message)

        app = asyncio.ensure_future(self.app(scope, receive, tracked))
        watch = asyncio.ensure_future(self._watch(caller, exchange))
        try:
            await asyncio.wait({app, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not app.done() and not watch.done():  # we were cancelled
                app.cancel()
                watch.cancel()
        verdict = watch.result() if watch.done() and not watch.cancelled() else None
        if verdict is None or app.done():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            await app
            return
        app.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app
        exchange.cut = True
        self._audit(scope, caller, verdict, cut=True)
        log.info("cut a %s response: %s", scope["type"], verdict.reason)
        if not exchange.started:
            await self._refuse(
                scope, send, verdict.status, _error(verdict), verdict.reason, verdict.retry_after
            )
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": verdict.reason[:120]})
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _watch(self, caller: Caller, exchange: _Exchange) -> Verdict | None:
        while True:
            await self._changes.wait(self.recheck_interval)
            if exchange.finished:
                return None
            try:
                verdict = await self.access.check(caller)
            except Exception:  # keep the stream; the next check may reach the store again
                log.exception("could not re-check a streaming caller")
                continue
            if not verdict.allowed:
                return verdict

    def _audit(self, scope: Scope, caller: Caller, verdict: Verdict, **detail: Any) -> None:
        self.access.record_refusal(
            caller, verdict, method=scope.get("method", "WEBSOCKET"), path=scope.get("path", ""), **detail
        )

    async def _refuse_verdict(self, scope: Scope, send: Send, caller: Caller, verdict: Verdict) -> None:
        self._audit(scope, caller, verdict)
        await self._refuse(scope, send, verdict.status, _error(verdict), verdict.reason, verdict.retry_after)

    async def _unavailable(self, scope: Scope, send: Send, description: str, retry_after: int) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013, "reason": description})  # try again later
            return
        await _send_json(
            send, 503, "temporarily_unavailable", description, [(b"retry-after", str(retry_after).encode())]
        )

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        error: str | None,
        description: str,
        retry_after: int | None = None,
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": description[:120]})
            return
        headers: list[tuple[bytes, bytes]] = []
        if status == 401:
            challenge = (
                "Bearer"
                if error is None
                else f'Bearer error="{error}", error_description="{_quote(description)}"'
            )
            headers.append((b"www-authenticate", challenge.encode("latin-1", "replace")))
        if retry_after is not None:
            headers.append((b"retry-after", str(max(0, math.ceil(retry_after))).encode()))
        await _send_json(send, status, error or "unauthorized", description, headers)


def _error(verdict: Verdict) -> str:
    return "invalid_token" if verdict.status == 401 else "access_denied"


async def _send_json(
    send: Send, status: int, error: str, description: str, extra: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
