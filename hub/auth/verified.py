"""Access tokens already verified, so a client's next request skips the signature check.

An agent or a poller sends the same bearer token on every request, and checking its
signature each time (about 100 µs for ES256) was the largest cost of authenticating it.
An entry keeps the claims and the issuer they were verified against; the claims (``exp``
above all) are still checked on every use, and an entry lives at most ``ttl`` seconds, so a
key that an external issuer withdraws stops being honoured within that time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]
    issuer: str
    verified_at: float


class VerifiedTokens:
    """A bounded, time-limited map from a token to the claims its verified signature covers."""

    def __init__(self, *, size: int = 4096, ttl: float = 60.0) -> None:
        self._size = size
        self._ttl = ttl
        self._entries: OrderedDict[str, VerifiedToken] = OrderedDict()

    def get(self, token: str, now: float) -> VerifiedToken | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if not 0 <= now - entry.verified_at < self._ttl:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry

    def put(self, token: str, claims: dict[str, Any], issuer: str, now: float) -> None:
        if self._size <= 0:
            return
        self._entries[token] = VerifiedToken(claims, issuer, now)
        self._entries.move_to_end(token)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget_issuer(self, issuer: str) -> None:
        """Drop what was verified with an issuer's old settings (removed or reconfigured)."""
        for token in [t for t, e in self._entries.items() if e.issuer == issuer]:
            del self._entries[token]

    def __len__(self) -> int:
        return len(self._entries)
