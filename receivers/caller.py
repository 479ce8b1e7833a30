"""Who is calling, as the middleware and :meth:`ContinuousAccess.check` see it (pure).

One :class:`Credential` per token the request presented, with the subjects it speaks for and
its ``iat``; :mod:`receivers.identity` builds them from request headers.
"""

from __future__ import annotations

from dataclasses import dataclass

from receivers.subjects import Subject
from receivers.tokens import TokenKind

__all__ = ["Caller", "Credential"]


@dataclass(frozen=True)
class Credential:
    """One token of a request: its kind, the subjects it speaks for, when it was issued."""

    kind: TokenKind
    subjects: tuple[Subject, ...]
    issued_at: float | None
    fingerprint: str
    txn: str | None = None


@dataclass(frozen=True)
class Caller:
    """Everything a request presented; refused if any credential is revoked or denied."""

    credentials: tuple[Credential, ...]

    @property
    def subjects(self) -> tuple[Subject, ...]:
        return tuple(s for c in self.credentials for s in c.subjects)
