"""The receivers library against a real transmitter: ssf-hub on loopback, poll delivery (RFC 8936).

Covers the receiver-side conformance modules (research/conformance.md §6.2) that poll delivery
can exercise: happy path, create/delete, status update, verification (solicited, behind queued
events, wrong state), setErrs for invalid SETs, redelivery, access-token expiry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from receivers import (
    PUSH_METHOD,
    BearerAuth,
    ClientCredentials,
    ContinuousAccess,
    IssuerMismatch,
    PollConsumer,
    PushEndpoint,
    ReceivedEvent,
    Receiver,
    StaticToken,
    StreamClient,
    StreamConfig,
    TransmitterError,
    push_delivery,
)
from receivers.events import CREDENTIAL_CHANGE, SESSION_REVOKED, VERIFICATION
from tests.push.helpers import until as until_recorded
from tests.receivers.support import ALICE, FakeAuthServer, serve_auth_server
from tests.support.hub import RunningHub, run_hub
from tests.support.servers import serve_app


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with run_hub(tmp_path / "data", long_poll_seconds=1.0) as running:
        yield running


@dataclass
class Subscribed:
    hub: RunningHub
    client: StreamClient
    stream: StreamConfig
    access: ContinuousAccess
    receiver: Receiver
    seen: list[ReceivedEvent]
    http: httpx.AsyncClient

    def consumer(self, receiver: Receiver | None = None) -> PollConsumer:
        return self.client.poll_consumer(self.stream, receiver=receiver or self.receiver, request_timeout=10)


@pytest.fixture
async def sub(hub: RunningHub) -> AsyncIterator[Subscribed]:
    async with httpx.AsyncClient(timeout=10) as http:
        client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("receiver-1")))
        stream = await client.create_stream(events_requested=[SESSION_REVOKED, CREDENTIAL_CHANGE])
        await client.add_subject(stream.stream_id, ALICE)
        access = ContinuousAccess()
        seen: list[ReceivedEvent] = []
        access.dispatcher.add("*", seen.append)
        receiver = client.receiver(stream, dispatcher=access.dispatcher)
        yield Subscribed(hub, client, stream, access, receiver, seen, http)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def queued(s: Subscribed) -> dict[str, str]:
    """What the hub still holds for the stream (a raw poll that does not acknowledge)."""
    return dict((await s.hub.poll(s.stream.raw))["sets"])


async def test_stream_lifecycle(hub: RunningHub) -> None:
    # conformance OIDSSFReceiverHappyPathTest, ...StreamCreateDeleteTest, ...StreamStatusUpdateTest
    async with httpx.AsyncClient() as http:
        client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("receiver-1")))
        assert client.metadata.issuer == hub.issuer and client.metadata.spec_version == "1_0"  # R-DISC-4
        stream = await client.create_stream(events_requested=[SESSION_REVOKED], description="agents")
        assert stream.delivery_method == "urn:ietf:rfc:8936" and stream.endpoint_url  # R-STREAM-6
        assert stream.aud == ("receiver-1",) and stream.events_delivered == (SESSION_REVOKED,)
        assert (await client.get_stream(stream.stream_id)).description == "agents"
        assert [s.stream_id for s in await client.list_streams()] == [stream.stream_id]
        patched = await client.update_stream(stream.stream_id, description="patched")  # R-STREAM-10
        assert patched.description == "patched" and patched.events_requested == (SESSION_REVOKED,)
        replaced = await client.replace_stream(
            stream.stream_id, events_requested=[CREDENTIAL_CHANGE]
        )  # R-STREAM-11
        assert replaced.description is None and replaced.events_delivered == (CREDENTIAL_CHANGE,)
        assert (await client.get_status(stream.stream_id)).status == "enabled"
        assert (await client.set_status(stream.stream_id, "paused", "maintenance")).status == "paused"
        await client.add_subject(stream.stream_id, ALICE)
        await client.remove_subject(stream.stream_id, ALICE)
        await client.delete_stream(stream.stream_id)
        with pytest.raises(TransmitterError) as info:
            await client.get_stream(stream.stream_id)
        assert info.value.status == 404


async def test_poll_consumer_receives_verifies_acts_and_acknowledges(sub: Subscribed) -> None:
    # conformance OIDSSFReceiverStreamVerificationTest, ...VerificationBehindQueuedEventsTest; R-POLL-5
    emitted = [await sub.hub.emit("session-revoked", ALICE) for _ in range(3)]  # queued before verification
    state = await sub.client.request_verification(sub.stream.stream_id)
    async with sub.consumer().running():
        await until(lambda: sub.client.states.confirmed(sub.stream.stream_id, state) and len(sub.seen) == 4)
    assert [e.event_type for e in sub.seen] == [SESSION_REVOKED] * 3 + [VERIFICATION]
    assert {e.txn for e in sub.seen[:3]} == {e["txn"] for e in emitted}
    assert await sub.access.revocations.applicable([ALICE], None) is not None
    assert await queued(sub) == {}  # everything acknowledged, the last acks on shutdown


async def test_invalid_sets_are_reported_in_set_errs(sub: Subscribed) -> None:
    # conformance OIDSSFReceiverInvalidSetRejectionTest (poll) and ...VerificationWrongStateTest
    wrong_aud = sub.client.receiver(sub.stream, dispatcher=sub.access.dispatcher, audience="not-me")
    (item,) = (await sub.hub.emit("session-revoked", ALICE))["sets"]
    consumer = sub.consumer(wrong_aud)
    first = await consumer.poll_once(return_immediately=True)
    assert first.rejected == {
        item["jti"]: {"err": "invalid_audience", "description": "aud does not name this receiver"}
    }
    await consumer.acknowledge()  # setErrs acknowledge too: the hub stops offering the SET
    assert await queued(sub) == {}

    r = await sub.hub.client.post(
        "/ssf/verify", json={"stream_id": sub.stream.stream_id, "state": "forged"}, headers=sub.hub.auth()
    )
    assert r.status_code == 204
    good = sub.consumer()
    await good.poll_once(return_immediately=True)
    _, errs = good.outstanding
    assert [e["err"] for e in errs.values()] == ["invalid_state"]
    await good.acknowledge()
    assert await queued(sub) == {}
    report = await sub.hub.client.get(
        f"/ssf/admin/streams/{sub.stream.stream_id}/errors", headers=sub.hub.auth("op", "ssf.admin")
    )
    assert sorted(e["err"] for e in report.json()["set_errors"]) == ["invalid_audience", "invalid_state"]
    assert sub.seen == []


async def test_a_redelivered_set_is_acknowledged_again_and_acted_on_once(sub: Subscribed) -> None:
    # conformance OIDSSFReceiverRedeliveredSetTest (poll SHOULD); R-SEC-3
    await sub.hub.emit("session-revoked", ALICE)
    lost = sub.consumer()
    await lost.poll_once(return_immediately=True)  # processed; its ack never reaches the hub
    again = sub.consumer()
    batch = await again.poll_once(return_immediately=True)
    assert batch.received == 1 and batch.acknowledged == 1
    assert len(sub.seen) == 1 and sub.receiver.duplicates == 1
    await again.acknowledge()
    assert await queued(sub) == {}


async def test_clean_shutdown_abandons_the_long_poll_and_flushes_acks(sub: Subscribed) -> None:
    consumer = sub.consumer()
    async with consumer.running():
        await sub.hub.emit("session-revoked", ALICE)
        await until(lambda: len(sub.seen) == 1)
        await asyncio.sleep(0.05)  # back in a long poll, holding the ack for the next request
    loop = asyncio.get_running_loop()
    assert consumer.outstanding == ([], {})
    started = loop.time()
    assert await queued(sub) == {}
    assert loop.time() - started < 1.0


async def test_the_consumer_stops_when_the_stream_is_deleted(sub: Subscribed) -> None:
    consumer = sub.consumer()
    await sub.client.delete_stream(sub.stream.stream_id)
    with pytest.raises(TransmitterError) as info:
        await asyncio.wait_for(consumer.run(), timeout=5)
    assert info.value.status == 404


async def test_a_foreign_issuer_stream_is_not_used() -> (
    None
):  # conformance StreamIssuerMismatchTest, R-STREAM-5
    issuer = "https://tr.example.com"

    def transmitter(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/ssf-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": issuer,
                    "jwks_uri": issuer + "/jwks",
                    "configuration_endpoint": issuer + "/stream",
                },
            )
        config = {
            "stream_id": "s1",
            "iss": "https://evil.example.com",
            "aud": "r",
            "delivery": {"method": "urn:ietf:rfc:8936"},
        }
        return httpx.Response(201, json=config)

    async with httpx.AsyncClient(transport=httpx.MockTransport(transmitter)) as http:
        client = await StreamClient.discover(issuer, http=http)
        with pytest.raises(IssuerMismatch):
            await client.create_stream()
        foreign = StreamConfig.from_json({"stream_id": "s1", "iss": "https://evil.example.com", "aud": "r"})
        with pytest.raises(IssuerMismatch):
            client.receiver(foreign)


async def test_an_expired_access_token_is_refreshed_after_401(tmp_path: Path) -> None:
    # conformance OIDSSFReceiverAccessTokenExpiryTest (dynamic auth); RFC 6750 §3.1
    async with serve_auth_server(FakeAuthServer()) as auth_server:
        auth_server.clients["agent-7"] = "secret-7"
        auth_server.expired_tokens = 1  # the first token is already expired when the hub sees it
        issuers = [
            {"issuer": auth_server.issuer, "jwks_uri": auth_server.issuer + "/jwks", "audience": "ssf-hub"}
        ]
        async with (
            run_hub(tmp_path / "data", external_issuers=issuers, token_leeway=0) as hub,
            httpx.AsyncClient() as http,
        ):
            source = ClientCredentials(
                auth_server.issuer + "/token", "agent-7", http=http, client_secret="secret-7"
            )
            client = await StreamClient.discover(hub.issuer, http=http, auth=BearerAuth(source))
            stream = await client.create_stream(events_requested=[SESSION_REVOKED])
            assert stream.stream_id and source.requests == 2
            assert (await client.get_status(stream.stream_id)).status == "enabled" and source.requests == 2


async def test_push_delivery_from_the_hub(tmp_path: Path) -> None:
    # conformance OIDSSFReceiverStreamVerificationTest (push), ...VerificationWrongStateTest (push)
    endpoint = PushEndpoint(None, authorization="Bearer hub-to-tool")
    async with (
        run_hub(tmp_path / "data", allow_private_endpoints=True, push_retry_schedule="0.05") as hub,
        serve_app(endpoint) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("receiver-1")))
        delivery = push_delivery(url + "/", "Bearer hub-to-tool")
        stream = await client.create_stream(events_requested=[SESSION_REVOKED], delivery=delivery)
        assert stream.delivery_method == PUSH_METHOD
        await client.add_subject(stream.stream_id, ALICE)
        access = ContinuousAccess()
        endpoint.receiver = client.receiver(stream, dispatcher=access.dispatcher)
        state = await client.request_verification(stream.stream_id)
        await until(lambda: client.states.confirmed(stream.stream_id, state))
        emitted = await hub.emit("session-revoked", ALICE)
        await until(lambda: bool(access.audit.find("access_revoked")))
        assert await access.revocations.applicable([ALICE], None) is not None

        r = await hub.client.post(
            "/ssf/verify", json={"stream_id": stream.stream_id, "state": "forged"}, headers=hub.auth()
        )
        assert r.status_code == 204
        admin = hub.auth("op", "ssf.admin")

        async def trace_of(ident: str) -> list[dict[str, Any]]:
            sets: list[dict[str, Any]] = (
                await hub.client.get(f"/ssf/admin/trace/{ident}", headers=admin)
            ).json()["sets"]
            return sets

        async def recorded() -> bool:
            return bool((await trace_of(emitted["txn"]))[0]["state"] == "delivered")

        # The receiver acts before it answers 202; the hub records the delivery after that answer.
        await until_recorded(recorded)
        (delivered,) = await trace_of(emitted["txn"])
        assert delivered["state"] == "delivered"

        async def last_error() -> str:
            listing = (await hub.client.get("/ssf/admin/streams", headers=admin)).json()
            (ours,) = [x for x in listing if x["stream_id"] == stream.stream_id]
            return str(ours.get("last_error") or "")

        deadline = asyncio.get_running_loop().time() + 5
        while "invalid_state" not in await last_error():  # our 400 reached the hub (R-VERIFY-6)
            assert asyncio.get_running_loop().time() < deadline, "the hub never saw invalid_state"
            await asyncio.sleep(0.05)
