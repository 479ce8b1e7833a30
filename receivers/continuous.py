"""Acting on signals: revoke, drop cached tokens, re-run policy, decide about callers.

:class:`ContinuousAccess` owns the state an agent runtime, tool server or LLM gateway needs —
the revocation list, the policy state, the token caches to clean — and a
:class:`~receivers.dispatch.Dispatcher` with a default handler for every CAEP event (and the
RISC events that end access). Give that dispatcher to your receivers (push or poll).

Defaults, per event type:

========================================================  ======================================
session-revoked, credential-change (CAEP); account-       **revoke**: tokens issued until the
disabled, account-purged, credential-compromise,          event are refused and dropped from
account-credential-change-required, identifier-           every token cache
recycled, sessions-revoked (RISC)
token-claims-change, assurance-level-change,              **re-run policy** with the new facts;
risk-level-change, device-compliance-change (CAEP)        a denial refuses the subject (403)
session-established, session-presented, anything else     acknowledged, recorded as
                                                          ``event_ignored``
========================================================  ======================================

Override any of them with ``access.dispatcher.add(...)`` or pass ``revoke_on``/``policy_on``.
Every remediation is an :class:`~receivers.audit.AuditRecord` in :attr:`ContinuousAccess.audit`.

State lives in a :class:`~receivers.stores.RevocationStore` and a
:class:`~receivers.stores.PolicyStore` — in memory by default, in Redis
(:class:`~receivers.redis_state.RedisState`) when several replicas must agree. The handlers are
idempotent by ``jti``: a redelivered SET (after a handler failed, say) records nothing twice.
A revocation drops cached tokens issued at or before it, not the ones fetched since; a policy
event older than the facts it would change is ``event_stale`` and changes nothing.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from receivers.audit import (
    ACCESS_REVOKED,
    EVENT_IGNORED,
    EVENT_STALE,
    POLICY_CHANGED,
    REQUEST_REFUSED,
    TOKEN_DROPPED,
    AuditLog,
    AuditRecord,
)
from receivers.caller import Caller
from receivers.dispatch import ANY_EVENT, Dispatcher
from receivers.events import (
    ACCOUNT_CREDENTIAL_CHANGE_REQUIRED,
    ACCOUNT_DISABLED,
    ACCOUNT_PURGED,
    CREDENTIAL_CHANGE,
    CREDENTIAL_COMPROMISE,
    IDENTIFIER_RECYCLED,
    SESSION_REVOKED,
    SESSIONS_REVOKED,
    SSF_BASE,
    ReceivedEvent,
)
from receivers.policy import (
    POLICY_EVENTS,
    Decision,
    DecisionRecord,
    PolicyFunction,
    PolicyInput,
    PolicyState,
    default_policy,
)
from receivers.revocations import Revocation, RevocationList, retry_after
from receivers.stores import MemoryPolicyStore, MemoryRevocationStore, PolicyStore, RevocationStore
from receivers.tokens import TokenCache

__all__ = ["REVOKING_EVENTS", "ContinuousAccess", "Verdict"]

REVOKING_EVENTS: tuple[str, ...] = (
    SESSION_REVOKED,
    CREDENTIAL_CHANGE,
    ACCOUNT_DISABLED,
    ACCOUNT_PURGED,
    CREDENTIAL_COMPROMISE,
    ACCOUNT_CREDENTIAL_CHANGE_REQUIRED,
    IDENTIFIER_RECYCLED,
    SESSIONS_REVOKED,
)


@dataclass(frozen=True)
class Verdict:
    """What to do with a caller: ``status`` 200 (go on), 401 (revoked) or 403 (policy denies)."""

    status: int
    reason: str = ""
    revocation: Revocation | None = None
    decision: DecisionRecord | None = None
    retry_after: int | None = None  # a 401 for a revocation: seconds until a new token passes

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOWED = Verdict(200)


def _reason(payload: dict[str, Any], event_type: str) -> str:
    admin = payload.get("reason_admin")
    if isinstance(admin, dict):
        text = admin.get("en") or next(iter(admin.values()), None)
        if isinstance(text, str):
            return text
    if isinstance(admin, str):  # AMB-16: some peers send a bare string
        return admin
    return event_type.rsplit("/", 1)[-1]


class ContinuousAccess:
    """Revocations, policy decisions and token caches, plus a dispatcher whose defaults act on signals."""

    def __init__(
        self,
        *,
        token_caches: Iterable[TokenCache] = (),
        policy: PolicyFunction = default_policy,
        audit: AuditLog | None = None,
        revocations: RevocationStore | RevocationList | None = None,
        policy_store: PolicyStore | PolicyState | None = None,
        revoke_on: Iterable[str] = REVOKING_EVENTS,
        policy_on: Iterable[str] = POLICY_EVENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.token_caches = list(token_caches)
        self.policy = policy
        self.audit = audit if audit is not None else AuditLog(clock=clock)
        if revocations is None:
            revocations = RevocationList(clock=clock)
        self.revocations: RevocationStore = (
            MemoryRevocationStore(revocations) if isinstance(revocations, RevocationList) else revocations
        )
        if policy_store is None:
            policy_store = PolicyState(clock=clock)
        self.policy_state: PolicyStore = (
            MemoryPolicyStore(policy_store) if isinstance(policy_store, PolicyState) else policy_store
        )
        self.dispatcher = Dispatcher()
        self._handled = set(revoke_on) | set(policy_on)
        for event_type in revoke_on:
            self.dispatcher.add(event_type, self.revoke)
        for event_type in policy_on:
            self.dispatcher.add(event_type, self.reevaluate)
        self.dispatcher.add(ANY_EVENT, self._note_ignored)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever revocations or decisions change (here or in another replica
        sharing the stores)."""
        self.revocations.on_change(listener)
        self.policy_state.on_change(listener)

    def add_token_cache(self, cache: TokenCache) -> None:
        self.token_caches.append(cache)

    # -- handlers ---------------------------------------------------------------------------------
    async def revoke(self, event: ReceivedEvent) -> Revocation:
        """Refuse credentials issued until the event for its subject, and drop cached tokens
        issued until then."""
        reason = _reason(event.payload, event.event_type)
        revocation = await self.revocations.revoke(
            Revocation(
                subject=event.subject,
                revoked_at=event.occurred_at,
                event_type=event.event_type,
                jti=event.jti,
                iss=event.iss,
                txn=event.txn,
                reason=reason,
            )
        )
        now = self.clock()
        self.audit.record(
            AuditRecord.for_event(ACCESS_REVOKED, event, now, revoked_at=revocation.revoked_at, reason=reason)
        )
        for cache in self.token_caches:
            for entry in cache.invalidate(event.subject, issued_before=revocation.revoked_at):
                self.audit.record(
                    AuditRecord.for_event(
                        TOKEN_DROPPED,
                        event,
                        now,
                        cache=cache.name,
                        token=entry.fingerprint,
                        token_kind=entry.kind.value,
                        key=repr(entry.key),
                        token_txn=entry.txn,
                    )
                )
        return revocation

    async def reevaluate(self, event: ReceivedEvent) -> DecisionRecord | None:
        """Fold the event into the subject's facts by event time, run the policy, keep the
        decision; None for a stale event (older than the facts it would change)."""
        folded = await self.policy_state.fold(
            event.subject, event.event_type, event.payload, min(event.occurred_at, self.clock())
        )
        if folded.stale:
            self.audit.record(AuditRecord.for_event(EVENT_STALE, event, self.clock()))
            return None
        facts = dict(folded.facts)
        result = self.policy(PolicyInput(event.subject, event.event_type, event.payload, facts))
        decision: Decision = await result if inspect.isawaitable(result) else result
        record = DecisionRecord(
            subject=event.subject,
            decision=decision,
            event_type=event.event_type,
            jti=event.jti,
            iss=event.iss,
            txn=event.txn,
            at=self.clock(),
            facts=facts,
            version=folded.version,
        )
        stored, previous = await self.policy_state.record(record)
        if not stored:  # another replica decided from newer facts meanwhile
            return previous
        if previous is None or previous.decision != decision:
            self.audit.record(
                AuditRecord.for_event(
                    POLICY_CHANGED,
                    event,
                    record.at,
                    allowed=decision.allowed,
                    reason=decision.reason,
                    previous=None if previous is None else previous.decision.allowed,
                )
            )
        if not decision.allowed:
            for cache in self.token_caches:  # a denied subject's tokens are no use any more
                for entry in cache.invalidate(event.subject):
                    self.audit.record(
                        AuditRecord.for_event(
                            TOKEN_DROPPED,
                            event,
                            record.at,
                            cache=cache.name,
                            token=entry.fingerprint,
                            reason=decision.reason,
                        )
                    )
        return record

    def _note_ignored(self, event: ReceivedEvent) -> None:
        if event.event_type.startswith(SSF_BASE) or any(uri in self._handled for uri in event.events):
            return
        self.audit.record(AuditRecord.for_event(EVENT_IGNORED, event, self.clock()))

    # -- decisions about callers ----------------------------------------------------------------------
    async def check(self, caller: Caller) -> Verdict:
        """401 when a credential predates a revocation of one of its subjects (with the seconds
        until a re-issued token passes); 403 when policy denies one of the caller's subjects;
        otherwise 200."""
        for credential in caller.credentials:
            revocation = await self.revocations.applicable(credential.subjects, credential.issued_at)
            if revocation is not None:
                return Verdict(
                    401,
                    f"access revoked: {revocation.reason}",
                    revocation=revocation,
                    retry_after=retry_after(revocation, self.clock()),
                )
        denial = await self.policy_state.denial(caller.subjects)
        if denial is not None:
            return Verdict(403, f"access denied by policy: {denial.decision.reason}", decision=denial)
        return ALLOWED

    def record_refusal(self, caller: Caller, verdict: Verdict, **detail: Any) -> None:
        """Audit a refused request, naming the SET that caused it."""
        source = verdict.revocation or verdict.decision
        self.audit.record(
            AuditRecord(
                action=REQUEST_REFUSED,
                at=self.clock(),
                jti=source.jti if source else None,
                txn=source.txn if source else None,
                iss=source.iss if source else None,
                event_type=source.event_type if source else None,
                subject=source.subject if source else None,
                detail={
                    "status": verdict.status,
                    "reason": verdict.reason,
                    "credentials": [c.fingerprint for c in caller.credentials],
                    **detail,
                },
            )
        )
