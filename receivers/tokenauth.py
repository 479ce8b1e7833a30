"""``CachedTokenAuth``: an ``httpx.Auth`` that takes tokens from a :class:`TokenCache`.

An agent calls a tool with a token for a user. The token comes from your async ``source``
(token exchange at the authorization server, a Txn-Token service...) and is kept in the cache
under ``key``, filed under the subjects it speaks for. When a signal drops it from the cache
(session-revoked for the user, an event about the agent's workload identity...), the next
request calls ``source`` again: the agent re-acquires instead of reusing a dead credential. A
``401 invalid_token`` from the tool does the same, once per request.

Access tokens go in ``Authorization: Bearer``; Txn-Tokens in the ``Txn-Token`` header, never in
``Authorization`` (R-TXN-7).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Hashable, Sequence
from dataclasses import dataclass

import httpx

from receivers.oauth import is_invalid_token
from receivers.subjects import Subject
from receivers.tokens import CachedToken, TokenCache, TokenKind

__all__ = ["CachedTokenAuth", "IssuedToken"]


@dataclass(frozen=True)
class IssuedToken:
    """What a token source returns when it knows more than the token's own claims say."""

    token: str
    expires_at: float | None = None
    issued_at: float | None = None
    subjects: Sequence[Subject] | None = None


TokenFactory = Callable[[], Awaitable["str | IssuedToken"]]


class CachedTokenAuth(httpx.Auth):
    def __init__(
        self,
        cache: TokenCache,
        source: TokenFactory,
        *,
        key: Hashable,
        kind: TokenKind = TokenKind.ACCESS,
        issuer: str | None = None,
    ) -> None:
        self.cache = cache
        self.source = source
        self.key = key
        self.kind = kind
        self.issuer = issuer
        self.acquisitions = 0  # how many times ``source`` was called
        self._lock = asyncio.Lock()

    async def current(self, *, rejected: str | None = None) -> CachedToken:
        """The cached token, acquiring a new one when there is none (or it is ``rejected``)."""
        async with self._lock:
            entry = self.cache.get(self.key)
            if entry is not None and (rejected is None or entry.token != rejected):
                return entry
            issued = await self.source()
            self.acquisitions += 1
            if isinstance(issued, str):
                issued = IssuedToken(issued)
            return self.cache.put(
                self.key,
                issued.token,
                kind=self.kind,
                subjects=issued.subjects,
                expires_at=issued.expires_at,
                issued_at=issued.issued_at,
                issuer=self.issuer,
            )

    def _apply(self, request: httpx.Request, token: str) -> None:
        if self.kind is TokenKind.TXN:
            request.headers["Txn-Token"] = token
        else:
            request.headers["Authorization"] = f"Bearer {token}"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("CachedTokenAuth needs an httpx.AsyncClient")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        entry = await self.current()
        self._apply(request, entry.token)
        response = yield request
        if is_invalid_token(response):
            await response.aread()
            entry = await self.current(rejected=entry.token)
            self._apply(request, entry.token)
            yield request
