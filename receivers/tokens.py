"""A cache of the credentials an agent holds, indexed by the subjects they speak for (pure).

Entries are access tokens, Txn-Tokens (R-TXN-*) or ID tokens, each under a key the caller
chooses (say ``("alice", "https://tools.example.com")``). Each entry is filed under the
principals it acts for — by default read from its claims by
:func:`~receivers.principals.principals_from_claims`: the user, every actor of an ``act``
chain, a Txn-Token's requesting workload, the OAuth client. So:

- a session-revoked for Alice drops every token acting for Alice, whichever agent holds it;
- an event about an agent's workload identity (``{"format": "uri", "uri": "spiffe://..."}``)
  drops the tokens naming that agent as actor or requesting workload, and — when the cache
  was built with that identity in ``holder`` — everything the cache holds;
- a tenant-wide event (``{"format": "complex", "tenant": ...}``) drops every token of that
  tenant (a missing complex member is a wildcard, R-SUB-10).

Entries expire ``expiry_margin`` seconds before their ``exp`` so a token is never handed out
just before it lapses. The clock is injected; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from receivers.index import SubjectIndex
from receivers.principals import principals_from_claims, unverified_claims
from receivers.subjects import Subject, subjects_match

__all__ = ["CachedToken", "TokenCache", "TokenKind", "fingerprint"]


class TokenKind(StrEnum):
    ACCESS = "access_token"
    TXN = "txn_token"
    ID = "id_token"


def fingerprint(token: str) -> str:
    """What audit records name a token by: never the token itself (R-SEC-11)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CachedToken:
    key: Hashable
    token: str = field(repr=False)
    kind: TokenKind
    subjects: tuple[Subject, ...]
    issued_at: float | None
    expires_at: float | None
    txn: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.token)


class TokenCache:
    """Tokens by key, and the keys by subject; see the module docstring.

    ``holder``: the subjects of whoever holds this cache (an agent's workload identity); an
    event about them drops every entry. ``name`` labels audit records.
    """

    def __init__(
        self,
        *,
        name: str = "tokens",
        holder: Sequence[Subject] = (),
        expiry_margin: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.holder = tuple(holder)
        self.expiry_margin = expiry_margin
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, CachedToken] = OrderedDict()
        self._index: SubjectIndex[Hashable] = SubjectIndex()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def entries(self) -> list[CachedToken]:
        return list(self._entries.values())

    def put(
        self,
        key: Hashable,
        token: str,
        *,
        kind: TokenKind = TokenKind.ACCESS,
        subjects: Iterable[Subject] | None = None,
        expires_at: float | None = None,
        issued_at: float | None = None,
        issuer: str | None = None,
    ) -> CachedToken:
        """Cache ``token`` under ``key``; missing ``subjects``/``expires_at``/``issued_at`` come
        from the token's own (unverified) claims, which is fine for a token this process got
        from its authorization server. ``issuer`` names a Txn-Token's service when it has no ``iss``.
        """
        claims = (
            unverified_claims(token) if subjects is None or expires_at is None or issued_at is None else {}
        )
        if subjects is None:
            subjects = principals_from_claims(claims, issuer=issuer)
        if expires_at is None:
            exp = claims.get("exp")
            expires_at = float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
        if issued_at is None:
            iat = claims.get("iat")
            issued_at = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None
        txn = claims.get("txn")
        entry = CachedToken(
            key=key,
            token=token,
            kind=kind,
            subjects=tuple(subjects),
            issued_at=issued_at,
            expires_at=expires_at,
            txn=txn if isinstance(txn, str) else None,
        )
        self.drop(key)
        self._entries[key] = entry
        self._index.add(key, entry.subjects)
        while len(self._entries) > self.max_entries:
            oldest = next(iter(self._entries))
            self.drop(oldest)
        return entry

    def get(self, key: Hashable) -> CachedToken | None:
        """The cached entry, or None when absent or (about to be) expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at - self.expiry_margin <= self.clock():
            self.drop(key)
            return None
        return entry

    def drop(self, key: Hashable) -> CachedToken | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._index.remove(key)
        return entry

    def matching(self, subject: Subject) -> list[CachedToken]:
        """Entries an event about ``subject`` concerns (everything if it names the holder)."""
        if any(subjects_match(h, subject) for h in self.holder):
            return list(self._entries.values())
        return [self._entries[k] for k in self._index.matching(subject)]

    def invalidate(self, subject: Subject, *, issued_before: float | None = None) -> list[CachedToken]:
        """Drop and return every entry an event about ``subject`` concerns; with
        ``issued_before``, only those issued at or before it (or without ``iat``): a token fetched
        after a revocation is not dropped by a stale event about it."""
        dropped = [
            entry
            for entry in self.matching(subject)
            if issued_before is None or entry.issued_at is None or entry.issued_at <= issued_before
        ]
        for entry in dropped:
            self.drop(entry.key)
        return dropped

    def clear(self) -> None:
        for key in list(self._entries):
            self.drop(key)
