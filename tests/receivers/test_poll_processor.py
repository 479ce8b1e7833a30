"""A PollConsumer feeds any SetProcessor, not only a Receiver: a hub relaying what it polls
hands SETs to its own pipeline and reports that pipeline's refusals in ``setErrs`` (R-POLL-2)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from receivers import PollConsumer
from receivers.errors import InvalidIssuer


class Relay:
    """Accepts SETs starting with "ok", refuses the others as from an unknown issuer."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def process(self, token: str) -> object:
        self.seen.append(token)
        if not token.startswith("ok"):
            raise InvalidIssuer("not an issuer this relay trusts")
        return token


async def test_a_custom_processor_gets_every_set_and_its_refusals_become_set_errs() -> None:
    requests: list[dict[str, Any]] = []

    def transmitter(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        sets = {"j1": "ok.a.b", "j2": "bad.a.b"} if len(requests) == 1 else {}
        return httpx.Response(200, json={"sets": sets})

    relay = Relay()
    async with httpx.AsyncClient(transport=httpx.MockTransport(transmitter)) as http:
        consumer = PollConsumer("https://tr/poll", relay, http=http)
        batch = await consumer.poll_once()
        await consumer.acknowledge()
    assert relay.seen == ["ok.a.b", "bad.a.b"]
    assert (batch.received, batch.acknowledged) == (2, 1)
    assert requests[1]["ack"] == ["j1"]
    assert requests[1]["setErrs"] == {
        "j2": {"err": "invalid_issuer", "description": "not an issuer this relay trusts"}
    }
