"""Signing-key rotation with an overlap period (issue #2 Keys; R-SET-16)."""

from __future__ import annotations

from tests.support.hub import RunningHub, on_each_store
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
