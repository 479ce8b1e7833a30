"""Where verification keys come from: a fixed JWK Set, or a transmitter's ``jwks_uri``.

:class:`JwksCache` is the one JWKS cache of this code base: receivers verify SETs with it, and
the ssf-hub uses it for upstream issuers' SETs and for external OAuth issuers' access tokens.
It fetches with httpx and keeps the keys for ``max_age`` seconds. A ``kid`` it does not know
triggers a refetch (key rotation), at most once per ``min_refetch_interval`` after a good fetch
(``min_retry_interval`` after a failed one), so SETs or tokens with made-up ``kid`` values
cannot turn into a flood of fetches (R-SEC-2).

An unknown ``kid`` gets one of two answers: no keys (the SET is refused with ``invalid_key``)
when a fetch made after the ``kid`` was first asked for did not list it; or
:class:`~receivers.errors.KeysUnavailable` when no such fetch could be made yet (rate limit,
JWKS unreachable) — a rotation just after our last fetch must not turn a revocation into a
permanent refusal. A kid found absent is looked for again at the next allowed fetch, so a key
published a little after the first token it signed is picked up. A failed fetch (whatever the
cause) keeps the keys already held. Only asymmetric signature keys are kept; entries of an
unknown ``kty`` are skipped, not fatal (RFC 7517 §5).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from receivers.errors import KeysUnavailable

__all__ = ["JwksCache", "KeySource", "StaticKeys", "parse_jwks"]

log = logging.getLogger("receivers.jwks")
MAX_JWKS_BYTES = 256 * 1024
_MAX_ABSENT_KIDS = 1024  # made-up kids remembered as absent; more are simply asked again


class KeySource(Protocol):
    async def keys_for(self, kid: str | None) -> list[Key]:
        """The candidate verification keys for ``kid`` (all keys when ``kid`` is None)."""
        ...


def parse_jwks(doc: Any) -> list[Key]:
    """The usable public signature keys of a JWK Set document; ValueError when none."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
        raise ValueError("not a JWK Set")
    keys: list[Key] = []
    for entry in doc["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") == "oct" or entry.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            keys.append(import_key(public))
        except (JoseError, ValueError, TypeError, KeyError):
            continue
    if not keys:
        raise ValueError("the JWK Set has no usable keys")
    return keys


def _select(keys: Iterable[Key], kid: str | None) -> list[Key]:
    return [k for k in keys if kid is None or k.kid == kid]


class StaticKeys:
    """Keys known in advance (a pinned JWK Set, or keys in a test)."""

    def __init__(self, keys: Mapping[str, Any] | Iterable[Key]) -> None:
        self.keys = parse_jwks(keys) if isinstance(keys, Mapping) else list(keys)

    async def keys_for(self, kid: str | None) -> list[Key]:
        return _select(self.keys, kid)


class JwksCache:
    """A transmitter's (or issuer's) JWK Set fetched over HTTP, cached, refetched on rotation."""

    def __init__(
        self,
        jwks_uri: str,
        *,
        http: httpx.AsyncClient,
        max_age: float = 3600.0,
        min_refetch_interval: float = 10.0,
        min_retry_interval: float | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_uri = jwks_uri
        self.http = http
        self.max_age = max_age
        self.min_refetch_interval = min_refetch_interval
        self.min_retry_interval = min_refetch_interval if min_retry_interval is None else min_retry_interval
        self.timeout = timeout
        self.clock = clock
        self.fetches = 0  # attempts, for observability and tests
        self.last_error: str | None = None  # why the last fetch failed (None after a good one)
        self._keys: list[Key] | None = None
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._absent: set[str] = set()  # kids asked for before the last good fetch, not in it
        self._last_ok = False
        self._lock = asyncio.Lock()

    @property
    def has_keys(self) -> bool:
        """Whether a fetch has ever succeeded (keys are held, perhaps stale)."""
        return self._keys is not None

    async def keys_for(self, kid: str | None) -> list[Key]:
        if self._wants_fetch(kid) and self._may_fetch():
            async with self._lock:
                if self._wants_fetch(kid) and self._may_fetch():  # concurrent callers fetch once
                    await self.refresh(looking_for=kid)
        if self._keys is None:
            why = f" (last fetch: {self.last_error})" if self.last_error else ""
            raise KeysUnavailable(f"no keys from {self.jwks_uri} yet{why}", retry_after=self._retry_after())
        found = _select(self._keys, kid)
        if found or kid is None or kid in self._absent:
            return found
        raise KeysUnavailable(f"kid {kid[:64]!r} not looked up yet", retry_after=self._retry_after())

    async def refresh(self, *, looking_for: str | None = None) -> bool:
        """Fetch now (no rate limit); on failure keep the keys held, log, return False."""
        self._attempted_at = self.clock()
        self.fetches += 1
        try:
            keys = parse_jwks(await self._fetch())
        except Exception as exc:  # any failure (HTTP, TLS, JSON, nesting) keeps what was held
            self._last_ok = False
            self.last_error = _describe(exc)
            log.warning("fetching JWKS %s failed: %s", self.jwks_uri, self.last_error)
            return False
        self._keys = keys
        self._fetched_at = self._attempted_at
        self._last_ok = True
        self.last_error = None
        # Every kid asked for so far was asked before this fetch: those it lacks are absent.
        asked = self._absent | ({looking_for} if looking_for is not None else set())
        known = {k.kid for k in keys}
        self._absent = {kid for kid in asked if kid not in known}
        if len(self._absent) > _MAX_ABSENT_KIDS:
            self._absent = {looking_for} - known if looking_for is not None else set()
        return True

    def _retry_after(self) -> float:
        if self._attempted_at is None:
            return 1.0
        return max(1.0, self._interval() - (self.clock() - self._attempted_at))

    def _interval(self) -> float:
        return self.min_refetch_interval if self._last_ok else self.min_retry_interval

    def _wants_fetch(self, kid: str | None) -> bool:
        if self._keys is None or self._fetched_at is None:
            return True
        if self.clock() - self._fetched_at >= self.max_age:
            return True
        return kid is not None and not _select(self._keys, kid)

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self.clock() - self._attempted_at >= self._interval()

    async def _fetch(self) -> Any:
        body = bytearray()
        async with self.http.stream(
            "GET", self.jwks_uri, timeout=self.timeout, headers={"Accept": "application/json"}
        ) as resp:
            if resp.status_code != 200:
                raise ValueError(f"HTTP {resp.status_code}")
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWK Set too large")
        return json.loads(body)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:  # the one an operator must act on: say it plainly
        return f"TLS: the server's certificate is not trusted ({text[:200]})"
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
