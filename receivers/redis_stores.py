"""The revocation and policy stores of :class:`~receivers.redis_state.RedisState` (see there
for the key layout, the local cache and the change channel)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from redis.exceptions import WatchError

from receivers.policy import Decision, DecisionRecord, FoldResult, fold_timed
from receivers.revocations import Revocation, capped, credential_predates
from receivers.stores import ChangeListeners
from receivers.subjects import Subject, index_keys, subject_key, subjects_match

if TYPE_CHECKING:
    from receivers.redis_state import RedisState

__all__ = ["RedisPolicyStore", "RedisRevocationStore"]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def cache_keys(kind: str, subjects: Iterable[Subject]) -> list[str]:
    keys: dict[str, None] = {}
    for subject in subjects:
        for key in index_keys(subject):
            keys[f"{kind}:{digest(key)}"] = None
    return list(keys)


def _revocation_json(r: Revocation) -> str:
    return json.dumps(
        {
            "subject": r.subject,
            "revoked_at": r.revoked_at,
            "event_type": r.event_type,
            "jti": r.jti,
            "iss": r.iss,
            "txn": r.txn,
            "reason": r.reason,
            "recorded_at": r.recorded_at,
        },
        separators=(",", ":"),
    )


def _revocation(data: Mapping[str, Any]) -> Revocation:
    return Revocation(
        subject=data["subject"],
        revoked_at=float(data["revoked_at"]),
        event_type=data["event_type"],
        jti=data["jti"],
        iss=data["iss"],
        txn=data.get("txn"),
        reason=data.get("reason", ""),
        recorded_at=float(data["recorded_at"]),
    )


class RedisRevocationStore(ChangeListeners):
    """Revocations in Redis; see :mod:`receivers.redis_state`."""

    def __init__(self, state: RedisState) -> None:
        super().__init__()
        self.state = state

    async def revoke(self, revocation: Revocation) -> Revocation:
        state = self.state
        stored = capped(revocation, state.clock())
        field = digest(f"{revocation.iss}\x1f{revocation.jti}\x1f{subject_key(revocation.subject)}")
        keys = cache_keys("rev", [revocation.subject])
        value = _revocation_json(stored)
        ttl = math.ceil(state.retention)
        pipe = state.redis.pipeline(transaction=True)
        for key in keys:
            pipe.hsetnx(state.key(key), field, value)
            pipe.expire(state.key(key), ttl)
        pipe.publish(state.channel, json.dumps(keys))
        results = await pipe.execute()
        if keys and not results[0]:  # a repeat: the first recording stands
            first = await state.redis.hget(state.key(keys[0]), field)
            if first is not None:
                stored = _revocation(json.loads(first))
        state.changed(keys)
        return stored

    async def applicable(self, subjects: Iterable[Subject], issued_at: float | None) -> Revocation | None:
        subjects = list(subjects)
        horizon = self.state.clock() - self.state.retention
        found: Revocation | None = None
        for values in (await self.state.read(cache_keys("rev", subjects))).values():
            for data in values:
                if float(data["recorded_at"]) <= horizon:
                    continue
                item = _revocation(data)
                if not credential_predates(item, issued_at):
                    continue
                if not any(subjects_match(item.subject, s) for s in subjects):
                    continue
                if found is None or item.revoked_at > found.revoked_at:
                    found = item
        return found


def _record_json(r: DecisionRecord) -> dict[str, Any]:
    return {
        "subject": r.subject,
        "allowed": r.decision.allowed,
        "reason": r.decision.reason,
        "event_type": r.event_type,
        "jti": r.jti,
        "iss": r.iss,
        "txn": r.txn,
        "at": r.at,
        "facts": dict(r.facts),
        "version": r.version,
    }


def _record(data: Mapping[str, Any]) -> DecisionRecord:
    return DecisionRecord(
        subject=data["subject"],
        decision=Decision(bool(data["allowed"]), str(data["reason"])),
        event_type=data["event_type"],
        jti=data["jti"],
        iss=data["iss"],
        txn=data.get("txn"),
        at=float(data["at"]),
        facts=data.get("facts", {}),
        version=int(data.get("version", 0)),
    )


class RedisPolicyStore(ChangeListeners):
    """Policy facts and decisions in Redis; see :mod:`receivers.redis_state`."""

    def __init__(self, state: RedisState) -> None:
        super().__init__()
        self.state = state

    def _subject_key(self, subject: Subject) -> str:
        return self.state.key("subj:" + digest(subject_key(subject)))

    async def _document(self, subject: Subject) -> dict[str, Any]:
        raw = await self.state.redis.get(self._subject_key(subject))
        return json.loads(raw) if raw else {}

    async def fold(
        self, subject: Subject, event_type: str, payload: Mapping[str, Any], at: float
    ) -> FoldResult:
        key = self._subject_key(subject)
        async with self.state.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    doc: dict[str, Any] = json.loads(raw) if raw else {"subject": subject}
                    result = fold_timed(
                        doc.get("facts", {}),
                        doc.get("times", {}),
                        int(doc.get("version", 0)),
                        event_type,
                        payload,
                        at,
                    )
                    if result.stale:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return result
                    doc.update(facts=result.facts, times=result.times, version=result.version)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, json.dumps(doc), ex=math.ceil(self.state.policy_ttl))
                    await pipe.execute()
                    return result
                except WatchError:
                    continue

    async def record(self, record: DecisionRecord) -> tuple[bool, DecisionRecord | None]:
        state = self.state
        key = self._subject_key(record.subject)
        keys = cache_keys("den", [record.subject])
        field = subject_key(record.subject)
        ttl = math.ceil(state.policy_ttl)
        async with state.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    doc: dict[str, Any] = (
                        json.loads(raw)
                        if raw
                        else {"subject": record.subject, "facts": {}, "times": {}, "version": record.version}
                    )
                    previous = _record(doc["current"]) if doc.get("current") else None
                    if previous is not None and previous.version > record.version:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return False, previous
                    doc["current"] = _record_json(record)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, json.dumps(doc), ex=ttl)
                    for den in keys:
                        if record.decision.allowed:
                            pipe.hdel(state.key(den), field)
                        else:
                            pipe.hset(state.key(den), field, json.dumps(doc["current"]))
                            pipe.expire(state.key(den), ttl)
                    pipe.publish(state.channel, json.dumps(keys))
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        state.changed(keys)
        return True, previous

    async def current(self, subject: Subject) -> DecisionRecord | None:
        doc = await self._document(subject)
        return _record(doc["current"]) if doc.get("current") else None

    async def facts(self, subject: Subject) -> dict[str, Any]:
        return dict((await self._document(subject)).get("facts", {}))

    async def denial(self, subjects: Iterable[Subject]) -> DecisionRecord | None:
        subjects = list(subjects)
        horizon = self.state.clock() - self.state.policy_ttl
        found: DecisionRecord | None = None
        for values in (await self.state.read(cache_keys("den", subjects))).values():
            for data in values:
                if data.get("allowed") or float(data["at"]) <= horizon:
                    continue
                if not any(subjects_match(data["subject"], s) for s in subjects):
                    continue
                if found is None or float(data["at"]) > found.at:
                    found = _record(data)
        return found
