"""The delivery trace and stream health, through the admin API and the ``ssf-hub`` CLI
(issue 3: "for any jti an admin can see which streams it went to, each attempt and the
final state; and per stream: queue depth, oldest undelivered age, last success, last error")."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.push.helpers import (
    ALICE,
    FAST,
    admin,
    emit_one,
    push_stream,
    stream_view,
    trace,
    until,
    until_state,
)
from tests.support.hub import RunningHub, run_hub
from tests.support.receiver import Reply, push_receiver

SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ssf-hub`` off the event loop (the hub under test runs on it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    return await asyncio.to_thread(
        subprocess.run, [SSF_HUB, *args], capture_output=True, text=True, timeout=30, env=env
    )


def admin_token(hub: RunningHub) -> str:
    return hub.token("operator", "ssf.admin")


async def test_the_trace_of_a_jti_lists_each_attempt_and_the_final_state(
    tmp_path: Path, each_store: dict[str, Any]
) -> None:
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, **each_store, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        receiver.then(Reply(503, json={"description": "busy"}), Reply(500))
        stream = await push_stream(hub, receiver.url)
        started = time.time()
        jti = await emit_one(hub)
        data = await trace(hub, jti)
        assert data["id"] == jti
        (t,) = data["sets"]
        assert t["stream_id"] == stream["stream_id"] and t["jti"] == jti
        t = await until_state(hub, jti, "delivered")
        assert t["event_type"].endswith("/session-revoked") and t["txn"]
        assert started - 1 <= t["queued_at"] <= t["done_at"] <= time.time()
        first, second, third = t["attempts"]
        assert [a["outcome"] for a in t["attempts"]] == ["retry", "retry", "delivered"]
        assert [a["status"] for a in t["attempts"]] == [503, 500, 202]
        assert "busy" in first["error"] and third["error"] is None
        assert t["queued_at"] <= first["at"] <= second["at"] <= third["at"] == t["done_at"]
        assert all(a["latency_ms"] >= 0 for a in t["attempts"])
        assert t["last_error"].startswith("HTTP 500")  # the last failure before it went through

        r = await hub.client.get("/ssf/admin/trace/no-such-jti", headers=admin(hub))
        assert r.status_code == 404
        r = await hub.client.get(f"/ssf/admin/trace/{jti}", headers=hub.auth())  # ssf.manage only
        assert r.status_code == 403


async def test_the_trace_of_a_txn_lists_every_stream_it_went_to(
    tmp_path: Path, each_store: dict[str, Any]
) -> None:
    async with (
        push_receiver() as up,
        push_receiver() as down,
        run_hub(tmp_path, **each_store, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        down.default = Reply(503)
        a = await push_stream(hub, up.url, sub="rcv-up")
        b = await push_stream(hub, down.url, sub="rcv-down")
        emitted = await hub.emit("session-revoked", ALICE)
        jtis = {s["stream_id"]: s["jti"] for s in emitted["sets"]}
        await until_state(hub, jtis[a["stream_id"]], "delivered")
        await down.wait_for(2)
        data = await trace(hub, emitted["txn"])
        by_stream = {t["stream_id"]: t for t in data["sets"]}
        assert set(by_stream) == {a["stream_id"], b["stream_id"]}
        assert {t["txn"] for t in data["sets"]} == {emitted["txn"]}
        assert by_stream[a["stream_id"]]["state"] == "delivered"
        assert by_stream[a["stream_id"]]["jti"] == jtis[a["stream_id"]]
        pending = by_stream[b["stream_id"]]
        assert pending["state"] == "pending" and pending["done_at"] is None
        assert pending["last_error"] == "HTTP 503" and pending["attempts"][0]["status"] == 503


async def test_the_streams_view_shows_depth_oldest_age_last_success_and_last_error(
    tmp_path: Path, each_store: dict[str, Any]
) -> None:
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, **each_store, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        stream = await push_stream(hub, receiver.url)
        sid = stream["stream_id"]
        fresh = await stream_view(hub, sid)
        assert (fresh["queued"], fresh["oldest_undelivered_age"]) == (0, None)
        assert (fresh["last_success_at"], fresh["last_error"]) == (None, None)

        await until_state(hub, await emit_one(hub), "delivered")
        receiver.default = Reply(503)
        for _ in range(3):
            await emit_one(hub)
        await receiver.wait_for(3)
        # The receiver answers before the hub records the failure: wait for the record.
        await until(lambda: _failing(hub, sid))
        await asyncio.sleep(0.3)
        view = await stream_view(hub, sid)
        assert view["queued"] == 3
        assert 0.3 <= view["oldest_undelivered_age"] < 10
        assert view["last_success_at"] is not None and view["last_success_at"] <= time.time()
        assert view["last_error"] == "HTTP 503" and view["last_error_at"] >= view["last_success_at"]
        assert view["status"] == "enabled" and view["credentials_failing"] is False
        assert view["delivery"] == {"method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url}


async def _failing(hub: RunningHub, stream_id: str) -> bool:
    """The hub has recorded a failed attempt of the stream's oldest SET and set its retry."""
    return (await stream_view(hub, stream_id)).get("next_retry_at") is not None


async def test_ssf_hub_trace_and_streams_print_the_admin_views(tmp_path: Path) -> None:
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        receiver.then(Reply(503))
        stream = await push_stream(hub, receiver.url)
        sid = stream["stream_id"]
        jti = await emit_one(hub)
        await until_state(hub, jti, "delivered")
        token = admin_token(hub)

        out = await cli("trace", jti, "--url", hub.base_url, "--token", token)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith(f"stream {sid}  jti {jti}  txn ")
        assert "state delivered" in out.stdout
        attempts = [line.split() for line in lines if line.lstrip().startswith("#")]
        assert [(a[0], a[3], a[4]) for a in attempts] == [("#1", "retry", "503"), ("#2", "delivered", "202")]
        assert all(a[-1] == "ms" for a in attempts)

        out = await cli("trace", jti, "--url", hub.base_url, "--token", token, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == await trace(hub, jti)

        receiver.default = Reply(503)
        await emit_one(hub)
        await receiver.wait_for(3)
        await until(lambda: _failing(hub, sid))
        out = await cli("streams", "--url", hub.base_url, "--token", token)
        assert out.returncode == 0, out.stderr
        header, *rows = out.stdout.splitlines()
        assert header.split()[:6] == ["STREAM", "OWNER", "METHOD", "STATUS", "QUEUED", "OLDEST"]
        (row,) = [r for r in rows if r.startswith(sid)]
        assert row.split()[1:5] == ["receiver-1", "push", "enabled", "1"]
        assert "/ HTTP 503 / next retry 20" in row  # the stream is failing: when it tries again

        out = await cli("streams", "--url", hub.base_url, "--token", token, "--json")
        assert out.returncode == 0, out.stderr
        (listed,) = [s for s in json.loads(out.stdout) if s["stream_id"] == sid]
        assert listed["queued"] == 1 and listed["last_error"] == "HTTP 503"

        out = await cli("trace", "no-such-jti", "--url", hub.base_url, "--token", token)
        assert out.returncode == 1 and "404" in out.stderr
        out = await cli("streams", "--url", hub.base_url, "--token", hub.token())  # not an admin
        assert out.returncode == 1 and "403" in out.stderr
