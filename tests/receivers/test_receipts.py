"""ReceiptSender (issue #14) against a real ssf-hub: what the library did with a SET reaches
the hub's trace as remediation receipts, batched, without ever holding up the remediation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from receivers import ContinuousAccess, StaticToken, StreamClient, TokenCache
from receivers.events import SESSION_REVOKED
from receivers.receipts import ReceiptSender
from tests.receivers.support import ALICE
from tests.support.hub import RunningHub, run_hub
from tests.support.receiver import eventually


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with run_hub(tmp_path / "data", long_poll_seconds=1.0) as running:
        yield running


async def receipts_of(hub: RunningHub, jti: str) -> list[dict[str, object]]:
    r = await hub.client.get(f"/ssf/admin/trace/{jti}", headers=hub.auth("operator", "ssf.admin"))
    assert r.status_code == 200, r.text
    (item,) = r.json()["sets"]
    found: list[dict[str, object]] = item["receipts"]
    return found


def alice_token(hub: RunningHub) -> str:
    # Any JWT naming Alice works as a cached credential: the cache reads its claims unverified.
    return hub.token("alice@example.com", "ssf.read")


async def test_a_dropped_token_becomes_a_receipt_in_the_hubs_trace(hub: RunningHub) -> None:
    cache = TokenCache(name="agent")
    cache.put("alice", alice_token(hub), subjects=[ALICE])
    access = ContinuousAccess(token_caches=[cache])
    async with httpx.AsyncClient(timeout=10) as http:
        client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("receiver-1")))
        stream = await client.create_stream(events_requested=[SESSION_REVOKED])
        await client.add_subject(stream.stream_id, ALICE)
        sender = ReceiptSender.for_stream(client, stream.stream_id, interval=0.05)
        sender.attach(access)
        assert sender.url == hub.issuer + "/ssf/receipts"
        (item,) = (await hub.emit("session-revoked", ALICE))["sets"]

        async with sender.running():
            consumer = client.poll_consumer(stream, dispatcher=access.dispatcher, request_timeout=10)
            async with consumer.running():
                await eventually(lambda: len(cache) == 0, timeout=5)  # the remediation itself did not wait
                await eventually(lambda: sender.sent == 1, timeout=5)

    (receipt,) = await receipts_of(hub, item["jti"])
    assert (receipt["action"], receipt["count"]) == ("token_dropped", 1)
    assert sender.dropped == 0 and sender.batches == 1


async def test_receipts_go_in_batches_with_repeats_summed(hub: RunningHub) -> None:
    stream = await hub.create_stream()
    await hub.add_subject(stream["stream_id"], ALICE)
    (item,) = (await hub.emit("session-revoked", ALICE))["sets"]
    async with httpx.AsyncClient(timeout=10) as http:
        client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("receiver-1")))
        sender = ReceiptSender.for_stream(client, stream["stream_id"], max_batch=100, interval=0.05)
        async with sender.running():
            for _ in range(250):  # a stale caller retrying: 250 refusals in a burst
                assert sender.report(item["jti"], "request_refused")
            sender.report(item["jti"], "token_dropped", count=2)
            await eventually(lambda: sender.sent == 251, timeout=5)

    assert sender.batches <= 3  # 251 receipts: at most three calls of at most 100
    receipts = await receipts_of(hub, item["jti"])
    refused = sum(int(str(r["count"])) for r in receipts if r["action"] == "request_refused")
    assert refused == 250 and len(receipts) <= 4  # summed per batch, not one row per refusal
    assert [r["count"] for r in receipts if r["action"] == "token_dropped"] == [2]


async def test_a_full_buffer_drops_receipts_instead_of_blocking() -> None:
    async with httpx.AsyncClient() as http:
        sender = ReceiptSender("http://127.0.0.1:9/ssf/receipts", "s1", http=http, max_buffer=3)
        accepted = [sender.report("j1", "ignored") for _ in range(5)]
    assert accepted == [True, True, True, False, False]
    assert sender.dropped == 2
    with pytest.raises(ValueError, match="action must be one of"):
        sender.report("j1", "rebooted")


async def test_a_hub_that_refuses_or_does_not_answer_costs_a_log_line_not_an_error(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    stream = await hub.create_stream()
    caplog.set_level(logging.WARNING, logger="receivers.receipts")
    async with httpx.AsyncClient(timeout=2) as http:
        wrong_owner = ReceiptSender(
            hub.issuer + "/ssf/receipts",
            stream["stream_id"],
            http=http,
            auth=StaticToken(hub.token("receiver-2")),
        )
        wrong_owner.report("j1", "token_dropped")
        assert await wrong_owner.flush() == 0
        nobody = ReceiptSender("http://127.0.0.1:9/ssf/receipts", "s1", http=http)
        nobody.report("j1", "token_dropped")
        assert await nobody.flush() == 0

    assert (wrong_owner.dropped, nobody.dropped) == (1, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP 404" in m for m in messages) and any("not sent" in m for m in messages)
    assert not any(hub.token("receiver-2")[:20] in m for m in messages)  # never a token in logs
