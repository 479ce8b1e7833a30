"""``CachedTokenAuth``: an ``httpx.Auth`` that takes tokens from a :class:`TokenCache`.

An agent calls a tool with a token for a user. The token comes from your ``source``, called
with the cache key (token exchange at the authorization server, a Txn-Token service...), and
is kept in the cache under that key, filed under the subjects it speaks for. When a signal
drops it from the cache (session-revoked for the user, an event about the agent's workload
identity...), the next request calls ``source`` again: the agent re-acquires instead of
reusing a dead credential. A ``401 invalid_token`` from the tool does the same, once per
request; when that ``401`` carries ``Retry-After`` (seconds; a service behind
:class:`~receivers.middleware.ContinuousAccessMiddleware` sends it when a revocation refused
the token: a token issued before ``revoked_at + 1 s`` would be refused too), the re-acquisition
waits that long first, at most ``max_retry_wait`` seconds.

One object serves every user and audience: the key is, in this order, the request's
``extensions["token_key"]``, ``key`` (a fixed value, or a function of the request), or the
context variable set by :func:`token_key` (``with token_key(("alice", "tools")): ...``).

Works with ``httpx.AsyncClient`` (``source`` may be async or not) and ``httpx.Client`` (then
``source`` must be a plain function). A ``source`` that takes no argument is still accepted.

Access tokens go in ``Authorization: Bearer``; Txn-Tokens in the ``Txn-Token`` header, never in
``Authorization`` (R-TXN-7).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Hashable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import httpx

from receivers.oauth import is_invalid_token
from receivers.subjects import Subject
from receivers.tokens import CachedToken, TokenCache, TokenKind

__all__ = ["CURRENT_TOKEN_KEY", "CachedTokenAuth", "IssuedToken", "token_key"]


@dataclass(frozen=True)
class IssuedToken:
    """What a token source returns when it knows more than the token's own claims say."""

    token: str
    expires_at: float | None = None
    issued_at: float | None = None
    subjects: Sequence[Subject] | None = None


TokenFactory = Callable[..., "str | IssuedToken | Awaitable[str | IssuedToken]"]
KeyFunction = Callable[[httpx.Request], Hashable]

CURRENT_TOKEN_KEY: ContextVar[Hashable | None] = ContextVar("receivers_token_key", default=None)
_UNSET = object()


@contextlib.contextmanager
def token_key(key: Hashable) -> Iterator[None]:
    """Requests made inside the block use ``key`` (e.g. ``(user, audience)``)."""
    reset = CURRENT_TOKEN_KEY.set(key)
    try:
        yield
    finally:
        CURRENT_TOKEN_KEY.reset(reset)


def _takes_key(source: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(source).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)


class CachedTokenAuth(httpx.Auth):
    """Tokens per key from ``cache``, acquired from ``source(key)``; see the module docstring."""

    def __init__(
        self,
        cache: TokenCache,
        source: TokenFactory,
        *,
        key: Hashable | KeyFunction = _UNSET,
        kind: TokenKind = TokenKind.ACCESS,
        issuer: str | None = None,
        max_retry_wait: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        sync_sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cache = cache
        self.source = source
        self.key = key
        self.kind = kind
        self.issuer = issuer
        self.max_retry_wait = max_retry_wait
        self.sleep = sleep
        self.sync_sleep = sync_sleep
        self.acquisitions = 0  # how many times ``source`` was called
        self._takes_key = _takes_key(source)
        # One lock per key while in use: a slow exchange for one user does not hold up the others.
        self._locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = weakref.WeakValueDictionary()
        self._sync_lock = threading.Lock()

    def key_for(self, request: httpx.Request | None = None) -> Hashable:
        """The cache key for ``request``: its ``token_key`` extension, ``key``, or the context's."""
        if request is not None and "token_key" in request.extensions:
            found: Hashable = request.extensions["token_key"]
            return found
        if self.key is not _UNSET:
            if callable(self.key) and not isinstance(self.key, tuple | str):
                if request is None:
                    raise LookupError("the token key depends on the request")
                return self.key(request)
            return self.key
        current = CURRENT_TOKEN_KEY.get()
        if current is None:
            raise LookupError("no token key: pass key=, set extensions['token_key'] or use token_key()")
        return current

    async def current(self, *, rejected: str | None = None, key: Hashable = _UNSET) -> CachedToken:
        """The cached token for ``key`` (default: :meth:`key_for`), acquiring a new one when
        there is none (or it is ``rejected``)."""
        key = self.key_for() if key is _UNSET else key
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            entry = self.cache.get(key)
            if entry is not None and (rejected is None or entry.token != rejected):
                return entry
            issued = self.source(key) if self._takes_key else self.source()
            if inspect.isawaitable(issued):
                issued = await issued
            return self._store(key, issued)

    def current_sync(self, *, rejected: str | None = None, key: Hashable = _UNSET) -> CachedToken:
        """:meth:`current` for ``httpx.Client``; ``source`` must not be async."""
        key = self.key_for() if key is _UNSET else key
        with self._sync_lock:
            entry = self.cache.get(key)
            if entry is not None and (rejected is None or entry.token != rejected):
                return entry
            issued = self.source(key) if self._takes_key else self.source()
            if inspect.isawaitable(issued):
                if inspect.iscoroutine(issued):
                    issued.close()
                raise TypeError("an async token source needs an httpx.AsyncClient")
            return self._store(key, issued)

    def _store(self, key: Hashable, issued: object) -> CachedToken:
        self.acquisitions += 1
        if isinstance(issued, str):
            issued = IssuedToken(issued)
        if not isinstance(issued, IssuedToken):
            raise TypeError("a token source returns a str or an IssuedToken")
        return self.cache.put(
            key,
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

    def retry_wait(self, response: httpx.Response) -> float:
        """How long to wait before re-acquiring after ``response`` (a 401): its integer
        ``Retry-After``, bounded by ``max_retry_wait``; 0 without one."""
        value = response.headers.get("retry-after", "").strip()
        if not value.isdigit():
            return 0.0
        return min(float(value), self.max_retry_wait)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self.key_for(request)
        entry = self.current_sync(key=key)
        self._apply(request, entry.token)
        response = yield request
        if is_invalid_token(response):
            response.read()
            wait = self.retry_wait(response)
            if wait:
                self.sync_sleep(wait)
            entry = self.current_sync(rejected=entry.token, key=key)
            self._apply(request, entry.token)
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        key = self.key_for(request)
        entry = await self.current(key=key)
        self._apply(request, entry.token)
        response = yield request
        if is_invalid_token(response):
            await response.aread()
            wait = self.retry_wait(response)
            if wait:
                await self.sleep(wait)
            entry = await self.current(rejected=entry.token, key=key)
            self._apply(request, entry.token)
            yield request
