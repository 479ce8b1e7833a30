"""Signing-key rotation with an overlap period (issue #2 Keys; R-SET-16)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.support.hub import RunningHub, on_each_store, run_hub
from tests.support.receiver import Reply, push_receiver
from tests.support.sets import verify_set

ALICE = {"format": "email", "email": "alice@example.com"}


@on_each_store
async def test_sets_signed_before_a_rotation_still_verify(hub: RunningHub) -> None:
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], ALICE)
    await hub.emit("session-revoked", ALICE)
    old_kid = (await hub.jwks())["keys"][0]["kid"]

    r = await hub.client.post("/ssf/admin/keys/rotate", headers=hub.auth("operator", "ssf.admin"))
    assert r.status_code == 200
    new_kid = r.json()["active_kid"]
    assert new_kid != old_kid

    await hub.emit("session-revoked", ALICE)
    jwks = await hub.jwks()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}  # both published during the overlap
    tokens = list((await hub.poll(s))["sets"].values())
    kids = []
    for token in tokens:
        verify_set(token, jwks, iss=hub.issuer, aud=s["aud"])
        header = __import__("json").loads(__import__("base64").urlsafe_b64decode(token.split(".")[0] + "=="))
        kids.append(header["kid"])
    assert kids == [old_kid, new_kid]


async def test_rotation_needs_admin(hub: RunningHub) -> None:
    r = await hub.client.post("/ssf/admin/keys/rotate", headers=hub.auth())
    assert r.status_code == 403


def kid_of(token: str) -> str:
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    kid: str = header["kid"]
    return kid


@on_each_store
async def test_a_key_retired_at_once_leaves_the_jwks_and_queued_sets_are_re_signed(hub: RunningHub) -> None:
    # Issue 13, key compromise: the leaked key must stop verifying now, and nothing queued under
    # it may be lost (a receiver would refuse it with invalid_key).
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], ALICE)
    (queued,) = (await hub.emit("session-revoked", ALICE))["sets"]
    leaked = (await hub.jwks())["keys"][0]["kid"]
    assert kid_of(next(iter((await hub.poll(s))["sets"].values()))) == leaked

    r = await hub.client.post(
        "/ssf/admin/keys/rotate", json={"retire_now": True}, headers=hub.auth("secops", "ssf.admin")
    )
    assert r.status_code == 200, r.text
    fresh = r.json()["active_kid"]
    jwks = await hub.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [fresh]  # the leaked key is gone at once

    sets = (await hub.poll(s))["sets"]  # hub.poll verifies every SET against the served JWKS
    token = sets[queued["jti"]]
    assert kid_of(token) == fresh
    claims = verify_set(token, jwks, iss=hub.issuer, aud=s["aud"])
    assert claims["jti"] == queued["jti"]  # the same SET, signed again


async def test_a_retired_key_is_re_signed_on_push_too(tmp_path: Path) -> None:
    async with push_receiver() as receiver, run_hub(tmp_path / "data", allow_private_endpoints=True) as hub:
        receiver.default = Reply(503)  # held in the queue while the key is retired
        delivery = {"method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url}
        s = await hub.create_stream(delivery=delivery)
        await hub.add_subject(s["stream_id"], ALICE)
        await hub.emit("session-revoked", ALICE)
        await receiver.wait_for(1)
        leaked = kid_of(receiver.bodies()[0])
        r = await hub.client.post(
            "/ssf/admin/keys/rotate", json={"retire_now": True}, headers=hub.auth("secops", "ssf.admin")
        )
        receiver.default = Reply(202)
        (body,) = await receiver.wait_accepted(1, timeout=30)
        assert kid_of(body) == r.json()["active_kid"] != leaked
        verify_set(body, await hub.jwks(), iss=hub.issuer, aud=s["aud"])


async def test_the_rotate_body_is_checked(hub: RunningHub) -> None:
    r = await hub.client.post(
        "/ssf/admin/keys/rotate", json={"retire_now": "yes"}, headers=hub.auth("secops", "ssf.admin")
    )
    assert r.status_code == 400
