"""``hub.subscribe()`` against a real ssf-hub on loopback: one call finds or creates the stream,
adds the subjects, starts receiving and returns once verification came back (R-VERIFY-*)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from receivers import ContinuousAccess, Hub, Poll, Push, PushEndpoint, StaticToken
from receivers.audit import ACCESS_REVOKED
from receivers.errors import IssuerMismatch
from receivers.events import CREDENTIAL_CHANGE, SESSION_REVOKED, VERIFICATION, ReceivedEvent
from receivers.subscription import Subscription
from tests.receivers.support import ALICE, BOB
from tests.support.hub import RunningHub, run_hub
from tests.support.servers import serve_app


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with run_hub(tmp_path / "data", long_poll_seconds=1.0, allow_private_endpoints=True) as running:
        yield running


def connect(hub: RunningHub, sub: str = "receiver-1") -> Hub:
    return Hub(hub.issuer, auth=StaticToken(hub.token(sub)))


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def revoked(access: ContinuousAccess) -> list[Any]:
    """The subjects ``access`` revoked, from its audit log."""
    return [r.subject for r in access.audit.find(ACCESS_REVOKED)]


def recorder(access: ContinuousAccess) -> list[ReceivedEvent]:
    seen: list[ReceivedEvent] = []
    access.dispatcher.add("*", seen.append)
    return seen


async def stream_ids(hub: RunningHub) -> list[str]:
    r = await hub.client.get("/ssf/stream", headers=hub.auth())
    body = r.json() if r.status_code == 200 else []
    return [s["stream_id"] for s in (body if isinstance(body, list) else [body])]


async def test_subscribe_creates_a_verified_stream_and_acts_on_its_events(hub: RunningHub) -> None:
    access = ContinuousAccess()
    seen = recorder(access)
    async with connect(hub).subscribe(
        events=["session-revoked", CREDENTIAL_CHANGE], subjects=[ALICE], on=access
    ) as sub:
        assert sub.created and sub.stream is not None
        assert set(sub.stream.events_delivered) == {SESSION_REVOKED, CREDENTIAL_CHANGE}
        assert sub.client is not None and sub.verification_state is not None  # awaited before the block
        assert sub.client.states.confirmed(sub.stream_id, sub.verification_state)
        await until(lambda: [e.event_type for e in seen] == [VERIFICATION])
        await hub.emit("session-revoked", ALICE)
        await until(lambda: revoked(access) == [ALICE])
        await hub.emit("session-revoked", BOB)  # not a subject of the stream: not delivered
        await asyncio.sleep(0.3)
    assert [e.subject for e in seen[1:]] == [ALICE]
    assert await stream_ids(hub) == [sub.stream_id]  # kept: a service finds it again


async def test_a_restarted_subscriber_finds_its_stream_and_what_queued_meanwhile(hub: RunningHub) -> None:
    first = ContinuousAccess()
    async with connect(hub).subscribe(events=[SESSION_REVOKED], subjects=[ALICE], on=first) as before:
        pass
    await hub.emit("session-revoked", ALICE)  # while nobody listens
    again = ContinuousAccess()
    seen = recorder(again)
    async with connect(hub).subscribe(
        events=[SESSION_REVOKED, CREDENTIAL_CHANGE], subjects=[ALICE], on=again
    ) as after:
        assert after.stream_id == before.stream_id and not after.created
        assert after.stream is not None and CREDENTIAL_CHANGE in after.stream.events_delivered  # updated
        await until(lambda: SESSION_REVOKED in [e.event_type for e in seen])
    assert await stream_ids(hub) == [before.stream_id]


async def test_delete_on_exit_leaves_nothing_behind(hub: RunningHub) -> None:
    async with connect(hub).subscribe(events=[SESSION_REVOKED], delete_on_exit=True) as sub:
        assert await stream_ids(hub) == [sub.stream_id]
        consumer = sub.consumer
    assert await stream_ids(hub) == []
    assert consumer is not None and consumer.outstanding == ([], {})  # acknowledgements flushed first
    r = await hub.client.get("/ssf/stream", params={"stream_id": sub.stream_id}, headers=hub.auth())
    assert r.status_code == 404


async def test_start_and_stop_without_a_block(hub: RunningHub) -> None:
    access = ContinuousAccess()
    sub = connect(hub).subscribe(events=[SESSION_REVOKED], subjects=[ALICE], on=access, delete_on_exit=True)
    await sub.start()
    try:
        await hub.emit("session-revoked", ALICE)
        await until(lambda: revoked(access) == [ALICE])
        await sub.verified(timeout=5)  # verification can be awaited again at any time
    finally:
        await sub.stop()
    await sub.stop()  # idempotent
    assert await stream_ids(hub) == []


async def test_names_keep_different_subscribers_apart(hub: RunningHub) -> None:
    async with (
        connect(hub).subscribe(events=[SESSION_REVOKED], name="tool server") as tools,
        connect(hub).subscribe(events=[SESSION_REVOKED], name="gateway") as gateway,
    ):
        assert tools.stream_id != gateway.stream_id
        assert tools.stream is not None and tools.stream.description == "tool server"


async def test_push_through_an_endpoint_with_its_own_secret(hub: RunningHub) -> None:
    endpoint = PushEndpoint()  # makes its secret; nothing to wire twice
    assert isinstance(endpoint.authorization, str) and endpoint.authorization.startswith("Bearer ")
    assert PushEndpoint().authorization != endpoint.authorization
    access = ContinuousAccess()
    seen = recorder(access)
    async with serve_app(endpoint) as url:
        push = Push(url + "/", endpoint=endpoint)
        assert push.config()["authorization_header"] == endpoint.authorization
        async with connect(hub).subscribe(
            events=[SESSION_REVOKED], subjects=[ALICE], delivery=push, on=access, delete_on_exit=True
        ) as sub:
            assert sub.stream is not None and sub.stream.endpoint_url == url + "/"
            assert sub.client is not None and sub.verification_state is not None  # came by push
            assert sub.client.states.confirmed(sub.stream_id, sub.verification_state)
            await until(lambda: [e.event_type for e in seen] == [VERIFICATION])
            await hub.emit("session-revoked", ALICE)
            await until(lambda: revoked(access) == [ALICE])
            async with httpx.AsyncClient() as http:  # without the secret: refused before any crypto
                r = await http.post(url + "/", content=b"x", headers={"Authorization": "Bearer guess"})
            assert r.status_code == 400 and r.json()["err"] == "authentication_failed"
        assert endpoint.receiver is None  # unsubscribed: answers 503 until subscribed again


async def test_a_restarted_push_subscriber_sends_its_new_secret(hub: RunningHub) -> None:
    for attempt in range(2):
        endpoint = PushEndpoint()
        access = ContinuousAccess()
        async with serve_app(endpoint) as url:
            subscription: Subscription = connect(hub).subscribe(
                events=[SESSION_REVOKED],
                subjects=[ALICE],
                delivery=Push(url + "/", endpoint=endpoint),
                on=access,
                name="gateway push",
            )
            async with subscription as sub:  # verification arrives only with the current secret
                assert sub.created == (attempt == 0)
    assert len(await stream_ids(hub)) == 1


async def test_a_foreign_issuer_stream_is_named_and_deleted() -> None:
    # R-STREAM-5: the stream must not be used; one orphan per retry is avoided by deleting it.
    issuer = "https://tr.example.com"
    deleted: list[str] = []

    def transmitter(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/ssf-configuration":
            doc = {
                "issuer": issuer,
                "jwks_uri": issuer + "/jwks",
                "configuration_endpoint": issuer + "/stream",
            }
            return httpx.Response(200, json=doc)
        if request.method == "GET":
            return httpx.Response(200, json=[])
        if request.method == "DELETE":
            deleted.append(request.url.params["stream_id"])
            return httpx.Response(204)
        config = {"stream_id": "s1", "iss": "https://evil.example.com", "aud": "r", "delivery": {}}
        return httpx.Response(201, json=config)

    async with httpx.AsyncClient(transport=httpx.MockTransport(transmitter)) as http:
        hub = Hub(issuer, http=http)
        client = await hub.client()
        with pytest.raises(IssuerMismatch) as kept:
            await client.create_stream()
        assert kept.value.stream_id == "s1" and not kept.value.deleted and deleted == []
        with pytest.raises(IssuerMismatch) as info:
            await hub.subscribe(events=[SESSION_REVOKED], delivery=Poll()).start()
        assert info.value.stream_id == "s1" and info.value.deleted and deleted == ["s1"]


async def test_verification_requested_too_soon_is_asked_again(tmp_path: Path) -> None:
    # R-VERIFY-2: a restart within min_verification_interval gets 429 first, then verifies.
    async with run_hub(tmp_path / "data", long_poll_seconds=1.0, min_verification_interval=1) as hub:
        async with connect(hub).subscribe(events=[SESSION_REVOKED]):
            pass
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with connect(hub).subscribe(events=[SESSION_REVOKED]) as again:
            assert not again.created
        assert loop.time() - started >= 0.5  # waited for the interval instead of failing


async def test_verification_that_never_arrives_times_out(hub: RunningHub) -> None:
    async with Hub(hub.issuer, auth=StaticToken(hub.token())) as subscriber:
        client = await subscriber.client()
        stream = await client.create_stream(events_requested=[SESSION_REVOKED])
        with pytest.raises(TimeoutError):
            await client.verified(stream.stream_id, timeout=0.3)  # nobody is receiving
        assert client.states.pending(stream.stream_id)
