"""Per-stream order under retries, and isolation between streams (issue 3: "a failing SET
blocks the ones behind it on that stream only")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.push.helpers import (
    ALICE,
    FAST,
    emit_one,
    jti_of,
    push_stream,
    stream_view,
    until_drained,
    until_state,
)
from tests.support.hub import run_hub
from tests.support.receiver import Reply, push_receiver


async def test_sets_queued_behind_a_failing_head_arrive_in_queue_order(
    tmp_path: Path, each_store: dict[str, Any]
) -> None:
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, **each_store, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        receiver.default = Reply(503)
        stream = await push_stream(hub, receiver.url)
        head = await emit_one(hub)
        await receiver.wait_for(2)  # the head is failing and being retried
        behind = []
        for _ in range(5):
            behind.append(await emit_one(hub))
            await receiver.wait_for(len(receiver.received) + 1)  # more retries of the head meanwhile
        assert {jti_of(b) for b in receiver.bodies()} == {head}  # nothing overtook the head
        assert (await stream_view(hub, stream["stream_id"]))["queued"] == 6

        receiver.default = Reply(202)
        accepted = await receiver.wait_accepted(6)
        assert [jti_of(b) for b in accepted] == [head, *behind]
        # Every request before the head's success carried the head; after it, each SET once.
        first_ok = next(i for i, r in enumerate(receiver.received) if r.status == 202)
        assert {jti_of(r.body) for r in receiver.received[:first_ok]} == {head}
        assert [jti_of(r.body) for r in receiver.received[first_ok:]] == [head, *behind]
        for jti in (head, *behind):
            await until_state(hub, jti, "delivered")


async def test_a_blocked_stream_does_not_slow_another_stream(
    tmp_path: Path, each_store: dict[str, Any]
) -> None:
    async with (
        push_receiver() as failing,
        push_receiver() as healthy,
        run_hub(tmp_path, **each_store, allow_private_endpoints=True, push_retry_schedule="0,0.2") as hub,
    ):
        failing.default = Reply(503)
        blocked = await push_stream(hub, failing.url, sub="rcv-down")
        await push_stream(hub, healthy.url, sub="rcv-up")
        emitted = [await hub.emit("session-revoked", ALICE) for _ in range(5)]
        by_stream = [{s["stream_id"]: s["jti"] for s in e["sets"]} for e in emitted]
        # The healthy stream gets all five, in order, while the other is stuck on its first SET.
        accepted = await healthy.wait_accepted(5, timeout=3)
        assert [jti_of(b) for b in accepted] == [
            jti for e in by_stream for sid, jti in e.items() if sid != blocked["stream_id"]
        ]
        assert {jti_of(b) for b in failing.bodies()} == {by_stream[0][blocked["stream_id"]]}
        assert (await stream_view(hub, blocked["stream_id"]))["queued"] == 5
        # ... and it got them promptly, not at the failing stream's retry pace.
        assert healthy.received[-1].at - healthy.received[0].at < 1.0

        failing.default = Reply(202)
        await until_drained(hub, blocked["stream_id"])
        assert [jti_of(b) for b in failing.accepted()] == [e[blocked["stream_id"]] for e in by_stream]
