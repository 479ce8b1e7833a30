"""Policy re-evaluation on CAEP signals (pure): facts per subject, decisions with reasons.

token-claims-change, assurance-level-change, risk-level-change and device-compliance-change
(R-CAEP-5, -7, -8, -11) do not revoke anything by themselves; they change what is known about
a subject. :class:`PolicyState` folds each event into that subject's facts; a policy function
(yours, or :func:`default_policy`) turns the facts into a :class:`Decision`; every decision is
kept with its reason, and the latest one per subject is what the middleware enforces.

Facts, by event type:

- token-claims-change: ``facts["claims"]`` gets the changed claims merged in;
- assurance-level-change: ``facts["assurance"] = {namespace, current_level, previous_level?,
  change_direction?}``;
- risk-level-change: ``facts["risk"][principal] = current_level`` and ``facts["risk_level"]``
  the latest level;
- device-compliance-change: ``facts["device_compliance"] = current_status``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from receivers.events import (
    ASSURANCE_LEVEL_CHANGE,
    DEVICE_COMPLIANCE_CHANGE,
    RISK_LEVEL_CHANGE,
    TOKEN_CLAIMS_CHANGE,
)
from receivers.index import SubjectIndex
from receivers.subjects import Subject, subject_key

__all__ = [
    "POLICY_EVENTS",
    "Decision",
    "DecisionRecord",
    "PolicyFunction",
    "PolicyInput",
    "PolicyState",
    "default_policy",
]

POLICY_EVENTS: tuple[str, ...] = (
    TOKEN_CLAIMS_CHANGE,
    ASSURANCE_LEVEL_CHANGE,
    RISK_LEVEL_CHANGE,
    DEVICE_COMPLIANCE_CHANGE,
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    @classmethod
    def allow(cls, reason: str = "allowed") -> Decision:
        return cls(True, reason)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls(False, reason)


@dataclass(frozen=True)
class PolicyInput:
    """What a policy function sees: the subject, the event that changed things, all facts."""

    subject: Subject
    event_type: str
    payload: Mapping[str, Any]
    facts: Mapping[str, Any]


PolicyFunction = Callable[[PolicyInput], "Decision | Awaitable[Decision]"]


@dataclass(frozen=True)
class DecisionRecord:
    subject: Subject
    decision: Decision
    event_type: str
    jti: str
    iss: str
    txn: str | None
    at: float
    facts: Mapping[str, Any] = field(default_factory=dict)


def default_policy(inp: PolicyInput) -> Decision:
    """Deny on HIGH risk and on a non-compliant device; otherwise allow."""
    if inp.facts.get("risk_level") == "HIGH":
        return Decision.deny("risk level is HIGH")
    if inp.facts.get("device_compliance") == "not-compliant":
        return Decision.deny("device is not compliant")
    return Decision.allow("no policy objection")


def fold_facts(facts: Mapping[str, Any], event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The facts after one event (a new dict; the input is not modified)."""
    out = dict(facts)
    if event_type == TOKEN_CLAIMS_CHANGE and isinstance(payload.get("claims"), Mapping):
        out["claims"] = {**out.get("claims", {}), **payload["claims"]}
    elif event_type == ASSURANCE_LEVEL_CHANGE:
        names = ("namespace", "current_level", "previous_level", "change_direction")
        out["assurance"] = {k: payload[k] for k in names if k in payload}
    elif event_type == RISK_LEVEL_CHANGE:
        level = payload.get("current_level")
        principal = str(payload.get("principal", "USER"))
        out["risk"] = {**out.get("risk", {}), principal: level}
        out["risk_level"] = level
    elif event_type == DEVICE_COMPLIANCE_CHANGE:
        out["device_compliance"] = payload.get("current_status")
    return out


class PolicyState:
    """Facts and the current decision per subject, plus a bounded history of decisions."""

    def __init__(self, *, history: int = 1000) -> None:
        self._facts: dict[str, dict[str, Any]] = {}
        self._current: dict[str, DecisionRecord] = {}
        self._index: SubjectIndex[str] = SubjectIndex()
        self.history: deque[DecisionRecord] = deque(maxlen=history)

    def facts(self, subject: Subject) -> dict[str, Any]:
        return dict(self._facts.get(subject_key(subject), {}))

    def fold(self, subject: Subject, event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one event to the subject's facts; returns the new facts."""
        key = subject_key(subject)
        new = fold_facts(self._facts.get(key, {}), event_type, payload)
        self._facts[key] = new
        return dict(new)

    def record(self, record: DecisionRecord) -> DecisionRecord | None:
        """Make ``record`` the subject's current decision; returns the one it replaces."""
        key = subject_key(record.subject)
        previous = self._current.get(key)
        self._current[key] = record
        self._index.add(key, [record.subject])
        self.history.append(record)
        return previous

    def current(self, subject: Subject) -> DecisionRecord | None:
        return self._current.get(subject_key(subject))

    def denial(self, subjects: Iterable[Subject]) -> DecisionRecord | None:
        """The newest current denial concerning any of ``subjects``, or None."""
        found: DecisionRecord | None = None
        for subject in subjects:
            for key in self._index.matching(subject):
                record = self._current[key]
                if not record.decision.allowed and (found is None or record.at > found.at):
                    found = record
        return found
