"""PollConsumer behaviour that needs a misbehaving transmitter (RFC 8936 client side, R-POLL-2..5)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from joserfc.jwk import Key

from receivers import KeysUnavailable, PollConsumer, Receiver, SetVerifier, StaticKeys
from tests.receivers.support import FakeTransmitter


def receiver(tr: FakeTransmitter, keys: Any = None) -> Receiver:
    return Receiver(SetVerifier(issuer=tr.issuer, audience=tr.aud), keys or StaticKeys([tr.key]))


async def test_failures_back_off_exponentially_with_jitter_and_stop_cleanly() -> None:
    delays: list[float] = []
    consumer: PollConsumer

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 6:
            await consumer.stop()

    bodies = iter(
        [httpx.Response(503), httpx.Response(500, json={"err": "x"}), httpx.Response(200, text="{not json")]
    )

    def failing(request: httpx.Request) -> httpx.Response:
        return next(bodies, None) or httpx.Response(429)

    tr = FakeTransmitter()
    async with httpx.AsyncClient(transport=httpx.MockTransport(failing)) as http:
        consumer = PollConsumer(
            "https://tr/poll",
            receiver(tr),
            http=http,
            backoff_initial=1,
            backoff_max=8,
            jitter=lambda: 1.0,
            sleep=fake_sleep,
        )
        await asyncio.wait_for(consumer.run(), timeout=5)
    assert delays == [1, 2, 4, 8, 8, 8]  # jitter() == 1.0 gives the full delay
    consumer.failures, consumer.jitter = 3, lambda: 0.0
    assert consumer.backoff_delay() == 2.0  # jitter scales into [50 %, 100 %]


class FlakyKeys:
    """The first lookup cannot be answered yet (as a JwksCache right after a fetch)."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.calls = 0

    async def keys_for(self, kid: str | None) -> list[Key]:
        self.calls += 1
        if self.calls == 1:
            raise KeysUnavailable("not looked up yet", retry_after=2.0)
        return [self.key]


async def test_a_set_whose_key_is_not_available_yet_is_left_for_redelivery() -> None:
    tr = FakeTransmitter()
    claims = tr.claims()
    token, jti = tr.sign(claims), claims["jti"]
    requests: list[dict[str, Any]] = []
    delays: list[float] = []
    consumer: PollConsumer

    async def transmitter(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        acked = any(jti in r.get("ack", []) for r in requests)
        if acked:
            await consumer.stop()
        return httpx.Response(200, json={"sets": {} if acked else {jti: token}})

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)

    async with httpx.AsyncClient(transport=httpx.MockTransport(transmitter)) as http:
        consumer = PollConsumer(
            "https://tr/poll", receiver(tr, FlakyKeys(tr.key)), http=http, sleep=fake_sleep
        )
        await asyncio.wait_for(consumer.run(), timeout=5)
    assert delays == [2.0]  # waited for the key cache instead of spinning on the same SET
    assert "ack" not in requests[1] and "setErrs" not in requests[1]  # neither acked nor reported
    assert requests[2]["ack"] == [jti]
