"""Remediation receipts (issue #14): a receiver tells the hub what it did with a SET it got,
through ``POST /ssf/receipts``, and an admin sees it in the trace (API and ``ssf-hub trace``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.push.helpers import ALICE, admin, trace
from tests.push.test_push_trace import admin_token, cli
from tests.support.hub import RunningHub, on_each_store


async def delivered_by_poll(hub: RunningHub, sub: str = "receiver-1") -> tuple[dict[str, Any], str]:
    """A poll stream of ``sub`` holding Alice that got and acknowledged one session-revoked."""
    stream = await hub.create_stream(sub)
    await hub.add_subject(stream["stream_id"], ALICE, sub=sub)
    (item,) = (await hub.emit("session-revoked", ALICE))["sets"]
    got = await hub.poll(stream, sub)
    assert list(got["sets"]) == [item["jti"]]
    await hub.poll(stream, sub, ack=[item["jti"]])
    return stream, item["jti"]


async def report(hub: RunningHub, body: Any, headers: dict[str, str]) -> Any:
    return await hub.client.post("/ssf/receipts", json=body, headers=headers)


@on_each_store
async def test_the_stream_owner_reports_receipts_and_the_trace_shows_them(hub: RunningHub) -> None:
    stream, jti = await delivered_by_poll(hub)
    acted_at = time.time() - 0.25
    body = {
        "stream_id": stream["stream_id"],
        "receipts": [
            {"jti": jti, "action": "token_dropped", "count": 3, "at": acted_at},
            {"jti": jti, "action": "request_refused"},  # count 1, the hub's clock
            {"jti": "never-sent-here", "action": "ignored"},
        ],
    }

    r = await report(hub, body, hub.auth())

    assert r.status_code == 202, r.text
    assert r.json() == {"kept": 2, "skipped": 1}
    (item,) = (await trace(hub, jti))["sets"]
    assert item["state"] == "delivered"
    dropped, refused = item["receipts"]
    assert (dropped["action"], dropped["count"], dropped["at"]) == ("token_dropped", 3, acted_at)
    assert (refused["action"], refused["count"]) == ("request_refused", 1)
    assert dropped["received_at"] <= refused["received_at"] <= time.time()


async def test_only_the_stream_owner_may_report(hub: RunningHub) -> None:
    stream, jti = await delivered_by_poll(hub)
    body = {"stream_id": stream["stream_id"], "receipts": [{"jti": jti, "action": "token_dropped"}]}

    assert (await report(hub, body, {})).status_code == 401
    assert (await report(hub, body, hub.auth("receiver-2"))).status_code == 404  # not its stream
    assert (await report(hub, body, hub.auth("receiver-1", "ssf.read"))).status_code == 403
    assert (await report(hub, body, admin(hub))).status_code == 403  # admins read, receivers report
    assert (await trace(hub, jti))["sets"][0]["receipts"] == []


@pytest.mark.parametrize(
    ("receipt", "complaint"),
    [
        ({"jti": "j", "action": "rebooted"}, "action must be one of"),
        ({"jti": "j", "action": "ignored", "count": -1}, "count"),
        ({"jti": "j", "action": "ignored", "at": 0}, "within a day"),
        ({"jti": "", "action": "ignored"}, "jti"),
        ({"jti": "j", "action": "ignored", "extra": 1}, "unknown field"),
    ],
)
async def test_a_malformed_receipt_is_a_400_naming_the_problem(
    hub: RunningHub, receipt: dict[str, Any], complaint: str
) -> None:
    stream = await hub.create_stream()
    r = await report(hub, {"stream_id": stream["stream_id"], "receipts": [receipt]}, hub.auth())
    assert r.status_code == 400
    assert r.json()["err"] == "invalid_request" and complaint in r.json()["description"]


async def test_ssf_hub_trace_prints_receipts_per_stream_or_delivered_no_receipt(
    tmp_path: Path, hub: RunningHub
) -> None:
    first, jti = await delivered_by_poll(hub)
    second = await hub.create_stream("receiver-2")
    await hub.add_subject(second["stream_id"], ALICE, sub="receiver-2")
    emitted = await hub.emit("session-revoked", ALICE)
    jtis = {s["stream_id"]: s["jti"] for s in emitted["sets"]}
    for stream, sub in ((first, "receiver-1"), (second, "receiver-2")):
        await hub.poll(stream, sub, ack=list((await hub.poll(stream, sub))["sets"]))
    body = {
        "stream_id": first["stream_id"],
        "receipts": [{"jti": jtis[first["stream_id"]], "action": "token_dropped", "count": 2}],
    }
    assert (await report(hub, body, hub.auth())).status_code == 202

    done = await cli("trace", emitted["txn"], "--url", hub.base_url, "--token", admin_token(hub))

    assert done.returncode == 0, done.stderr
    blocks = done.stdout.split("stream ")[1:]
    by_stream = {block.split()[0]: block for block in blocks}
    assert (
        "receipt" in by_stream[first["stream_id"]] and "token_dropped    x2" in by_stream[first["stream_id"]]
    )
    assert "delivered, no receipt" in by_stream[second["stream_id"]]
    assert jti not in done.stdout  # the earlier SET is another txn
