"""A feed that dies is seen, and a SET whose handler failed comes back (issue 17, problems 2, 3).

Against a real hub: a deleted stream makes the poll consumer unhealthy with its error kept and
raised from ``running()``, and the middleware fails closed (``503`` + ``Retry-After``) within its
bound; a hub that goes away is retried with back-off and also fails the middleware closed once
the last success is too old. A revocation whose store write failed once is not acknowledged
(poll) or answered ``500`` (push), so the hub delivers it again and it is applied (R-POLL-5,
R-PUSH-7, R-SEC-3).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receivers import (
    BearerJwtIdentity,
    ContinuousAccess,
    ContinuousAccessMiddleware,
    JwtVerifier,
    PollConsumer,
    PushEndpoint,
    ReceivedEvent,
    StaticKeys,
    StaticToken,
    StreamClient,
    StreamConfig,
    TransmitterError,
    push_delivery,
)
from receivers.events import SESSION_REVOKED
from receivers.revocations import Revocation
from receivers.stores import MemoryRevocationStore
from tests.receivers.support import ALICE, FakeAuthServer
from tests.support.hub import RunningHub, run_hub
from tests.support.receiver import eventually
from tests.support.servers import serve_app

MAX_FEED_AGE = 3.0


async def tool(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def gateway(access: ContinuousAccess, consumer: PollConsumer, idp: FakeAuthServer) -> httpx.AsyncClient:
    verifier = JwtVerifier(StaticKeys([idp.key]), issuer=idp.issuer, audience="tools", typ="at+jwt")
    app = ContinuousAccessMiddleware(
        Starlette(routes=[Route("/tools/search", tool, methods=["POST"])]),
        access,
        identity=BearerJwtIdentity(verifier),
        feed=consumer,
        max_feed_age=MAX_FEED_AGE,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tool")


@pytest.fixture
def idp() -> FakeAuthServer:
    server = FakeAuthServer()
    server.issuer = "https://idp.example.com"
    return server


async def subscribe(hub: RunningHub, http: httpx.AsyncClient) -> tuple[StreamClient, StreamConfig]:
    client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("receiver-1")))
    stream = await client.create_stream(events_requested=[SESSION_REVOKED])
    await client.add_subject(stream.stream_id, ALICE)
    return client, stream


async def test_a_deleted_stream_fails_the_gateway_closed_and_is_not_swallowed(
    tmp_path: Path, idp: FakeAuthServer
) -> None:
    async with (
        run_hub(tmp_path / "data", long_poll_seconds=1.0) as hub,
        httpx.AsyncClient(timeout=10) as http,
    ):
        client, stream = await subscribe(hub, http)
        access = ContinuousAccess()
        consumer = client.poll_consumer(stream, dispatcher=access.dispatcher, request_timeout=10)
        token = idp.mint("u-alice", email="alice@example.com", sid="s-1")
        headers = {"Authorization": f"Bearer {token}"}
        async with gateway(access, consumer, idp) as tools:

            async def delete_while_serving() -> None:
                async with consumer.running():
                    await eventually(lambda: consumer.healthy)
                    assert (await tools.post("/tools/search", headers=headers)).status_code == 200
                    await client.delete_stream(stream.stream_id)
                    deleted = time.monotonic()
                    while (r := await tools.post("/tools/search", headers=headers)).status_code == 200:
                        assert time.monotonic() - deleted < MAX_FEED_AGE, "still serving past the bound"
                        await asyncio.sleep(0.05)
                    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
                    assert r.json()["error"] == "temporarily_unavailable"
                    assert not consumer.healthy
                    assert consumer.error is not None and consumer.error.status == 404
                    assert consumer.last_error is consumer.error

            with pytest.raises(TransmitterError) as info:
                await delete_while_serving()
            assert info.value.status == 404  # running() raises it on exit
            assert (await tools.post("/tools/search", headers=headers)).status_code == 503


async def test_a_hub_that_goes_away_is_retried_and_the_gateway_fails_closed_when_stale(
    tmp_path: Path, idp: FakeAuthServer
) -> None:
    access = ContinuousAccess()
    headers = {"Authorization": f"Bearer {idp.mint('u-alice', email='alice@example.com')}"}
    async with httpx.AsyncClient(timeout=10) as http:
        async with run_hub(tmp_path / "data", long_poll_seconds=0.5) as hub:
            client, stream = await subscribe(hub, http)
            consumer = client.poll_consumer(stream, dispatcher=access.dispatcher, request_timeout=5)
            consumer.backoff_max = 0.5
            tools = gateway(access, consumer, idp)
            task = asyncio.create_task(consumer.run())
            await eventually(lambda: consumer.healthy)
            assert (await tools.post("/tools/search", headers=headers)).status_code == 200
        gone = time.monotonic()  # the hub is down: polls fail, the consumer backs off and retries
        await eventually(lambda: consumer.failures >= 2)
        assert not consumer.healthy and consumer.error is None  # transient: not fatal
        assert isinstance(consumer.last_error, httpx.HTTPError) and not task.done()
        while (r := await tools.post("/tools/search", headers=headers)).status_code == 200:
            assert time.monotonic() - gone < MAX_FEED_AGE + 1.0, "still serving a stale feed"
            await asyncio.sleep(0.05)
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        await consumer.stop()
        await asyncio.wait_for(task, 5)
        await tools.aclose()


class FlakyRevocations(MemoryRevocationStore):
    """A revocation store whose first write fails (a Redis blip)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def revoke(self, revocation: Revocation) -> Revocation:
        self.attempts += 1
        if self.attempts == 1:
            raise ConnectionError("store unavailable")
        return await super().revoke(revocation)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with run_hub(tmp_path / "data", long_poll_seconds=1.0) as running:
        yield running


async def test_a_failed_revocation_write_is_not_acknowledged_and_comes_back_by_poll(hub: RunningHub) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        client, stream = await subscribe(hub, http)
        revocations = FlakyRevocations()
        access = ContinuousAccess(revocations=revocations)
        seen: list[str] = []
        access.dispatcher.add(SESSION_REVOKED, lambda e: seen.append(e.jti))
        receiver = client.receiver(stream, dispatcher=access.dispatcher)
        consumer = client.poll_consumer(stream, receiver=receiver, request_timeout=10)
        emitted = await hub.emit("session-revoked", ALICE)
        (jti,) = [s["jti"] for s in emitted["sets"]]
        async with consumer.running():
            await eventually(lambda: len(revocations) == 1)
        assert seen == [jti, jti]  # handed to the handlers twice: the hub redelivered it
        assert revocations.attempts == 2 and receiver.handler_failures == 1
        assert await access.revocations.applicable([ALICE], None) is not None
        assert (await hub.poll(stream.raw))["sets"] == {}  # acknowledged the second time


async def test_a_failed_handler_answers_500_and_the_push_is_retried(tmp_path: Path) -> None:
    endpoint = PushEndpoint(None, authorization="Bearer hub-to-tool")
    async with (
        run_hub(tmp_path / "data", allow_private_endpoints=True, push_retry_schedule="0.05") as hub,
        serve_app(endpoint) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("receiver-1")))
        delivery = push_delivery(url + "/", "Bearer hub-to-tool")
        stream = await client.create_stream(events_requested=[SESSION_REVOKED], delivery=delivery)
        await client.add_subject(stream.stream_id, ALICE)
        access = ContinuousAccess()
        calls: list[str] = []

        @access.dispatcher.on(SESSION_REVOKED)
        async def flaky(event: ReceivedEvent) -> None:
            calls.append(event.jti)
            if len(calls) == 1:
                raise RuntimeError("downstream cache flush failed")

        receiver = client.receiver(stream, dispatcher=access.dispatcher)
        endpoint.receiver = receiver
        emitted = await hub.emit("session-revoked", ALICE)
        await eventually(lambda: len(calls) == 2)
        assert calls[0] == calls[1] == emitted["sets"][0]["jti"]
        assert receiver.handler_failures == 1 and receiver.processed == 1
        assert await access.revocations.applicable([ALICE], None) is not None
        admin = hub.auth("op", "ssf.admin")

        async def state() -> str:
            sets = (await hub.client.get(f"/ssf/admin/trace/{emitted['txn']}", headers=admin)).json()["sets"]
            return str(sets[0]["state"])

        deadline = time.monotonic() + 5
        while await state() != "delivered":
            assert time.monotonic() < deadline, "the hub never saw the 202 of the retry"
            await asyncio.sleep(0.05)
