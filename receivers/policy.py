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

Facts fold by event time (``event_timestamp``, else the SET's ``iat``): each fact remembers when
it was last set, and an older event does not override a newer fact (an hour-old risk HIGH that
arrives late does not undo the current LOW). An event that changes nothing is *stale*. A
subject's facts and decision are forgotten ``ttl`` seconds after their last change. Every fold
bumps the subject's ``version``; a decision computed from an older version never replaces one
computed from a newer version (two replicas folding at once agree on the last word).
"""

from __future__ import annotations

import time
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
    "FoldResult",
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
    version: int = 0  # the facts version the decision was computed from


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


def _updates(event_type: str, payload: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """The facts one event sets, as (path, value); a path names one fact (its time is kept)."""
    if event_type == TOKEN_CLAIMS_CHANGE and isinstance(payload.get("claims"), Mapping):
        return [(("claims", str(k)), v) for k, v in payload["claims"].items()]
    if event_type == ASSURANCE_LEVEL_CHANGE:
        names = ("namespace", "current_level", "previous_level", "change_direction")
        return [(("assurance",), {k: payload[k] for k in names if k in payload})]
    if event_type == RISK_LEVEL_CHANGE:
        level = payload.get("current_level")
        return [(("risk", str(payload.get("principal", "USER"))), level), (("risk_level",), level)]
    if event_type == DEVICE_COMPLIANCE_CHANGE:
        return [(("device_compliance",), payload.get("current_status"))]
    return []


@dataclass(frozen=True)
class FoldResult:
    """A subject's facts after an event: ``stale`` when the event was older than every fact it
    would set (nothing changed); ``version`` counts the folds that changed something."""

    facts: Mapping[str, Any]
    times: Mapping[str, float]
    version: int
    stale: bool


def fold_timed(
    facts: Mapping[str, Any],
    times: Mapping[str, float],
    version: int,
    event_type: str,
    payload: Mapping[str, Any],
    at: float,
) -> FoldResult:
    """Fold one event that happened at ``at`` into ``facts``; a fact set by a newer event stays.
    An event as old as the fact (same time) applies: a redelivered SET folds the same way again."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in facts.items()}
    new_times = dict(times)
    applied = False
    for path, value in _updates(event_type, payload):
        name = "/".join(path)
        if new_times.get(name, float("-inf")) > at:
            continue
        new_times[name] = at
        applied = True
        if len(path) == 1:
            out[path[0]] = value
        else:
            out[path[0]] = {**out.get(path[0], {}), path[1]: value}
    if not applied:
        return FoldResult(dict(facts), dict(times), version, stale=True)
    return FoldResult(out, new_times, version + 1, stale=False)


@dataclass
class _Subject:
    facts: dict[str, Any]
    times: dict[str, float]
    version: int
    changed_at: float
    current: DecisionRecord | None = None


class PolicyState:
    """Facts and the current decision per subject (forgotten ``ttl`` seconds after their last
    change), plus a bounded history of decisions. Pure and synchronous; see the module docstring."""

    def __init__(
        self, *, history: int = 1000, ttl: float = 24 * 3600.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._subjects: dict[str, _Subject] = {}
        self._index: SubjectIndex[str] = SubjectIndex()  # subjects whose current decision is a denial
        self.history: deque[DecisionRecord] = deque(maxlen=history)

    def _get(self, key: str) -> _Subject | None:
        found = self._subjects.get(key)
        if found is not None and found.changed_at + self.ttl <= self.clock():
            del self._subjects[key]
            self._index.remove(key)
            return None
        return found

    def facts(self, subject: Subject) -> dict[str, Any]:
        found = self._get(subject_key(subject))
        return dict(found.facts) if found else {}

    def fold(
        self, subject: Subject, event_type: str, payload: Mapping[str, Any], at: float | None = None
    ) -> FoldResult:
        """Apply one event (that happened at ``at``, default now) to the subject's facts."""
        key = subject_key(subject)
        found = self._get(key)
        when = self.clock() if at is None else at
        result = fold_timed(
            found.facts if found else {},
            found.times if found else {},
            found.version if found else 0,
            event_type,
            payload,
            when,
        )
        if not result.stale:
            current = found.current if found else None
            self._subjects[key] = _Subject(
                dict(result.facts), dict(result.times), result.version, self.clock(), current
            )
        return result

    def record(self, record: DecisionRecord) -> tuple[bool, DecisionRecord | None]:
        """Make ``record`` the subject's current decision unless one computed from newer facts is
        in place; returns (whether it was stored, the current decision before)."""
        key = subject_key(record.subject)
        found = self._get(key)
        if found is None:
            found = self._subjects[key] = _Subject({}, {}, record.version, self.clock())
        previous = found.current
        if previous is not None and previous.version > record.version:
            return False, previous
        found.current = record
        found.changed_at = self.clock()
        if record.decision.allowed:
            self._index.remove(key)
        else:
            self._index.add(key, [record.subject])
        self.history.append(record)
        return True, previous

    def current(self, subject: Subject) -> DecisionRecord | None:
        found = self._get(subject_key(subject))
        return found.current if found else None

    def denial(self, subjects: Iterable[Subject]) -> DecisionRecord | None:
        """The newest current denial concerning any of ``subjects``, or None."""
        found: DecisionRecord | None = None
        for subject in subjects:
            for key in self._index.matching(subject):
                entry = self._get(key)
                record = entry.current if entry else None
                if (
                    record is not None
                    and not record.decision.allowed
                    and (found is None or record.at > found.at)
                ):
                    found = record
        return found
