"""Several SETs in flight to one push stream (issue 18), order kept per subject.

RFC 8935 promises no order; SSF asks for one among events about the same principal
(R-STATUS-5), and says delivery "is not ordered relative to other queued events"
(R-VERIFY-3). So by default (``push_order = "subject"``) SETs about one subject never
overtake each other, including across retries, while SETs about other subjects go out
beside them, up to ``push_stream_in_flight`` at once; ``push_order = "stream"`` keeps the
whole stream in queue order, one request at a time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.push.helpers import (
    FAST,
    claims_of,
    emit_one,
    jti_of,
    push_stream,
    stream_view,
    until,
    until_drained,
)
from tests.support.hub import RunningHub, run_hub
from tests.support.receiver import PushReceiver, Reply, push_receiver

SUBJECTS = [{"format": "email", "email": f"user-{i}@example.com"} for i in range(8)]


def email_of(body: str) -> str:
    """The subject's email; "" for a stream-level SET (stream-updated names the stream)."""
    email: str = claims_of(body)["sub_id"].get("email", "")
    return email


async def all_subjects_stream(hub: RunningHub, url: str, subjects: Sequence[Mapping[str, Any]]) -> str:
    stream = await push_stream(hub, url, subject=subjects[0])
    sid: str = stream["stream_id"]
    for subject in subjects[1:]:
        await hub.add_subject(sid, subject, sub="receiver-1")
    return sid


async def emit_round_robin(
    hub: RunningHub, subjects: Sequence[Mapping[str, Any]], count: int
) -> dict[str, list[str]]:
    """``count`` events, cycling over ``subjects``; the jtis per subject email, in emit order."""
    order: dict[str, list[str]] = {}
    for i in range(count):
        subject = subjects[i % len(subjects)]
        order.setdefault(subject["email"], []).append(await emit_one(hub, subject))
    return order


async def set_status(hub: RunningHub, sid: str, status: str) -> None:
    r = await hub.client.post("/ssf/status", json={"stream_id": sid, "status": status}, headers=hub.auth())
    assert r.status_code == 200, r.text


def accepted_by_subject(receiver: PushReceiver) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for body in receiver.accepted():
        out.setdefault(email_of(body), []).append(jti_of(body))
    return out


async def test_sets_about_different_subjects_are_on_the_wire_together(
    tmp_path: Path, each_store: dict[str, Any]
) -> None:
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, **each_store, allow_private_endpoints=True, push_stream_in_flight=4) as hub,
    ):
        receiver.default = Reply(202, delay=0.2)  # slow enough that the requests overlap
        sid = await all_subjects_stream(hub, receiver.url, SUBJECTS)
        await set_status(hub, sid, "paused")
        emitted = await emit_round_robin(hub, SUBJECTS, 16)
        await set_status(hub, sid, "enabled")
        await until_drained(hub, sid)

        assert receiver.max_open == 4  # push_stream_in_flight, never more
        delivered = accepted_by_subject(receiver)
        assert {email: jtis for email, jtis in delivered.items() if email in emitted} == emitted


async def test_one_subject_is_sent_one_set_at_a_time(tmp_path: Path) -> None:
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_stream_in_flight=8) as hub,
    ):
        receiver.default = Reply(202, delay=0.02)
        sid = await all_subjects_stream(hub, receiver.url, SUBJECTS[:1])
        emitted = await emit_round_robin(hub, SUBJECTS[:1], 20)
        await until_drained(hub, sid)
        assert receiver.max_open == 1
        assert accepted_by_subject(receiver) == emitted


async def test_stream_order_keeps_one_request_in_flight_in_queue_order(tmp_path: Path) -> None:
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_order="stream", push_stream_in_flight=8) as hub,
    ):
        receiver.default = Reply(202, delay=0.02)
        sid = await all_subjects_stream(hub, receiver.url, SUBJECTS)
        await set_status(hub, sid, "paused")
        emitted = await emit_round_robin(hub, SUBJECTS, 16)
        await set_status(hub, sid, "enabled")
        await until_drained(hub, sid)
        assert receiver.max_open == 1
        in_queue_order = [emitted[SUBJECTS[i % 8]["email"]][i // 8] for i in range(16)]
        assert [jti_of(b) for b in receiver.accepted() if "user-" in email_of(b)] == in_queue_order


async def test_a_failing_subject_waits_while_other_subjects_flow(
    tmp_path: Path, each_store: dict[str, Any]
) -> None:
    alice, bob = SUBJECTS[0], SUBJECTS[1]
    failing = {"on": True}

    def reply(body: str) -> Reply:
        if failing["on"] and email_of(body) == alice["email"]:
            return Reply(503)
        return Reply(202)

    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, **each_store, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        receiver.default = reply
        sid = await all_subjects_stream(hub, receiver.url, [alice, bob])
        head = await emit_one(hub, alice)
        await receiver.wait_for(2)  # alice's first SET is failing and being retried
        behind = [await emit_one(hub, alice) for _ in range(3)]
        bobs = [await emit_one(hub, bob) for _ in range(5)]
        # Bob's SETs are not held up by alice's failing one...
        assert [jti_of(b) for b in await receiver.wait_accepted(5)] == bobs
        # ... and none of alice's later SETs overtook her failing one.
        assert {jti_of(r.body) for r in receiver.received if email_of(r.body) == alice["email"]} == {head}
        # Alice's four stay queued; bob's last leaves the queue once the hub commits its 202,
        # which can come after the receiver saw it.
        await until(lambda: _queued_is(hub, sid, 4))

        failing["on"] = False
        await until_drained(hub, sid)
        assert accepted_by_subject(receiver)[alice["email"]] == [head, *behind]


async def test_random_delays_and_failures_never_reorder_a_subject(tmp_path: Path) -> None:
    rng = random.Random(18)

    def reply(body: str) -> Reply:
        if rng.random() < 0.2:
            return Reply(503, delay=rng.uniform(0, 0.02))
        return Reply(202, delay=rng.uniform(0, 0.03))

    async with (
        push_receiver() as receiver,
        run_hub(
            tmp_path, allow_private_endpoints=True, push_retry_schedule="0,0.02,0.05", push_stream_in_flight=6
        ) as hub,
    ):
        receiver.default = reply
        sid = await all_subjects_stream(hub, receiver.url, SUBJECTS)
        emitted = await emit_round_robin(hub, SUBJECTS, 48)
        await until_drained(hub, sid, timeout=30)

        assert 1 < receiver.max_open <= 6
        delivered = accepted_by_subject(receiver)
        for email, jtis in emitted.items():
            # Each SET accepted once, in emit order per subject ...
            assert delivered[email] == jtis
            # ... and no later SET was even tried before an earlier one was accepted.
            tried = [jti_of(r.body) for r in receiver.received if email_of(r.body) == email]
            assert list(dict.fromkeys(tried)) == jtis


async def test_a_pause_stops_every_lane_after_the_requests_on_the_wire(tmp_path: Path) -> None:
    # R-STATUS-5 with several SETs in flight: nothing new goes out once the stream is paused.
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_stream_in_flight=4) as hub,
    ):
        receiver.default = Reply(202, delay=0.1)
        sid = await all_subjects_stream(hub, receiver.url, SUBJECTS)
        await emit_round_robin(hub, SUBJECTS, 40)
        await receiver.wait_for(6)
        await set_status(hub, sid, "paused")
        count = len(receiver.received)
        await asyncio.sleep(0.4)
        assert len(receiver.received) <= count + 4  # at most those already on their way

        await set_status(hub, sid, "enabled")
        await until(lambda: _count_accepted(receiver, 40))


async def _count_accepted(receiver: PushReceiver, count: int) -> bool:
    return len({jti_of(b) for b in receiver.accepted() if "user-" in email_of(b)}) >= count


async def test_under_stream_order_a_failing_set_holds_back_every_subject(tmp_path: Path) -> None:
    alice, bob = SUBJECTS[0], SUBJECTS[1]
    failing = {"on": True}

    def reply(body: str) -> Reply:
        return Reply(503) if failing["on"] and email_of(body) == alice["email"] else Reply(202)

    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST, push_order="stream") as hub,
    ):
        receiver.default = reply
        sid = await all_subjects_stream(hub, receiver.url, [alice, bob])
        head = await emit_one(hub, alice)
        await receiver.wait_for(2)
        bobs = [await emit_one(hub, bob) for _ in range(3)]
        await receiver.wait_for(len(receiver.received) + 3)  # more retries of alice's SET meanwhile
        assert receiver.accepted() == [] and {jti_of(b) for b in receiver.bodies()} == {head}

        failing["on"] = False
        await until_drained(hub, sid)
        assert [jti_of(b) for b in receiver.accepted()] == [head, *bobs]


async def _queued_is(hub: RunningHub, stream_id: str, count: int) -> bool:
    return bool((await stream_view(hub, stream_id))["queued"] == count)
