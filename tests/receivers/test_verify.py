"""SET verification core (R-SET-*, R-SEC-1..3, R-SUB-9, R-PUSH-6): every refusal has its err code."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from receivers import (
    Deduplicator,
    InvalidAudience,
    InvalidIssuer,
    InvalidKey,
    InvalidRequest,
    InvalidState,
    Receiver,
    SetError,
    SetVerifier,
    StaticKeys,
    VerificationStates,
)
from receivers.events import SESSION_REVOKED, STREAM_UPDATED, VERIFICATION
from tests.receivers.support import ALICE, FakeTransmitter, new_key, sign

NOW = 1_800_000_000.0
ISS = "https://tr.example.com"


@pytest.fixture(scope="module")
def tr() -> FakeTransmitter:
    t = FakeTransmitter()
    t.issuer = ISS
    return t


def verifier(**kw: Any) -> SetVerifier:
    kw.setdefault("issuer", ISS)
    kw.setdefault("audience", "receiver-1")
    return SetVerifier(clock=lambda: NOW, **kw)


def claims(tr: FakeTransmitter, **kw: Any) -> dict[str, Any]:
    kw.setdefault("iat", int(NOW))
    kw.setdefault("payload", {"event_timestamp": int(NOW)})
    return tr.claims(**kw)


def test_a_valid_set_becomes_a_received_event(tr: FakeTransmitter) -> None:  # R-SET-1, R-SET-11
    c = claims(tr, txn="t-1")
    event = verifier().verify_token(tr.sign(c), [tr.key])
    assert (event.iss, event.jti, event.txn, event.aud) == (ISS, c["jti"], "t-1", ("receiver-1",))
    assert event.subject == ALICE and event.event_type == SESSION_REVOKED
    assert event.occurred_at == NOW  # event_timestamp


def _b64(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# Each case: (what is wrong, how to make the token, the err the receiver must give).
CASES: list[tuple[str, Any, type[SetError]]] = [
    ("not a JWS", lambda tr: "not-a-jwt", InvalidRequest),
    ("empty body", lambda tr: "", InvalidRequest),
    ("typ JWT", lambda tr: tr.sign(claims(tr), typ="JWT"), InvalidRequest),  # R-SET-8
    ("no typ", lambda tr: tr.sign(claims(tr), typ=None), InvalidRequest),
    (
        "payload not JSON",
        lambda tr: f"{_b64({'alg': 'ES256', 'typ': 'secevent+jwt'})}.{_b64(b'[1')}.c2ln",
        InvalidRequest,
    ),
    (
        "alg none",
        lambda tr: f"{_b64({'alg': 'none', 'typ': 'secevent+jwt'})}.{_b64(claims(tr))}.",
        InvalidKey,
    ),  # R-SEC-1
    (
        "alg HS256",
        lambda tr: f"{_b64({'alg': 'HS256', 'typ': 'secevent+jwt'})}.{_b64(claims(tr))}.c2ln",
        InvalidKey,
    ),
    (
        "unknown crit header",
        lambda tr: (
            f"{_b64({'alg': 'ES256', 'typ': 'secevent+jwt', 'crit': ['x'], 'x': 1})}.{_b64(claims(tr))}.c2ln"
        ),
        InvalidRequest,
    ),  # R-SEC-2
    ("wrong iss", lambda tr: tr.sign(claims(tr, iss="https://evil.example.com")), InvalidIssuer),  # R-SET-13
    ("no iss", lambda tr: tr.sign(claims(tr, iss=None)), InvalidIssuer),
    ("unknown kid", lambda tr: sign(claims(tr), new_key("ES256"), "ES256"), InvalidKey),
    ("bad signature", lambda tr: sign(claims(tr), new_key("ES256", kid=tr.key.kid), "ES256"), InvalidKey),
    ("wrong aud", lambda tr: tr.sign(claims(tr, aud="someone-else")), InvalidAudience),  # R-SEC-1
    ("no aud", lambda tr: tr.sign(claims(tr, aud=None)), InvalidAudience),  # AMB-14
    ("aud not strings", lambda tr: tr.sign(claims(tr, aud=[1])), InvalidAudience),
    ("sub claim", lambda tr: tr.sign(claims(tr, sub="alice")), InvalidRequest),  # R-SET-9
    ("exp claim", lambda tr: tr.sign(claims(tr, exp=int(NOW) + 60)), InvalidRequest),  # R-SET-10
    ("no jti", lambda tr: tr.sign(claims(tr, jti=None)), InvalidRequest),  # R-SET-1
    ("no iat", lambda tr: tr.sign(claims(tr, iat=None)), InvalidRequest),
    ("iat in the future", lambda tr: tr.sign(claims(tr, iat=int(NOW) + 3600)), InvalidRequest),  # R-SEC-3
    ("iat a string", lambda tr: tr.sign(claims(tr, iat="now")), InvalidRequest),
    ("no events", lambda tr: tr.sign(claims(tr, events=None)), InvalidRequest),  # R-SET-6
    ("events empty", lambda tr: tr.sign(claims(tr, events={})), InvalidRequest),
    ("event not an object", lambda tr: tr.sign(claims(tr, events={SESSION_REVOKED: []})), InvalidRequest),
    ("no sub_id", lambda tr: tr.sign(claims(tr, sub_id=None)), InvalidRequest),  # R-SET-11
    ("sub_id without format", lambda tr: tr.sign(claims(tr, sub_id={"email": "a@b.c"})), InvalidRequest),
    (
        "sub_id extra member",
        lambda tr: tr.sign(claims(tr, sub_id={**ALICE, "x": 1})),
        InvalidRequest,
    ),  # R-SUB-1
    (
        "sub_id bad phone",
        lambda tr: tr.sign(claims(tr, sub_id={"format": "phone_number", "phone_number": "555"})),
        InvalidRequest,
    ),
    (
        "nested complex",
        lambda tr: tr.sign(claims(tr, sub_id={"format": "complex", "user": {"format": "complex"}})),
        InvalidRequest,
    ),
    ("txn not a string", lambda tr: tr.sign(claims(tr, txn=5)), InvalidRequest),
    (
        "stream-updated bad status",
        lambda tr: tr.sign(
            claims(
                tr, events={STREAM_UPDATED: {"status": "gone"}}, sub_id={"format": "opaque", "id": "stream-1"}
            )
        ),
        InvalidRequest,
    ),  # R-SSFEV-2
]


@pytest.mark.parametrize(("case", "make", "error"), CASES, ids=[c[0] for c in CASES])
def test_each_validation_failure_has_its_err(
    tr: FakeTransmitter, case: str, make: Any, error: type[SetError]
) -> None:
    token = make(tr)
    with pytest.raises(error) as info:
        verifier().verify_token(token, [tr.key])
    assert type(info.value) is error, case
    assert info.value.as_dict() == {"err": error.err, "description": info.value.description}
    assert error.err in {"invalid_request", "invalid_key", "invalid_issuer", "invalid_audience"}


def test_err_codes_are_the_rfc8935_and_ssf_registry() -> None:  # R-PUSH-6
    from receivers import AccessDenied, AuthenticationFailed

    codes = {c.err for c in (InvalidRequest, InvalidKey, InvalidIssuer, InvalidAudience)}
    codes |= {AuthenticationFailed.err, AccessDenied.err, InvalidState.err}
    assert codes == {
        "invalid_request",
        "invalid_key",
        "invalid_issuer",
        "invalid_audience",
        "authentication_failed",
        "access_denied",
        "invalid_state",
    }


def test_wrong_issuer_is_refused_before_any_key_is_needed(tr: FakeTransmitter) -> None:  # R-SEC-9
    parsed = None
    with pytest.raises(InvalidIssuer):
        parsed = verifier().parse(tr.sign(claims(tr, iss="https://other.example.com")))
    assert parsed is None


def test_typ_with_media_type_prefix_and_audience_list(tr: FakeTransmitter) -> None:  # R-SET-8, R-SET-14
    token = tr.sign(claims(tr, aud=["other", "receiver-1"]), typ="application/secevent+jwt")
    assert verifier().verify_token(token, [tr.key]).aud == ("other", "receiver-1")


def test_small_clock_skew_is_tolerated(tr: FakeTransmitter) -> None:  # R-SEC-3
    token = tr.sign(claims(tr, iat=int(NOW) + 30))
    assert verifier(max_future_skew=60).verify_token(token, [tr.key]).iat == NOW + 30


def test_a_set_older_than_the_replay_window_is_refused(tr: FakeTransmitter) -> None:  # R-SEC-3
    week = 7 * 24 * 3600
    old = tr.sign(claims(tr, iat=int(NOW) - week - 1))
    with pytest.raises(InvalidRequest, match="SET is older than the replay window"):
        verifier().verify_token(old, [tr.key])  # on by default: the dedup's default memory
    assert verifier().verify_token(tr.sign(claims(tr, iat=int(NOW) - week + 60)), [tr.key])
    assert verifier(max_age=None).verify_token(old, [tr.key]).iat == NOW - week - 1
    with pytest.raises(InvalidRequest):
        verifier(max_age=60).verify_token(tr.sign(claims(tr, iat=int(NOW) - 61)), [tr.key])


async def test_a_set_issued_before_the_dedup_horizon_is_refused_not_acted_on_twice(
    tr: FakeTransmitter,
) -> None:
    # A full de-duplicator forgets its oldest entries early; a SET issued before the newest
    # forgotten one could be a replay it can no longer recognise.
    now = [NOW]
    dedup = Deduplicator(max_entries=2, clock=lambda: now[0])
    receiver = Receiver(
        SetVerifier(issuer=ISS, audience="receiver-1", clock=lambda: now[0]),
        StaticKeys([tr.key]),
        dedup=dedup,
    )
    first = tr.sign(claims(tr, iat=int(NOW)))
    assert not (await receiver.process(first)).duplicate
    for step in (10, 20):  # two more SETs push the first one out of memory
        now[0] = NOW + step
        await receiver.process(tr.sign(claims(tr, iat=int(NOW) + step)))
    assert dedup.horizon() == NOW
    with pytest.raises(InvalidRequest, match="older than the replay window"):
        await receiver.process(tr.sign(claims(tr, iat=int(NOW) - 1)))
    # The first SET itself is still recognised as issued at the horizon: refused or a repeat,
    # never acted on again.
    assert receiver.processed == 3


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_asymmetric_algorithms_verify(alg: str) -> None:  # R-SET-16
    t = FakeTransmitter(alg=alg)
    t.issuer = ISS
    assert verifier().verify_token(t.sign(claims(t)), [t.key]).iss == ISS


def test_an_algorithm_off_the_allow_list_is_refused() -> None:  # R-SEC-1
    t = FakeTransmitter(alg="ES256")
    t.issuer = ISS
    with pytest.raises(InvalidKey):
        verifier(algorithms=["RS256"]).verify_token(t.sign(claims(t)), [t.key])
    with pytest.raises(ValueError, match="asymmetric"):
        verifier(algorithms=["HS256"])


def test_keys_named_by_kid_only_and_missing_kid_tries_every_key(tr: FakeTransmitter) -> None:  # R-SEC-2
    other = new_key("ES256")
    no_kid = sign(claims(tr), tr.key, "ES256", kid=None)
    assert verifier().verify_token(no_kid, [other, tr.key]).jti
    with pytest.raises(InvalidKey):
        verifier().verify_token(no_kid, [other])


def test_legacy_peers_subject_inside_the_event_and_sse_uris(
    tr: FakeTransmitter,
) -> None:  # AMB-3, AMB-6, AMB-2
    legacy = "https://schemas.openid.net/secevent/sse/event-type/verification"
    c = claims(tr, sub_id=None, events={legacy: {"subject": {"subject_type": "opaque", "id": "stream-1"}}})
    event = verifier().verify_token(tr.sign(c), [tr.key])
    assert event.event_type == VERIFICATION
    assert event.subject == {"format": "opaque", "id": "stream-1"}


def test_unknown_claims_and_event_types_are_accepted(tr: FakeTransmitter) -> None:  # R-SET-15
    c = claims(tr, events={"https://example.com/event/x": {"foo": 1}}, extra={"a": 1})
    assert verifier().verify_token(tr.sign(c), [tr.key]).payload == {"foo": 1}


def test_critical_subject_members_not_understood_discard_the_event(tr: FakeTransmitter) -> None:  # R-SUB-9
    subject = {"format": "complex", "user": ALICE, "workspace": {"format": "opaque", "id": "w1"}}
    token = tr.sign(claims(tr, sub_id=subject))
    with pytest.raises(InvalidRequest, match="workspace"):
        verifier(critical_subject_members=["workspace"]).verify_token(token, [tr.key])
    # Understood, or not critical: best effort on every member.
    ok = verifier(critical_subject_members=["workspace"], understood_members=["user", "workspace"])
    assert ok.verify_token(token, [tr.key]).subject == subject
    assert verifier(critical_subject_members=["tenant"]).verify_token(token, [tr.key]).subject == subject


def test_millisecond_event_timestamps_are_read_as_seconds(tr: FakeTransmitter) -> None:  # AMB-16
    token = tr.sign(claims(tr, payload={"event_timestamp": int(NOW * 1000) - 5000}))
    assert verifier().verify_token(token, [tr.key]).occurred_at == NOW - 5


# -- verification events go through the receiver pipeline (R-VERIFY-*) ------------------------


def _receiver(tr: FakeTransmitter, states: VerificationStates) -> Receiver:
    return Receiver(verifier(), StaticKeys([tr.key]), states=states, stream_id="stream-1")


def _verification(tr: FakeTransmitter, state: str | None, stream_id: str = "stream-1") -> str:
    payload = {} if state is None else {"state": state}
    return tr.sign(claims(tr, events={VERIFICATION: payload}, sub_id={"format": "opaque", "id": stream_id}))


async def test_verification_state_is_checked(tr: FakeTransmitter) -> None:  # R-VERIFY-6
    states = VerificationStates(clock=lambda: NOW, new_state=lambda: "s-1")
    receiver = _receiver(tr, states)
    assert states.new("stream-1") == "s-1"
    with pytest.raises(InvalidState) as info:
        await receiver.process(_verification(tr, "forged"))
    assert info.value.err == "invalid_state"
    assert not states.confirmed("stream-1", "s-1")
    await receiver.process(_verification(tr, "s-1"))
    assert states.confirmed("stream-1", "s-1")
    await receiver.process(_verification(tr, "s-1"))  # a repeat of a confirmed state is fine (R-VERIFY-3)


async def test_unsolicited_verification_is_accepted(tr: FakeTransmitter) -> None:  # R-VERIFY-5
    receiver = _receiver(tr, VerificationStates(clock=lambda: NOW))
    assert (await receiver.process(_verification(tr, None))).event.event_type == VERIFICATION


async def test_verification_naming_another_stream_is_refused(
    tr: FakeTransmitter,
) -> None:  # conformance WrongSubject
    states = VerificationStates(clock=lambda: NOW, new_state=lambda: "s-2")
    states.new("stream-1")
    with pytest.raises(InvalidRequest, match="another stream"):
        await _receiver(tr, states).process(_verification(tr, "s-2", stream_id="stream-9"))


def test_pending_states_expire(tr: FakeTransmitter) -> None:
    now = [NOW]
    states = VerificationStates(clock=lambda: now[0], ttl=60, new_state=lambda: "s")
    states.new("stream-1")
    assert states.pending("stream-1") == ["s"]
    now[0] += 61
    assert states.pending("stream-1") == []


def test_real_time_clock_default() -> None:
    assert abs(SetVerifier(issuer=ISS, audience="a").clock() - time.time()) < 5


# -- SSE ID1 (2021) stream events: no subject, a null state (AMB-7) --------------------------------

SSE_VERIFICATION = "https://schemas.openid.net/secevent/sse/event-type/verification"


def _id1_verification(tr: FakeTransmitter, payload: dict[str, Any]) -> str:
    return tr.sign(claims(tr, sub_id=None, events={SSE_VERIFICATION: payload}))


async def test_an_id1_verification_names_no_subject_and_answers_the_receivers_own_stream(
    tr: FakeTransmitter,
) -> None:
    states = VerificationStates(clock=lambda: NOW, new_state=lambda: "s-3")
    states.new("stream-1")

    result = await _receiver(tr, states).process(_id1_verification(tr, {"state": "s-3"}))

    assert (result.event.event_type, result.event.subject) == (VERIFICATION, {})
    assert states.confirmed("stream-1", "s-3")
    with pytest.raises(InvalidState):
        await _receiver(tr, states).process(_id1_verification(tr, {"state": "forged"}))


async def test_a_receiver_of_several_streams_finds_the_one_that_asked(tr: FakeTransmitter) -> None:
    states = VerificationStates(clock=lambda: NOW, new_state=lambda: "s-4")
    states.new("stream-7")
    receiver = Receiver(verifier(), StaticKeys([tr.key]), states=states)  # no stream of its own

    await receiver.process(_id1_verification(tr, {"state": "s-4"}))

    assert states.confirmed("stream-7", "s-4")


async def test_a_null_state_is_an_unsolicited_verification(tr: FakeTransmitter) -> None:  # R-VERIFY-5
    event = (
        await _receiver(tr, VerificationStates(clock=lambda: NOW)).process(
            _id1_verification(tr, {"state": None})
        )
    ).event
    assert event.event_type == VERIFICATION
    with pytest.raises(InvalidRequest, match="state must be a string"):
        verifier().verify_token(_id1_verification(tr, {"state": 7}), [tr.key])


def test_only_stream_events_may_name_no_subject(tr: FakeTransmitter) -> None:  # R-SET-11
    revocation = tr.sign(claims(tr, sub_id=None, events={SSE_VERIFICATION: {}, SESSION_REVOKED: {}}))
    with pytest.raises(InvalidRequest, match="no sub_id"):
        verifier().verify_token(revocation, [tr.key])
    google = tr.sign(
        claims(
            tr,
            sub_id=None,
            events={"https://schemas.openid.net/secevent/risc/event-type/verification": {"state": "g"}},
        )
    )
    assert verifier().verify_token(google, [tr.key]).events == {VERIFICATION: {"state": "g"}}
