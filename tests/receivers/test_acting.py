"""Acting on signals, pure parts: de-duplication, the token cache's delegation cases,
revocations with re-authentication, policy decisions, audit records (R-SET-2, R-SEC-3,
R-SUB-10, R-TXN-*, R-CAEP-*)."""

from __future__ import annotations

from typing import Any

from receivers import (
    ContinuousAccess,
    Decision,
    Deduplicator,
    PolicyInput,
    ReceivedEvent,
    RevocationList,
    TokenCache,
    TokenKind,
    principals_from_claims,
)
from receivers.audit import ACCESS_REVOKED, EVENT_IGNORED, POLICY_CHANGED, TOKEN_DROPPED
from receivers.caller import Caller, Credential
from receivers.events import (
    CREDENTIAL_CHANGE,
    DEVICE_COMPLIANCE_CHANGE,
    RISK_LEVEL_CHANGE,
    SESSION_ESTABLISHED,
    SESSION_REVOKED,
    TOKEN_CLAIMS_CHANGE,
)
from receivers.revocations import Revocation
from tests.receivers.support import AGENT, AGENT_ID, ALICE, BOB

IDP = "https://idp.example.com"
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(
    event_type: str, subject: dict[str, Any], payload: dict[str, Any] | None = None, **kw: Any
) -> ReceivedEvent:
    kw.setdefault("jti", "jti-1")
    kw.setdefault("txn", "txn-1")
    return ReceivedEvent(
        iss="https://hub",
        iat=kw.pop("iat", NOW),
        aud=("r",),
        subject=subject,
        events={event_type: payload if payload is not None else {}},
        **kw,
    )


# -- de-duplication ------------------------------------------------------------------------------------


def test_dedup_by_issuer_and_jti_with_time_limit() -> None:  # R-SET-2, R-SEC-3
    clock = Clock()
    dedup = Deduplicator(ttl=60, clock=clock)
    assert dedup.check_and_remember("iss-a", "j1") is True
    assert dedup.check_and_remember("iss-a", "j1") is False
    assert dedup.check_and_remember("iss-b", "j1") is True  # jti is unique per issuer only
    clock.now += 61
    assert dedup.check_and_remember("iss-a", "j1") is True  # forgotten after ttl


def test_dedup_memory_is_bounded() -> None:
    dedup = Deduplicator(max_entries=3, clock=Clock())
    for n in range(5):
        dedup.remember("iss", f"j{n}")
    assert len(dedup) == 3
    assert not dedup.seen("iss", "j0") and dedup.seen("iss", "j4")


# -- which subjects a token speaks for ------------------------------------------------------------------


def test_principals_of_an_exchanged_token_name_user_and_agent() -> None:  # RFC 8693 act
    claims: dict[str, Any] = {"iss": IDP, "sub": "u-1", "email": "alice@example.com", "sid": "s-1"}
    claims.update(tid="t-1", act={"sub": AGENT_ID})
    user, agent = principals_from_claims(claims)
    assert user["format"] == "complex"
    assert user["session"] == {"format": "opaque", "id": "s-1"}
    assert user["tenant"] == {"format": "opaque", "id": "t-1"}
    assert {i["format"] for i in user["user"]["identifiers"]} == {"iss_sub", "email"}
    assert AGENT in agent["identifiers"]


def test_principals_of_a_txn_token_name_user_and_requesting_workload() -> None:  # R-TXN-2, AMB-20
    subjects = principals_from_claims({"sub": "alice@example.com", "req_wl": AGENT_ID}, issuer="https://tts")
    assert subjects[1] == AGENT
    legacy = principals_from_claims({"sub": "x", "rctx": {"req_wl": ["wl-a", AGENT_ID]}})
    assert {"format": "opaque", "id": "wl-a"} in legacy and AGENT in legacy


# -- the token cache: delegation cases ------------------------------------------------------------------


def _cache(clock: Clock, holder: list[dict[str, Any]] | None = None) -> TokenCache:
    return TokenCache(name="agent-cache", holder=holder or [], clock=clock)


def _user_token_subjects(email: str, sid: str, tenant: str, actor: str | None = None) -> list[dict[str, Any]]:
    claims: dict[str, Any] = {"iss": IDP, "sub": email, "sid": sid, "tid": tenant}
    if actor:
        claims["act"] = {"sub": actor}
    return principals_from_claims(claims)


def test_a_user_event_drops_every_agents_token_acting_for_the_user() -> None:
    clock = Clock()
    cache = _cache(clock)
    cache.put(
        "alice/agent-a", "tok-a", subjects=_user_token_subjects("alice@example.com", "s1", "t1", AGENT_ID)
    )
    cache.put(
        "alice/agent-b",
        "tok-b",
        subjects=_user_token_subjects("alice@example.com", "s2", "t1", "spiffe://x/agent-b"),
    )
    cache.put(
        "alice/txn",
        "tok-t",
        kind=TokenKind.TXN,
        subjects=principals_from_claims({"sub": "alice@example.com", "req_wl": AGENT_ID}),
    )
    cache.put("bob/agent-a", "tok-c", subjects=_user_token_subjects("bob@example.com", "s3", "t1", AGENT_ID))
    dropped = cache.invalidate(ALICE)
    assert {e.key for e in dropped} == {"alice/agent-a", "alice/agent-b", "alice/txn"}
    assert cache.get("bob/agent-a") is not None


def test_a_session_event_drops_only_that_session() -> None:  # R-CAEP-4 with a complex subject
    cache = _cache(Clock())
    cache.put("s1", "tok-1", subjects=_user_token_subjects("alice@example.com", "s1", "t1"))
    cache.put("s2", "tok-2", subjects=_user_token_subjects("alice@example.com", "s2", "t1"))
    session = {"format": "complex", "user": ALICE, "session": {"format": "opaque", "id": "s1"}}
    assert [e.key for e in cache.invalidate(session)] == ["s1"]
    assert "s2" in cache


def test_an_agent_workload_event_drops_what_the_agent_holds_and_acts_for() -> None:
    clock = Clock()
    held = _cache(clock, holder=[AGENT])
    held.put("own", "tok-own", subjects=[{"format": "opaque", "id": "svc"}])
    held.put("alice", "tok-alice", subjects=_user_token_subjects("alice@example.com", "s1", "t1"))
    assert len(held.invalidate(AGENT)) == 2  # everything the agent holds

    shared = _cache(clock)  # a gateway's cache: only tokens naming the agent as actor go
    shared.put("via-agent", "tok-1", subjects=_user_token_subjects("alice@example.com", "s1", "t1", AGENT_ID))
    shared.put("direct", "tok-2", subjects=_user_token_subjects("alice@example.com", "s2", "t1"))
    assert [e.key for e in shared.invalidate(AGENT)] == ["via-agent"]


def test_a_tenant_event_drops_every_token_of_the_tenant() -> None:  # R-SUB-10 wildcard members
    cache = _cache(Clock())
    cache.put("a", "tok-a", subjects=_user_token_subjects("alice@example.com", "s1", "t1"))
    cache.put("b", "tok-b", subjects=_user_token_subjects("bob@example.com", "s2", "t1"))
    cache.put("c", "tok-c", subjects=_user_token_subjects("carol@example.com", "s3", "t2"))
    tenant_event = {"format": "complex", "tenant": {"format": "opaque", "id": "t1"}}
    assert sorted(str(e.key) for e in cache.invalidate(tenant_event)) == ["a", "b"]
    assert [e.key for e in cache.entries()] == ["c"]


def test_cached_tokens_expire_before_their_exp() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock, expiry_margin=30)
    cache.put("k", "tok", subjects=[ALICE], expires_at=NOW + 100)
    clock.now += 69
    assert cache.get("k") is not None
    clock.now += 1
    assert cache.get("k") is None and "k" not in cache


# -- revocations and re-authentication ------------------------------------------------------------------


def _credential(subjects: list[dict[str, Any]], iat: float | None) -> Caller:
    return Caller((Credential(TokenKind.ACCESS, tuple(subjects), iat, "sha256:x"),))


async def test_a_credential_issued_after_the_revocation_is_accepted() -> None:
    clock = Clock()
    access = ContinuousAccess(clock=clock)
    await access.revoke(event(SESSION_REVOKED, ALICE, {"event_timestamp": NOW - 10}))
    alice = _user_token_subjects("alice@example.com", "s1", "t1")
    assert (await access.check(_credential(alice, NOW - 60))).status == 401
    assert (await access.check(_credential(alice, NOW - 10))).status == 401  # same second: still refused
    assert (await access.check(_credential(alice, None))).status == 401  # cannot show it is newer
    assert (await access.check(_credential(alice, NOW - 9))).allowed
    assert (
        await access.check(_credential(_user_token_subjects("bob@example.com", "s", "t1"), NOW - 60))
    ).allowed


def test_a_revocation_time_in_the_future_is_capped_at_receipt() -> None:
    clock = Clock()
    revocations = RevocationList(clock=clock)
    stored = revocations.revoke(Revocation(ALICE, NOW + 3600, SESSION_REVOKED, "j", "iss"))
    assert stored.revoked_at == NOW


def test_revocations_are_kept_for_the_retention_period() -> None:
    clock = Clock()
    revocations = RevocationList(clock=clock, retention=100)
    revocations.revoke(Revocation(ALICE, NOW, SESSION_REVOKED, "j", "iss"))
    assert revocations.applicable([ALICE], NOW - 1) is not None
    clock.now += 101
    assert revocations.applicable([ALICE], NOW - 1) is None


async def test_revoke_drops_tokens_and_audits_which_credential_and_why() -> None:
    clock = Clock()
    cache = _cache(clock)
    cache.put(
        "alice", "secret-token", subjects=_user_token_subjects("alice@example.com", "s1", "t1", AGENT_ID)
    )
    access = ContinuousAccess(token_caches=[cache], clock=clock)
    await access.dispatcher.dispatch(
        event(
            CREDENTIAL_CHANGE,
            ALICE,
            {"credential_type": "password", "change_type": "update", "reason_admin": {"en": "reset"}},
        )
    )
    assert len(cache) == 0
    revoked, dropped = access.audit.records
    assert (revoked.action, revoked.jti, revoked.txn, revoked.detail["reason"]) == (
        ACCESS_REVOKED,
        "jti-1",
        "txn-1",
        "reset",
    )
    assert dropped.action == TOKEN_DROPPED and dropped.subject == ALICE
    assert dropped.detail["cache"] == "agent-cache" and dropped.detail["token"].startswith("sha256:")
    assert "secret-token" not in str(dropped.as_dict())  # R-SEC-11: never the token itself


# -- policy re-evaluation ------------------------------------------------------------------------------


async def test_risk_and_device_events_rerun_the_default_policy() -> None:  # R-CAEP-8, R-CAEP-11
    access = ContinuousAccess(clock=Clock())
    alice = _user_token_subjects("alice@example.com", "s1", "t1")
    await access.dispatcher.dispatch(
        event(RISK_LEVEL_CHANGE, ALICE, {"principal": "USER", "current_level": "HIGH"})
    )
    verdict = await access.check(_credential(alice, NOW))
    assert verdict.status == 403 and "HIGH" in verdict.reason
    await access.dispatcher.dispatch(
        event(RISK_LEVEL_CHANGE, ALICE, {"principal": "USER", "current_level": "LOW"}, jti="j2")
    )
    assert (await access.check(_credential(alice, NOW))).allowed
    device = {"format": "complex", "device": {"format": "opaque", "id": "d1"}}
    await access.dispatcher.dispatch(
        event(
            DEVICE_COMPLIANCE_CHANGE,
            device,
            {"previous_status": "compliant", "current_status": "not-compliant"},
            jti="j3",
        )
    )
    current = await access.policy_state.current(device)
    assert current is not None and not current.decision.allowed
    changes = access.audit.find(POLICY_CHANGED)
    assert [r.detail["allowed"] for r in changes] == [False, True, False]
    assert [r.jti for r in changes] == ["jti-1", "j2", "j3"]


async def test_a_user_policy_sees_the_accumulated_facts() -> None:  # R-CAEP-5
    seen: list[PolicyInput] = []

    async def policy(inp: PolicyInput) -> Decision:
        seen.append(inp)
        if inp.facts.get("claims", {}).get("role") == "guest":
            return Decision.deny("guests may not use tools")
        return Decision.allow()

    access = ContinuousAccess(policy=policy, clock=Clock())
    await access.dispatcher.dispatch(
        event(TOKEN_CLAIMS_CHANGE, BOB, {"claims": {"role": "guest", "dept": "x"}})
    )
    await access.dispatcher.dispatch(event(TOKEN_CLAIMS_CHANGE, BOB, {"claims": {"dept": "y"}}, jti="j2"))
    assert seen[-1].facts["claims"] == {"role": "guest", "dept": "y"}
    record = await access.policy_state.current(BOB)
    assert record is not None and record.decision == Decision.deny("guests may not use tools")
    assert len(access.audit.find(POLICY_CHANGED)) == 1  # the second run did not change the decision


async def test_events_without_a_default_action_are_recorded_as_ignored() -> None:
    access = ContinuousAccess(clock=Clock())
    await access.dispatcher.dispatch(event(SESSION_ESTABLISHED, ALICE))
    assert [r.action for r in access.audit.records] == [EVENT_IGNORED]


async def test_a_broken_audit_sink_does_not_stop_remediation() -> None:
    access = ContinuousAccess(clock=Clock())

    def broken(record: object) -> None:
        raise RuntimeError("sink down")

    access.audit.add_sink(broken)
    await access.revoke(event(SESSION_REVOKED, ALICE))
    assert len(access.revocations) == 1  # type: ignore[arg-type]


async def test_a_failing_handler_is_counted_not_raised() -> None:  # R-POLL-5
    access = ContinuousAccess(clock=Clock())

    @access.dispatcher.on(SESSION_REVOKED)
    async def boom(e: ReceivedEvent) -> None:
        raise RuntimeError("handler bug")

    assert await access.dispatcher.dispatch(event(SESSION_REVOKED, ALICE)) == 1
    assert len(access.revocations) == 1  # type: ignore[arg-type]  # the default handler still ran
