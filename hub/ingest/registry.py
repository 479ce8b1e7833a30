"""The trusted-issuer registry as the running hub sees it: the store, read through a short cache.

``ssf-hub issuers add`` writes to the store from another process, and a hub replica may change
it too, so every process re-reads the store's registry version at most once per ``ttl``
seconds (and at most once per ``miss_ttl`` when asked for an issuer it does not know, so a
just-added issuer is seen at once while a flood of strangers cannot hammer the store). The
whole registry is re-read only when that version changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from hub.core.events import resolve_event_type
from hub.core.issuers import TrustedIssuer, parse_trusted_issuer
from hub.errors import InvalidRequest
from hub.store.base import Store
from receivers.jwks import parse_jwks

DEFAULT_TTL = 1.0
DEFAULT_MISS_TTL = 0.2


class IssuerRegistry:
    def __init__(
        self,
        store: Store,
        *,
        ttl: float = DEFAULT_TTL,
        miss_ttl: float = DEFAULT_MISS_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self.clock = clock
        self._by_iss: dict[str, TrustedIssuer] = {}
        self._version: int | None = None
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, iss: str) -> TrustedIssuer | None:
        """The trusted issuer ``iss``, or None when it is not registered."""
        found = self._by_iss.get(iss)
        age = self.clock() - self._checked_at
        if age >= self.ttl or (found is None and age >= self.miss_ttl):
            await self.refresh()
            found = self._by_iss.get(iss)
        return found

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read the store's version, and the registry when it changed (or ``force``)."""
        async with self._lock:
            version = await self.store.issuers_version()
            if force or version != self._version:
                issuers = await self.store.list_issuers()
                self._by_iss = {issuer.iss: issuer for issuer in issuers}
                self._version = version
            self._checked_at = self.clock()

    def is_registered(self, iss: str) -> bool:
        """Whether ``iss`` was registered at the last read (no store call: for labels)."""
        return iss in self._by_iss

    async def all_issuers(self) -> list[TrustedIssuer]:
        await self.refresh()
        return sorted(self._by_iss.values(), key=lambda issuer: issuer.iss)

    async def put(self, issuer: TrustedIssuer) -> None:
        await self.store.put_issuer(issuer)
        await self.refresh(force=True)

    async def remove(self, iss: str) -> bool:
        removed = await self.store.remove_issuer(iss)
        await self.refresh(force=True)
        return removed


def canonical_event_uri(name_or_uri: str) -> str:
    """The URI ingest sees an event type as: current name, deprecated types mapped (R-RISC-9)."""
    event_type = resolve_event_type(name_or_uri)
    return event_type.superseded_by or event_type.uri


def parse_registration(body: Any, *, now: float) -> TrustedIssuer:
    """An issuer registration (admin API body, CLI flags) checked, inline keys imported once."""
    issuer = parse_trusted_issuer(body, resolve_event=canonical_event_uri, added_at=now)
    if issuer.jwks is not None:
        try:
            parse_jwks(issuer.jwks)
        except ValueError as exc:
            raise InvalidRequest(f"jwks: {exc}") from None
    return issuer
