"""Auto-pause when push keeps failing, and resuming (R-STATUS-4, R-STATUS-5, R-STATUS-7)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.push.helpers import (
    admin,
    claims_of,
    emit_one,
    jti_of,
    push_stream,
    stream_view,
    until,
    until_drained,
)
from tests.support.hub import SSF, RunningHub, run_hub
from tests.support.receiver import PushReceiver, Reply, push_receiver

STREAM_UPDATED = SSF + "stream-updated"
# Each SET exhausts "0,0.05" after two attempts; failing 0.2 s past that pauses the stream.
PAUSE_FAST: dict[str, Any] = {
    "allow_private_endpoints": True,
    "push_retry_schedule": "0,0.05",
    "push_pause_after": 0.2,
}


async def status_of(hub: RunningHub, stream_id: str) -> dict[str, Any]:
    r = await hub.client.get("/ssf/status", params={"stream_id": stream_id}, headers=hub.auth())
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def stream_updates(receiver: PushReceiver) -> list[tuple[str, dict[str, Any]]]:
    """(jti, stream-updated payload) for every stream-updated request, in arrival order."""
    out = []
    for body in receiver.bodies():
        claims = claims_of(body)
        if STREAM_UPDATED in claims["events"]:
            out.append((claims["jti"], claims["events"][STREAM_UPDATED]))
    return out


async def fail_until_paused(hub: RunningHub, receiver: PushReceiver) -> tuple[dict[str, Any], list[str]]:
    """A stream whose receiver answers 503 until the hub pauses it; the SETs it holds."""
    receiver.default = Reply(503)
    stream = await push_stream(hub, receiver.url)
    sid = stream["stream_id"]
    held = [await emit_one(hub) for _ in range(3)]

    async def paused() -> bool:
        return bool((await status_of(hub, sid))["status"] == "paused")

    await until(paused, timeout=10)
    status = await status_of(hub, sid)
    assert status["reason"].startswith("delivery failing: HTTP 503"), status  # R-STATUS-1 reason
    # The hub announced the pause (R-STATUS-7): a stream-updated SET is queued and attempted.
    await until(lambda: _announced(receiver, "paused"))
    (_, update), *_ = stream_updates(receiver)
    assert update["status"] == "paused" and update["reason"] == status["reason"]
    # Paused: held, not dropped (R-STATUS-5), and nothing but stream-updated is attempted.
    view = await stream_view(hub, sid)
    assert view["status"] == "paused" and view["queued"] >= 3
    assert view["failing_since"] is not None
    return stream, held


async def _announced(receiver: PushReceiver, status: str) -> bool:
    return any(update["status"] == status for _, update in stream_updates(receiver))


async def test_a_failing_stream_is_paused_announced_and_resumed_by_the_receiver(tmp_path: Path) -> None:
    async with push_receiver() as receiver, run_hub(tmp_path, **PAUSE_FAST) as hub:
        stream, held = await fail_until_paused(hub, receiver)
        sid = stream["stream_id"]
        data_requests = [jti_of(b) for b in receiver.bodies() if jti_of(b) in held]
        assert set(data_requests) == {held[0]}  # only the head was ever tried

        # The receiver recovers: the stream-updated SET gets through, the held SETs do not.
        receiver.default = Reply(202)
        await until(lambda: _accepted_update(receiver))
        assert not any(jti_of(b) in held[1:] for b in receiver.bodies())  # still held while paused
        r = await hub.client.post(
            "/ssf/status", json={"stream_id": sid, "status": "enabled"}, headers=hub.auth()
        )
        assert r.status_code == 200 and r.json()["status"] == "enabled", r.text

        accepted = await receiver.wait_accepted(1 + len(held))
        assert [jti_of(b) for b in accepted if jti_of(b) in held] == held  # in order, each once
        assert (await status_of(hub, sid))["status"] == "enabled"
        # The receiver saw the last SET before the hub committed its 202; wait for that commit.
        await until_drained(hub, sid)
        view = await stream_view(hub, sid)
        assert view["failing_since"] is None and view["queued"] == 0


async def _accepted_update(receiver: PushReceiver) -> bool:
    return any(STREAM_UPDATED in claims_of(b)["events"] for b in receiver.accepted())


async def test_an_operator_re_enables_a_paused_stream_and_the_hub_announces_it(tmp_path: Path) -> None:
    async with push_receiver() as receiver, run_hub(tmp_path, **PAUSE_FAST) as hub:
        stream, held = await fail_until_paused(hub, receiver)
        sid = stream["stream_id"]
        receiver.default = Reply(202)
        r = await hub.client.post(
            f"/ssf/admin/streams/{sid}/status",
            json={"status": "enabled", "reason": "receiver fixed"},
            headers=admin(hub),
        )
        assert r.status_code == 200 and r.json()["status"] == "enabled", r.text

        # Held SETs in order, plus the pause and the re-enable announcements (R-STATUS-7).
        accepted = await receiver.wait_accepted(len(held) + 2)
        assert [jti_of(b) for b in accepted if jti_of(b) in held] == held
        updates = [claims_of(b)["events"][STREAM_UPDATED] for b in accepted if jti_of(b) not in held]
        assert [u["status"] for u in updates] == ["paused", "enabled"]
        assert updates[1]["reason"] == "receiver fixed"
        assert (await status_of(hub, sid)) == {
            "stream_id": sid,
            "status": "enabled",
            "reason": "receiver fixed",
        }


async def test_a_receiver_re_enabling_before_the_pause_announcement_got_through_ends_up_told_enabled(
    tmp_path: Path,
) -> None:
    # R-STATUS-7: the pause announcement could not be delivered while the receiver was down.
    # If the receiver re-enables the stream first, that stale "paused" goes out after the held
    # SETs; the last stream-updated the receiver sees must still match the stream's status.
    async with push_receiver() as receiver, run_hub(tmp_path, **PAUSE_FAST) as hub:
        stream, held = await fail_until_paused(hub, receiver)
        sid = stream["stream_id"]
        receiver.default = Reply(503, headers={"Retry-After": "30"})  # "come back in 30 s"
        await receiver.wait_for(len(receiver.received) + 1)  # the announcement was told so
        assert not receiver.accepted()

        receiver.default = Reply(202)  # back sooner; the receiver re-enables its stream itself
        r = await hub.client.post(
            "/ssf/status", json={"stream_id": sid, "status": "enabled"}, headers=hub.auth()
        )
        assert r.status_code == 200 and r.json()["status"] == "enabled", r.text
        await until_drained(hub, sid)
        accepted = receiver.accepted()
        assert [jti_of(b) for b in accepted if jti_of(b) in held] == held
        updates = [claims_of(b)["events"][STREAM_UPDATED] for b in accepted if jti_of(b) not in held]
        assert updates and updates[0]["status"] == "paused"
        assert updates[-1]["status"] == (await status_of(hub, sid))["status"] == "enabled"


async def test_a_receiver_pausing_its_stream_stops_delivery_at_once_and_enabling_resumes_it(
    tmp_path: Path,
) -> None:
    # R-STATUS-5: while paused, T MUST NOT deliver. A pause arriving while the hub is part-way
    # through a batch of queued SETs stops it after the request already in flight.
    async with push_receiver() as receiver, run_hub(tmp_path, allow_private_endpoints=True) as hub:
        receiver.then(Reply(202, delay=0.5))  # while the first is answered slowly, the rest queue up
        receiver.default = Reply(202, delay=0.05)
        stream = await push_stream(hub, receiver.url)
        sid = stream["stream_id"]
        emitted = [await emit_one(hub) for _ in range(30)]
        await receiver.wait_for(4)
        r = await hub.client.post(
            "/ssf/status", json={"stream_id": sid, "status": "paused"}, headers=hub.auth()
        )
        assert r.status_code == 200 and r.json()["status"] == "paused", r.text
        count = len(receiver.received)
        await asyncio.sleep(0.5)
        assert len(receiver.received) <= count + 1, (
            len(receiver.received) - count
        )  # at most the one in flight
        assert (await stream_view(hub, sid))["queued"] >= 30 - count - 1

        r = await hub.client.post(
            "/ssf/status", json={"stream_id": sid, "status": "enabled"}, headers=hub.auth()
        )
        assert r.status_code == 200, r.text
        accepted = await receiver.wait_accepted(30)
        assert [jti_of(b) for b in accepted] == emitted  # the held ones follow, in order, each once
