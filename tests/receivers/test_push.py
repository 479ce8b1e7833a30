"""Push delivery to a receiver (RFC 8935, R-PUSH-*) from a minimal in-test transmitter on loopback.

The transmitter publishes discovery metadata and a JWKS, signs SETs with its own key and POSTs
them with httpx, exactly as RFC 8935 says; the receiver fetches and caches the JWKS over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from receivers import (
    ContinuousAccess,
    JwksCache,
    KeysUnavailable,
    PushEndpoint,
    ReceivedEvent,
    Receiver,
    SetVerifier,
    fetch_metadata,
)
from receivers.events import SESSION_REVOKED, STREAM_UPDATED, VERIFICATION
from tests.receivers.support import ALICE, BOB, FakeTransmitter, new_key, serve_transmitter, sign
from tests.support.servers import serve_app

PUSH_SECRET = "Bearer push-secret-1"


@dataclass
class PushSetup:
    tr: FakeTransmitter
    receiver: Receiver
    access: ContinuousAccess
    url: str
    http: httpx.AsyncClient
    seen: list[ReceivedEvent]
    jwks_clock: list[float]

    async def push(self, token: str, authorization: str | None = PUSH_SECRET) -> httpx.Response:
        return await self.tr.push(self.http, self.url, token, authorization=authorization)


@pytest.fixture
async def setup() -> AsyncIterator[PushSetup]:
    async with serve_transmitter(FakeTransmitter()) as tr, httpx.AsyncClient(timeout=10) as http:
        metadata = await fetch_metadata(tr.issuer, http=http)  # R-DISC-1
        access = ContinuousAccess()
        seen: list[ReceivedEvent] = []
        access.dispatcher.add("*", seen.append)
        jwks_clock = [0.0]
        receiver = Receiver(
            SetVerifier(issuer=metadata.issuer, audience=tr.aud),
            JwksCache(metadata.jwks_uri, http=http, clock=lambda: jwks_clock[0], min_refetch_interval=10),
            dispatcher=access.dispatcher,
            stream_id=tr.stream_id,
        )
        async with serve_app(PushEndpoint(receiver, authorization=PUSH_SECRET)) as url:
            yield PushSetup(tr, receiver, access, url + "/", http, seen, jwks_clock)


async def test_a_valid_set_is_accepted_with_202_and_acted_on(setup: PushSetup) -> None:  # R-PUSH-4
    r = await setup.push(setup.tr.set())
    assert r.status_code == 202 and r.content == b""
    assert [e.event_type for e in setup.seen] == [SESSION_REVOKED]
    assert await setup.access.revocations.applicable([ALICE], None) is not None  # in force before the 202


@pytest.mark.parametrize(
    ("tamper", "err"),
    [
        ("signature", "invalid_key"),
        ("iss", "invalid_issuer"),
        ("aud", "invalid_audience"),
        ("kid", "invalid_key"),
        ("typ", "invalid_request"),
        ("body", "invalid_request"),
    ],
)
async def test_tampered_sets_are_refused_with_400_and_err(setup: PushSetup, tamper: str, err: str) -> None:
    # conformance OIDSSFReceiverInvalidSetRejectionTest; R-PUSH-5, R-PUSH-6
    tr = setup.tr
    claims = tr.claims()
    if tamper == "signature":
        token = sign(claims, new_key("ES256", kid=tr.key.kid), "ES256")
    elif tamper == "iss":
        token = tr.sign({**claims, "iss": "https://evil.example.com"})
    elif tamper == "aud":
        token = tr.sign({**claims, "aud": "another-receiver"})
    elif tamper == "kid":
        token = sign(claims, new_key("ES256"), "ES256")
    elif tamper == "typ":
        token = tr.sign(claims, typ="JWT")
    else:
        token = "this is not a SET"
    r = await setup.push(token)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-language"] == "en"
    body = r.json()
    assert set(body) == {"err", "description"} and body["err"] == err
    assert setup.seen == []


async def test_the_transmitter_is_authenticated_before_any_crypto(
    setup: PushSetup,
) -> None:  # R-SEC-9, R-PUSH-10
    for header in (None, "Bearer wrong", PUSH_SECRET + "x"):
        r = await setup.push(setup.tr.set(), authorization=header)
        assert r.status_code == 400 and r.json()["err"] == "authentication_failed"
        assert r.headers["www-authenticate"] == "Bearer"
    assert setup.tr.jwks_requests == 0 and setup.seen == []


async def test_other_methods_and_oversized_bodies(setup: PushSetup) -> None:
    assert (await setup.http.get(setup.url)).status_code == 405
    r = await setup.push("a" * 70_000)
    assert r.status_code == 413


async def test_a_redelivered_set_is_accepted_again_and_acted_on_once(setup: PushSetup) -> None:
    # conformance OIDSSFReceiverRedeliveredSetTest; R-SEC-3
    token = setup.tr.set()
    assert (await setup.push(token)).status_code == 202
    assert (await setup.push(token)).status_code == 202
    assert len(setup.seen) == 1 and setup.receiver.duplicates == 1


async def test_events_for_subjects_never_added_or_removed_are_accepted(setup: PushSetup) -> None:
    # R-SUBJ-6, conformance OIDSSFReceiverRemovedSubjectEventTest
    r = await setup.push(setup.tr.set(subject=BOB))
    assert r.status_code == 202 and setup.seen[0].subject == BOB


async def test_unsolicited_verification_and_stream_updated_are_accepted(setup: PushSetup) -> None:
    # R-VERIFY-5, R-SSFEV-2, conformance OIDSSFReceiverUnsolicitedStreamVerificationTest
    own = {"format": "opaque", "id": setup.tr.stream_id}
    assert (await setup.push(setup.tr.set(VERIFICATION, payload={}, subject=own))).status_code == 202
    paused = setup.tr.set(STREAM_UPDATED, payload={"status": "paused", "reason": "maintenance"}, subject=own)
    assert (await setup.push(paused)).status_code == 202
    assert setup.receiver.stream_status == "paused"


async def test_verification_with_a_wrong_state_is_refused_with_invalid_state(setup: PushSetup) -> None:
    # R-VERIFY-6, conformance OIDSSFReceiverVerificationWrongStateTest
    own = {"format": "opaque", "id": setup.tr.stream_id}
    state = setup.receiver.states.new(setup.tr.stream_id)
    r = await setup.push(setup.tr.set(VERIFICATION, payload={"state": "not-" + state}, subject=own))
    assert r.status_code == 400 and r.json()["err"] == "invalid_state"
    r = await setup.push(setup.tr.set(VERIFICATION, payload={"state": state}, subject=own))
    assert r.status_code == 202 and setup.receiver.states.confirmed(setup.tr.stream_id, state)


async def test_key_rotation_is_followed_and_made_up_kids_do_not_cause_fetches(setup: PushSetup) -> None:
    # R-SEC-2: refetch on an unknown kid, at a bounded rate
    assert (await setup.push(setup.tr.set())).status_code == 202
    assert setup.tr.jwks_requests == 1
    setup.tr.rotate()
    # Signed with the new key right after our fetch: not refused for good, but "retry later".
    rotated = setup.tr.set()
    r = await setup.push(rotated)
    assert r.status_code == 503 and int(r.headers["retry-after"]) == 10
    assert setup.tr.jwks_requests == 1 and setup.seen[1:] == []
    setup.jwks_clock[0] += 10
    assert (await setup.push(rotated)).status_code == 202  # the transmitter's retry
    assert setup.tr.jwks_requests == 2
    setup.jwks_clock[0] += 10
    made_up = sign(setup.tr.claims(), new_key("ES256"), "ES256")
    r = await setup.push(made_up)  # looked up once: definitively unknown
    assert r.status_code == 400 and r.json()["err"] == "invalid_key"
    assert setup.tr.jwks_requests == 3
    for _ in range(3):  # more made-up kids within the interval: no fetch at all
        r = await setup.push(sign(setup.tr.claims(), new_key("ES256"), "ES256"))
        assert r.status_code == 503
    assert (await setup.push(made_up)).json()["err"] == "invalid_key"
    assert setup.tr.jwks_requests == 3


async def test_jwks_cache_keeps_keys_when_a_refetch_fails_and_rate_limits() -> None:
    tr = FakeTransmitter()
    now = [0.0]
    async with serve_transmitter(tr), httpx.AsyncClient() as http:
        cache = JwksCache(tr.issuer + "/jwks.json", http=http, clock=lambda: now[0], min_refetch_interval=30)
        assert [k.kid for k in await cache.keys_for(tr.key.kid)] == [tr.key.kid]
        with pytest.raises(KeysUnavailable):  # just fetched: no refetch yet
            await cache.keys_for("unknown")
        assert cache.fetches == 1
        now[0] = 31
        assert await cache.keys_for("unknown") == [] and cache.fetches == 2
        cache.jwks_uri = tr.issuer + "/missing"
        now[0] = 62
        with pytest.raises(KeysUnavailable):  # the fetch failed: no verdict on "other"
            await cache.keys_for("other")
        assert cache.fetches == 3
        assert [k.kid for k in await cache.keys_for(tr.key.kid)] == [tr.key.kid]  # still held
        now[0] = 4000  # past max_age: refetched, and the failure keeps what was held
        assert [k.kid for k in await cache.keys_for(tr.key.kid)] == [tr.key.kid] and cache.fetches == 4


async def test_jwks_cache_finds_a_key_published_after_the_first_token_it_signed() -> None:
    # A transmitter may sign with a new key a moment before its JWKS lists it. The kid is then
    # absent, but looked for again at the next allowed fetch, not only after max_age.
    tr = FakeTransmitter()
    now = [0.0]
    async with serve_transmitter(tr), httpx.AsyncClient() as http:
        cache = JwksCache(tr.issuer + "/jwks.json", http=http, clock=lambda: now[0], min_refetch_interval=30)
        await cache.keys_for(tr.key.kid)
        early = new_key("ES256")
        now[0] = 31
        assert await cache.keys_for(early.kid) == [] and cache.fetches == 2  # absent: invalid_key
        now[0] = 40
        assert await cache.keys_for(early.kid) == [] and cache.fetches == 2  # rate limit holds
        tr.keys.append(early)  # the transmitter publishes it
        now[0] = 62
        assert [k.kid for k in await cache.keys_for(early.kid)] == [early.kid] and cache.fetches == 3


async def test_jwks_cache_retries_a_failed_fetch_on_its_own_shorter_interval() -> None:
    tr = FakeTransmitter()
    now = [0.0]
    async with serve_transmitter(tr), httpx.AsyncClient() as http:
        cache = JwksCache(
            tr.issuer + "/missing",
            http=http,
            clock=lambda: now[0],
            min_refetch_interval=60,
            min_retry_interval=5,
        )
        with pytest.raises(KeysUnavailable) as refused:
            await cache.keys_for(tr.key.kid)
        assert not cache.has_keys and refused.value.retry_after == 5
        cache.jwks_uri = tr.issuer + "/jwks.json"
        now[0] = 4
        with pytest.raises(KeysUnavailable):  # still inside the retry interval
            await cache.keys_for(tr.key.kid)
        now[0] = 5
        assert [k.kid for k in await cache.keys_for(tr.key.kid)] == [tr.key.kid]  # fetched: keys held
        assert cache.fetches == 2
