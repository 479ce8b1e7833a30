"""Stream status: read, update, paused holds, disabled drops (R-STATUS-*)."""

from __future__ import annotations

from tests.support.hub import SSF, RunningHub, on_each_store

ALICE = {"format": "email", "email": "alice@example.com"}


async def _stream_with_alice(hub: RunningHub) -> dict:
    stream = await hub.create_stream()
    await hub.add_subject(stream["stream_id"], ALICE)
    return stream


async def test_new_stream_is_enabled(hub: RunningHub) -> None:  # R-STATUS-1
    s = await hub.create_stream()
    r = await hub.client.get(
        "/ssf/status", params={"stream_id": s["stream_id"]}, headers=hub.auth(scope="ssf.read")
    )
    assert r.status_code == 200
    assert r.json() == {"stream_id": s["stream_id"], "status": "enabled"}


async def test_status_errors(hub: RunningHub) -> None:  # R-STATUS-2, -3
    assert (await hub.client.get("/ssf/status", headers=hub.auth())).status_code == 400
    assert (
        await hub.client.get("/ssf/status", params={"stream_id": "nope"}, headers=hub.auth())
    ).status_code == 404
    s = await hub.create_stream()
    bodies: list[object] = [{"stream_id": s["stream_id"], "status": "sleeping"}, {"status": "paused"}, []]
    for body in bodies:
        r = await hub.client.post("/ssf/status", json=body, headers=hub.auth())
        assert r.status_code == 400, body
    r = await hub.client.post(
        "/ssf/status", json={"stream_id": "nope", "status": "paused"}, headers=hub.auth()
    )
    assert r.status_code == 404


async def test_each_status_can_be_set_and_read_back(hub: RunningHub) -> None:  # R-STATUS-3, R-STATUS-8
    s = await hub.create_stream()
    for status in ("paused", "disabled", "enabled"):
        body = {"stream_id": s["stream_id"], "status": status, "reason": f"test {status}"}
        r = await hub.client.post("/ssf/status", json=body, headers=hub.auth())
        assert r.status_code == 200
        assert r.json() == body
        r = await hub.client.get("/ssf/status", params={"stream_id": s["stream_id"]}, headers=hub.auth())
        assert r.json() == body


@on_each_store
async def test_paused_stream_holds_events_until_enabled(hub: RunningHub) -> None:  # R-STATUS-5, R-STATUS-9
    s = await _stream_with_alice(hub)
    await hub.client.post(
        "/ssf/status", json={"stream_id": s["stream_id"], "status": "paused"}, headers=hub.auth()
    )
    emitted = await hub.emit("session-revoked", ALICE)
    assert len(emitted["sets"]) == 1  # queued, held
    await hub.client.post(
        "/ssf/verify", json={"stream_id": s["stream_id"], "state": "v1"}, headers=hub.auth()
    )
    assert (await hub.poll(s)) == {"sets": {}}  # 200, nothing delivered
    await hub.client.post(
        "/ssf/status", json={"stream_id": s["stream_id"], "status": "enabled"}, headers=hub.auth()
    )
    claims = await hub.poll_verified(s)
    assert [c["jti"] for c in claims] == [emitted["sets"][0]["jti"], claims[1]["jti"]]
    assert claims[1]["events"][SSF + "verification"] == {"state": "v1"}


@on_each_store
async def test_disabled_stream_drops_events(hub: RunningHub) -> None:  # R-STATUS-6
    s = await _stream_with_alice(hub)
    held = await hub.emit("session-revoked", ALICE)  # queued before disabling: dropped too
    assert len(held["sets"]) == 1
    await hub.client.post(
        "/ssf/status", json={"stream_id": s["stream_id"], "status": "disabled"}, headers=hub.auth()
    )
    emitted = await hub.emit("session-revoked", ALICE)
    assert emitted["sets"] == [] and emitted["dropped_streams"] == [s["stream_id"]]
    await hub.client.post("/ssf/verify", json={"stream_id": s["stream_id"]}, headers=hub.auth())
    assert (await hub.poll(s)) == {"sets": {}}
    await hub.client.post(
        "/ssf/status", json={"stream_id": s["stream_id"], "status": "enabled"}, headers=hub.auth()
    )
    assert (await hub.poll(s)) == {"sets": {}}  # nothing was kept
    # ... and a new verification after re-enabling arrives
    await hub.client.post(
        "/ssf/verify", json={"stream_id": s["stream_id"], "state": "after"}, headers=hub.auth()
    )
    (claims,) = await hub.poll_verified(s)
    assert claims["events"][SSF + "verification"] == {"state": "after"}
    # The drop is audited for the operator.
    r = await hub.client.get(
        f"/ssf/admin/streams/{s['stream_id']}/errors", headers=hub.auth("op", "ssf.admin")
    )
    kinds = [a["kind"] for a in r.json()["audit"]]
    assert "event_dropped" in kinds and "events_dropped" in kinds


async def test_transmitter_initiated_pause_is_announced_first(
    hub: RunningHub,
) -> None:  # R-STATUS-7, R-SSFEV-2
    s = await _stream_with_alice(hub)
    admin = hub.auth("operator", "ssf.admin")
    r = await hub.client.post(
        f"/ssf/admin/streams/{s['stream_id']}/status",
        json={"status": "paused", "reason": "maintenance"},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["status"] == "paused"
    await hub.emit("session-revoked", ALICE)  # held
    (claims,) = await hub.poll_verified(s)  # the announcement goes out although paused
    assert claims["events"] == {SSF + "stream-updated": {"status": "paused", "reason": "maintenance"}}
    assert claims["sub_id"] == {"format": "opaque", "id": s["stream_id"]}
    await hub.poll(s, ack=[claims["jti"]])
    r = await hub.client.post(
        f"/ssf/admin/streams/{s['stream_id']}/status", json={"status": "enabled"}, headers=admin
    )
    assert r.status_code == 200
    after = await hub.poll_verified(s)
    uris = [next(iter(c["events"])) for c in after]
    # held event first, then the enabled announcement
    assert uris == [
        "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
        SSF + "stream-updated",
    ]
    assert after[1]["events"][SSF + "stream-updated"]["status"] == "enabled"


async def test_receiver_status_change_is_not_announced(
    hub: RunningHub,
) -> None:  # R-STATUS-7 applies to T only
    s = await hub.create_stream()
    await hub.client.post(
        "/ssf/status", json={"stream_id": s["stream_id"], "status": "paused"}, headers=hub.auth()
    )
    await hub.client.post(
        "/ssf/status", json={"stream_id": s["stream_id"], "status": "enabled"}, headers=hub.auth()
    )
    assert (await hub.poll(s)) == {"sets": {}}
