"""Push delivery end to end over real loopback HTTP (RFC 8935, R-PUSH-*)."""

from __future__ import annotations

from pathlib import Path

from tests.support.hub import CAEP, run_hub
from tests.support.receiver import Reply, push_receiver
from tests.support.sets import verify_set

ALICE = {"format": "email", "email": "alice@example.com"}
PUSH = "urn:ietf:rfc:8935"


async def test_a_pushed_set_arrives_signed_with_the_rfc_8935_headers(tmp_path: Path) -> None:  # R-PUSH-1
    async with push_receiver() as receiver, run_hub(tmp_path, allow_private_endpoints=True) as hub:
        delivery = {"method": PUSH, "endpoint_url": receiver.url, "authorization_header": "Bearer rcv-secret"}
        stream = await hub.create_stream(delivery=delivery)
        assert stream["delivery"] == delivery
        await hub.add_subject(stream["stream_id"], ALICE)
        (item,) = (await hub.emit("session-revoked", ALICE))["sets"]
        (got,) = await receiver.wait_for(1)
        assert got.headers["content-type"] == "application/secevent+jwt"
        assert got.headers["accept"] == "application/json"
        assert got.headers["authorization"] == "Bearer rcv-secret"
        claims = verify_set(got.body, await hub.jwks(), iss=hub.issuer, aud=stream["aud"])
        assert claims["jti"] == item["jti"]
        assert list(claims["events"]) == [CAEP + "session-revoked"]
        r = await hub.client.get(f"/ssf/admin/trace/{item['jti']}", headers=hub.auth("op", "ssf.admin"))
        (trace,) = r.json()["sets"]
        assert trace["state"] == "delivered" or trace["state"] == "pending"


async def test_retry_after_503_resends_the_same_set(tmp_path: Path) -> None:  # R-PUSH-8
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule="0,0.05,0.05") as hub,
    ):
        receiver.then(Reply(503), Reply(503))
        stream = await hub.create_stream(delivery={"method": PUSH, "endpoint_url": receiver.url})
        await hub.add_subject(stream["stream_id"], ALICE)
        await hub.emit("session-revoked", ALICE)
        received = await receiver.wait_for(3)
        assert len(set(receiver.bodies())) == 1  # same jti, same signature
        assert "authorization" not in received[0].headers
