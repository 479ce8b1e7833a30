"""Where a receiver keeps its state: revocations, policy facts and decisions, SETs seen.

Three async protocols — :class:`RevocationStore`, :class:`PolicyStore`, :class:`DedupStore` —
so several replicas of a gateway can share one state (:mod:`receivers.redis_state`) while a
single process keeps it in memory (the ``Memory*`` classes here, over the pure
:class:`~receivers.revocations.RevocationList`, :class:`~receivers.policy.PolicyState` and
:class:`~receivers.dedup.Deduplicator`).

A store calls the listeners given to ``on_change`` when its state changed — locally, or in
another replica (a Redis store hears it by pub/sub); the middleware uses that to re-check
long-lived responses at once instead of at its next periodic check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from receivers.dedup import Deduplicator
from receivers.policy import DecisionRecord, FoldResult, PolicyState
from receivers.revocations import Revocation, RevocationList
from receivers.subjects import Subject

__all__ = [
    "ChangeListener",
    "ChangeListeners",
    "DedupStore",
    "MemoryDedupStore",
    "MemoryPolicyStore",
    "MemoryRevocationStore",
    "PolicyStore",
    "RevocationStore",
]

log = logging.getLogger("receivers.stores")

ChangeListener = Callable[[], None]


@runtime_checkable
class RevocationStore(Protocol):
    """Revocations by subject, kept for a retention period (see :mod:`receivers.revocations`)."""

    async def revoke(self, revocation: Revocation) -> Revocation:
        """Record ``revocation`` (``revoked_at`` capped at now); a repeat returns the first."""
        ...

    async def applicable(self, subjects: Iterable[Subject], issued_at: float | None) -> Revocation | None:
        """The latest kept revocation a credential for ``subjects`` issued at ``issued_at`` predates."""
        ...

    def on_change(self, listener: ChangeListener) -> None: ...


@runtime_checkable
class PolicyStore(Protocol):
    """Policy facts (folded by event time) and the current decision per subject."""

    async def fold(
        self, subject: Subject, event_type: str, payload: Mapping[str, Any], at: float
    ) -> FoldResult:
        """Fold one event (that happened at ``at``) into the subject's facts, atomically."""
        ...

    async def record(self, record: DecisionRecord) -> tuple[bool, DecisionRecord | None]:
        """Make ``record`` current unless a decision from newer facts is; (stored, previous)."""
        ...

    async def current(self, subject: Subject) -> DecisionRecord | None: ...

    async def facts(self, subject: Subject) -> dict[str, Any]: ...

    async def denial(self, subjects: Iterable[Subject]) -> DecisionRecord | None:
        """The newest current denial concerning any of ``subjects``."""
        ...

    def on_change(self, listener: ChangeListener) -> None: ...


@runtime_checkable
class DedupStore(Protocol):
    """The (``iss``, ``jti``) pairs already acted on, for the replay window."""

    async def seen(self, iss: str, jti: str) -> bool: ...

    async def remember(self, iss: str, jti: str) -> None:
        """Remember a SET whose handlers all succeeded."""
        ...

    async def horizon(self) -> float:
        """SETs issued after this time are all remembered (older ones are refused)."""
        ...


class ChangeListeners:
    """The ``on_change`` half of a store: listeners, called by :meth:`notify`."""

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a broken listener must not undo a recorded revocation
                log.exception("change listener %r failed", listener)


class MemoryRevocationStore(ChangeListeners):
    """A :class:`RevocationStore` in this process (``list`` is the pure list behind it)."""

    def __init__(self, revocations: RevocationList | None = None) -> None:
        super().__init__()
        self.list = revocations if revocations is not None else RevocationList()

    def __len__(self) -> int:
        return len(self.list)

    async def revoke(self, revocation: Revocation) -> Revocation:
        stored = self.list.revoke(revocation)
        self.notify()
        return stored

    async def applicable(self, subjects: Iterable[Subject], issued_at: float | None) -> Revocation | None:
        return self.list.applicable(subjects, issued_at)


class MemoryPolicyStore(ChangeListeners):
    """A :class:`PolicyStore` in this process (``state`` is the pure state behind it)."""

    def __init__(self, state: PolicyState | None = None) -> None:
        super().__init__()
        self.state = state if state is not None else PolicyState()

    async def fold(
        self, subject: Subject, event_type: str, payload: Mapping[str, Any], at: float
    ) -> FoldResult:
        return self.state.fold(subject, event_type, payload, at)

    async def record(self, record: DecisionRecord) -> tuple[bool, DecisionRecord | None]:
        result = self.state.record(record)
        self.notify()
        return result

    async def current(self, subject: Subject) -> DecisionRecord | None:
        return self.state.current(subject)

    async def facts(self, subject: Subject) -> dict[str, Any]:
        return self.state.facts(subject)

    async def denial(self, subjects: Iterable[Subject]) -> DecisionRecord | None:
        return self.state.denial(subjects)


class MemoryDedupStore:
    """A :class:`DedupStore` in this process (``dedup`` is the pure de-duplicator behind it)."""

    def __init__(self, dedup: Deduplicator | None = None) -> None:
        self.dedup = dedup if dedup is not None else Deduplicator()

    async def seen(self, iss: str, jti: str) -> bool:
        return self.dedup.seen(iss, jti)

    async def remember(self, iss: str, jti: str) -> None:
        self.dedup.remember(iss, jti)

    async def horizon(self) -> float:
        return self.dedup.horizon()
