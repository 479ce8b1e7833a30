"""Revoked subjects and sessions, and whether a credential predates a revocation (pure).

A revocation (session-revoked, credential-change, account-disabled, ...) is kept for
``retention`` seconds — it must outlive every token issued before it, so choose at least the
longest token lifetime in use. A credential is refused when one of its subjects matches a
revoked subject (SSF matching, R-SUB-10) and it was issued at or before the revocation time:
re-authenticating yields a token issued later, which is accepted. A credential without
``iat`` cannot show it is newer and is refused while the revocation is kept.

The revocation time is the event's ``event_timestamp`` (when the identity provider revoked),
else the SET's ``iat``, and never later than when the receiver learned of it — a clock running
ahead at the transmitter must not lock users out after they sign in again.

``iat`` has whole seconds, so a token minted in the same second as the revocation cannot show
it is newer and is refused too: :func:`retry_after` says how long a client waits before
re-authenticating (the middleware sends it as ``Retry-After`` on such a ``401``).

A revocation is recorded once per (``iss``, ``jti``, subject): a redelivered SET changes nothing.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from receivers.index import SubjectIndex
from receivers.subjects import Subject, subject_key

__all__ = ["Revocation", "RevocationList", "credential_predates", "retry_after"]


@dataclass(frozen=True)
class Revocation:
    subject: Subject
    revoked_at: float
    event_type: str
    jti: str
    iss: str
    txn: str | None = None
    reason: str = ""
    recorded_at: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict, compare=False)


def credential_predates(revocation: Revocation, issued_at: float | None) -> bool:
    """Whether a credential issued at ``issued_at`` is covered by ``revocation`` (issued at or
    before it; no ``iat`` cannot show it is newer)."""
    return issued_at is None or issued_at <= revocation.revoked_at


def retry_after(revocation: Revocation, now: float) -> int:
    """Whole seconds until a freshly issued token (whole-second ``iat``) postdates ``revocation``."""
    return max(0, math.ceil(math.floor(revocation.revoked_at) + 1 - now))


def capped(revocation: Revocation, now: float) -> Revocation:
    """``revocation`` as recorded at ``now``: ``revoked_at`` capped at now, ``recorded_at`` now."""
    return Revocation(
        subject=revocation.subject,
        revoked_at=min(revocation.revoked_at, now),
        event_type=revocation.event_type,
        jti=revocation.jti,
        iss=revocation.iss,
        txn=revocation.txn,
        reason=revocation.reason,
        recorded_at=now,
        detail=revocation.detail,
    )


class RevocationList:
    """Revocations by subject, kept for ``retention`` seconds; see the module docstring."""

    def __init__(
        self,
        *,
        retention: float = 24 * 3600.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retention = retention
        self.max_entries = max_entries
        self.clock = clock
        self._items: OrderedDict[tuple[str, str, str], Revocation] = OrderedDict()  # oldest first
        self._index: SubjectIndex[tuple[str, str, str]] = SubjectIndex()

    def __len__(self) -> int:
        self._expire()
        return len(self._items)

    def revocations(self) -> list[Revocation]:
        self._expire()
        return list(self._items.values())

    def revoke(self, revocation: Revocation) -> Revocation:
        """Record a revocation; ``revoked_at`` is capped at now, ``recorded_at`` set to now.
        A repeat (same ``iss``, ``jti`` and subject) returns the revocation first recorded."""
        self._expire()
        ident = (revocation.iss, revocation.jti, subject_key(revocation.subject))
        if ident in self._items:
            return self._items[ident]
        stored = capped(revocation, self.clock())
        self._items[ident] = stored
        self._index.add(ident, [stored.subject])
        while len(self._items) > self.max_entries:
            oldest, _ = self._items.popitem(last=False)
            self._index.remove(oldest)
        return stored

    def applicable(self, subjects: Iterable[Subject], issued_at: float | None) -> Revocation | None:
        """The latest revocation that a credential for ``subjects`` issued at ``issued_at`` predates."""
        self._expire()
        found: Revocation | None = None
        for subject in subjects:
            for ident in self._index.matching(subject):
                item = self._items[ident]
                if not credential_predates(item, issued_at):
                    continue
                if found is None or item.revoked_at > found.revoked_at:
                    found = item
        return found

    def _expire(self) -> None:
        horizon = self.clock() - self.retention
        while self._items:
            ident, item = next(iter(self._items.items()))
            if item.recorded_at > horizon:
                break
            del self._items[ident]
            self._index.remove(ident)
