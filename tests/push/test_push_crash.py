"""Delivery survives a crash: ``kill -9`` of ``ssf-hub serve`` with SETs in flight, then a
restart on the same data dir delivers every one of them (at least once; issue 3)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from hub.auth.tokens import mint_local_token
from hub.keys.ring import load_or_create_token_key
from tests.push.helpers import ALICE, PUSH, jti_of
from tests.support.hub import CAEP, free_port
from tests.support.process import serve_process
from tests.support.receiver import Reply, push_receiver

FAST_RETRIES = {"SSF_HUB_PUSH_RETRY_SCHEDULE": "0,0.1"}


def bearer(data_dir: Path, sub: str, scope: str) -> dict[str, str]:
    key = load_or_create_token_key(data_dir)  # the hub started on this data dir uses the same key
    return {
        "Authorization": f"Bearer {mint_local_token(key, sub=sub, scope=scope, ttl=600, now=time.time())}"
    }


@pytest.mark.slow
async def test_sets_in_flight_when_the_hub_is_killed_are_delivered_after_a_restart(tmp_path: Path) -> None:
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "hub.log"
    base = f"http://127.0.0.1:{port}"
    manage, admin = bearer(data_dir, "receiver-1", "ssf.manage"), bearer(data_dir, "operator", "ssf.admin")
    async with push_receiver() as receiver:
        # Down, and slow to say so: when the hub dies a request is usually mid-flight.
        receiver.default = Reply(503, delay=0.1)
        async with (
            serve_process(data_dir, port, log, "--allow-private-endpoints", env=FAST_RETRIES) as proc,
            httpx.AsyncClient(base_url=base, timeout=10) as client,
        ):
            body = {
                "delivery": {"method": PUSH, "endpoint_url": receiver.url},
                "events_requested": [CAEP + "session-revoked"],
            }
            r = await client.post("/ssf/stream", json=body, headers=manage)
            assert r.status_code == 201, r.text
            sid = r.json()["stream_id"]
            r = await client.post(
                "/ssf/subjects:add", json={"stream_id": sid, "subject": ALICE}, headers=manage
            )
            assert r.status_code == 200, r.text
            emitted: list[str] = []
            for _ in range(5):
                r = await client.post(
                    "/ssf/admin/events", json={"event": "session-revoked", "subject": ALICE}, headers=admin
                )
                assert r.status_code == 200, r.text  # 200: durably queued
                emitted.extend(s["jti"] for s in r.json()["sets"])
            await receiver.wait_for(len(receiver.received) + 2)  # retrying the head right now
            proc.kill()  # SIGKILL: no shutdown, no flush
            await asyncio.to_thread(proc.wait)
        assert len(emitted) == 5 and receiver.accepted() == []

        receiver.default = Reply(202)
        async with serve_process(
            data_dir, port, log, "--allow-private-endpoints", env=FAST_RETRIES
        ):  # same data dir, same port
            restarted = time.monotonic()
            accepted = await receiver.wait_accepted(len(emitted), timeout=20)
            # Picked up at start-up (the dead process's lease does not hold it back).
            assert time.monotonic() - restarted < 3.0
        delivered = [jti_of(b) for b in accepted]
        assert set(delivered) == set(emitted)  # every one of them, at least once
        assert list(dict.fromkeys(delivered)) == emitted  # and still in queue order
        assert "Traceback" not in log.read_text()


@pytest.mark.slow
async def test_a_crash_resends_at_most_the_two_sets_being_delivered(tmp_path: Path) -> None:
    # Successes are committed one by one, the commit of SET k overlapping the send of SET k+1
    # (hub.delivery.push.dispatcher): a kill -9 resends at most those two (issue 16).
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "hub.log"
    base = f"http://127.0.0.1:{port}"
    manage, admin = bearer(data_dir, "receiver-1", "ssf.manage"), bearer(data_dir, "operator", "ssf.admin")
    async with push_receiver() as receiver:
        # Slow while the SETs are emitted, so a backlog builds up however fast the emits go,
        # then about 100 SETs/s.
        receiver.default = Reply(202, delay=0.3)
        emitted: list[str] = []
        async with (
            serve_process(data_dir, port, log, "--allow-private-endpoints") as proc,
            httpx.AsyncClient(base_url=base, timeout=10) as client,
        ):
            body = {
                "delivery": {"method": PUSH, "endpoint_url": receiver.url},
                "events_requested": [CAEP + "session-revoked"],
            }
            sid = (await client.post("/ssf/stream", json=body, headers=manage)).json()["stream_id"]
            r = await client.post(
                "/ssf/subjects:add", json={"stream_id": sid, "subject": ALICE}, headers=manage
            )
            assert r.status_code == 200, r.text
            for _ in range(200):
                r = await client.post(
                    "/ssf/admin/events", json={"event": "session-revoked", "subject": ALICE}, headers=admin
                )
                emitted.extend(s["jti"] for s in r.json()["sets"])
            receiver.default = Reply(202, delay=0.01)
            await receiver.wait_accepted(60, timeout=20)
            proc.kill()
            await asyncio.to_thread(proc.wait)
        before_restart = len(receiver.accepted())
        assert before_restart < len(emitted)  # the kill came mid-backlog

        receiver.default = Reply(202)
        async with serve_process(data_dir, port, log, "--allow-private-endpoints"):
            async with asyncio.timeout(30):
                while set(emitted) - {jti_of(b) for b in receiver.accepted()}:
                    await asyncio.sleep(0.05)
        delivered = [jti_of(b) for b in receiver.accepted()]
        duplicates = len(delivered) - len(set(delivered))
        assert duplicates <= 2, f"{duplicates} SETs sent again after one crash"
        assert list(dict.fromkeys(delivered)) == emitted  # in queue order


@pytest.mark.slow
async def test_a_crash_with_several_sets_in_flight_resends_at_most_two_per_lane(tmp_path: Path) -> None:
    # push_stream_in_flight 4 over 8 subjects: up to 4 requests on the wire and 4 answered
    # but not yet committed when the hub dies (hub.delivery.push.worker), so at most 8
    # resends, and each subject's SETs still first arrive in emit order (R-STATUS-5).
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "hub.log"
    base = f"http://127.0.0.1:{port}"
    manage, admin = bearer(data_dir, "receiver-1", "ssf.manage"), bearer(data_dir, "operator", "ssf.admin")
    subjects = [{"format": "email", "email": f"user-{i}@example.com"} for i in range(8)]
    env = {"SSF_HUB_PUSH_STREAM_IN_FLIGHT": "4"}
    async with push_receiver() as receiver:
        receiver.default = Reply(202, delay=0.3)  # a backlog builds up while emitting
        emitted: dict[str, list[str]] = {}
        async with (
            serve_process(data_dir, port, log, "--allow-private-endpoints", env=env) as proc,
            httpx.AsyncClient(base_url=base, timeout=10) as client,
        ):
            body = {
                "delivery": {"method": PUSH, "endpoint_url": receiver.url},
                "events_requested": [CAEP + "session-revoked"],
            }
            sid = (await client.post("/ssf/stream", json=body, headers=manage)).json()["stream_id"]
            for subject in subjects:
                r = await client.post(
                    "/ssf/subjects:add", json={"stream_id": sid, "subject": subject}, headers=manage
                )
                assert r.status_code == 200, r.text
            for i in range(200):
                subject = subjects[i % len(subjects)]
                r = await client.post(
                    "/ssf/admin/events", json={"event": "session-revoked", "subject": subject}, headers=admin
                )
                emitted.setdefault(subject["email"], []).extend(s["jti"] for s in r.json()["sets"])
            receiver.default = Reply(202, delay=0.02)
            await receiver.wait_accepted(60, timeout=20)
            proc.kill()
            await asyncio.to_thread(proc.wait)
        assert receiver.max_open == 4
        all_emitted = {jti for jtis in emitted.values() for jti in jtis}
        assert len(receiver.accepted()) < len(all_emitted)  # the kill came mid-backlog

        receiver.default = Reply(202)
        async with serve_process(data_dir, port, log, "--allow-private-endpoints", env=env):
            async with asyncio.timeout(30):
                while all_emitted - {jti_of(b) for b in receiver.accepted()}:
                    await asyncio.sleep(0.05)
        delivered = [jti_of(b) for b in receiver.accepted()]
        duplicates = len(delivered) - len(set(delivered))
        assert duplicates <= 8, f"{duplicates} SETs sent again after one crash"
        first_arrivals = list(dict.fromkeys(delivered))
        for jtis in emitted.values():
            assert [jti for jti in first_arrivals if jti in set(jtis)] == jtis
