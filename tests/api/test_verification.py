"""Verification requests and events (R-VERIFY-*, R-SSFEV-1)."""

from __future__ import annotations

from pathlib import Path

from tests.support.hub import SSF, RunningHub, on_each_store, run_hub


async def test_verification_echoes_state(hub: RunningHub) -> None:  # R-VERIFY-1, -4
    s = await hub.create_stream()
    r = await hub.client.post(
        "/ssf/verify", json={"stream_id": s["stream_id"], "state": "xyz-123"}, headers=hub.auth()
    )
    assert r.status_code == 204 and r.content == b""
    (claims,) = await hub.poll_verified(s)
    assert claims["events"] == {SSF + "verification": {"state": "xyz-123"}}
    assert claims["sub_id"] == {"format": "opaque", "id": s["stream_id"]}
    assert "txn" not in claims or isinstance(claims["txn"], str)


async def test_verification_without_state_has_no_state(hub: RunningHub) -> None:  # R-VERIFY-4
    s = await hub.create_stream()
    await hub.client.post("/ssf/verify", json={"stream_id": s["stream_id"]}, headers=hub.auth())
    (claims,) = await hub.poll_verified(s)
    assert claims["events"] == {SSF + "verification": {}}


async def test_verification_does_not_need_events_requested(hub: RunningHub) -> None:  # R-VERIFY-5, R-SSFEV-3
    s = await hub.create_stream(events_requested=[])
    await hub.client.post("/ssf/verify", json={"stream_id": s["stream_id"], "state": "s"}, headers=hub.auth())
    assert len(await hub.poll_verified(s)) == 1


async def test_verification_errors(hub: RunningHub) -> None:  # R-VERIFY-2
    r = await hub.client.post(
        "/ssf/verify", content=b"{oops", headers={**hub.auth(), "content-type": "application/json"}
    )
    assert r.status_code == 400
    r = await hub.client.post("/ssf/verify", json={"stream_id": "nope"}, headers=hub.auth())
    assert r.status_code == 404
    s = await hub.create_stream()
    r = await hub.client.post(
        "/ssf/verify", json={"stream_id": s["stream_id"], "state": 5}, headers=hub.auth()
    )
    assert r.status_code == 400


async def test_min_verification_interval_gives_429(tmp_path: Path) -> None:  # R-VERIFY-2
    async with run_hub(tmp_path, min_verification_interval=30) as hub:
        s = await hub.create_stream()
        assert s["min_verification_interval"] == 30
        body = {"stream_id": s["stream_id"]}
        assert (await hub.client.post("/ssf/verify", json=body, headers=hub.auth())).status_code == 204
        r = await hub.client.post("/ssf/verify", json=body, headers=hub.auth())
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 30
        assert len((await hub.poll(s))["sets"]) == 1  # only the first was sent


@on_each_store
async def test_two_verifications_poll_and_ack(hub: RunningHub) -> None:  # conformance PollAndAck
    s = await hub.create_stream()
    await hub.client.post(
        "/ssf/verify", json={"stream_id": s["stream_id"], "state": "one"}, headers=hub.auth()
    )
    (first,) = await hub.poll_verified(s)
    await hub.client.post(
        "/ssf/verify", json={"stream_id": s["stream_id"], "state": "two"}, headers=hub.auth()
    )
    (second,) = await hub.poll_verified(s, ack=[first["jti"]])
    assert second["events"][SSF + "verification"]["state"] == "two"
    # ack-only request (maxEvents 0) empties the queue
    assert await hub.poll(s, ack=[second["jti"]], maxEvents=0) == {"sets": {}}
    assert await hub.poll(s) == {"sets": {}}
