"""The hub's durable audit (issue 13): who emitted what and where it went, status, issuer,
upstream and key changes, every accepted ingest; GET /ssf/admin/audit and the trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ingest.helpers import hub_and_idp, push, receiver_stream, trust
from tests.support.hub import RunningHub, on_each_store

ALICE = {"format": "email", "email": "alice@example.com"}
NOBODY = {"format": "email", "email": "nobody@example.com"}


async def audit(hub: RunningHub, **params: str) -> list[dict[str, Any]]:
    r = await hub.client.get("/ssf/admin/audit", params=params, headers=hub.auth("secops", "ssf.admin"))
    assert r.status_code == 200, r.text
    records: list[dict[str, Any]] = r.json()["records"]
    return records


@on_each_store
async def test_an_emit_is_audited_with_its_actor_txn_and_streams(hub: RunningHub) -> None:
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], ALICE)
    r = await hub.client.post(
        "/ssf/admin/events",
        json={"event": "session-revoked", "subject": ALICE},
        headers=hub.auth("secops", "ssf.admin"),
    )
    txn = r.json()["txn"]
    (record,) = await audit(hub, txn=txn)
    assert record["kind"] == "event_emitted"
    assert record["actor"] == "secops"
    assert record["event"].endswith("/session-revoked")
    assert record["subject"] == ALICE
    assert (record["streams"], record["stream_ids"]) == (1, [s["stream_id"]])


@on_each_store
async def test_an_emit_that_reached_no_stream_is_still_traceable(hub: RunningHub) -> None:
    r = await hub.client.post(
        "/ssf/admin/events",
        json={"event": "session-revoked", "subject": NOBODY},
        headers=hub.auth("secops", "ssf.admin"),
    )
    txn = r.json()["txn"]
    trace = await hub.client.get(f"/ssf/admin/trace/{txn}", headers=hub.auth("secops", "ssf.admin"))
    assert trace.status_code == 200, trace.text  # was 404 "finished SETs are kept 14 days"
    assert trace.json()["sets"] == []
    (record,) = trace.json()["audit"]
    assert (record["streams"], record["actor"]) == (0, "secops")


async def test_status_issuer_upstream_and_key_changes_name_who_made_them(hub: RunningHub) -> None:
    admin = hub.auth("secops", "ssf.admin")
    s = await hub.create_stream()
    r = await hub.client.post(
        f"/ssf/admin/streams/{s['stream_id']}/status", json={"status": "paused"}, headers=admin
    )
    assert r.status_code == 200
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                      "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}  # fmt: skip
    r = await hub.client.post(
        "/ssf/admin/issuers", json={"iss": "https://idp.example.com", "jwks": jwks}, headers=admin
    )
    assert r.status_code == 201, r.text
    assert (
        await hub.client.delete("/ssf/admin/issuers/https://idp.example.com", headers=admin)
    ).status_code == 204
    assert (await hub.client.post("/ssf/admin/keys/rotate", headers=admin)).status_code == 200
    records = await audit(hub, actor="secops")
    assert [r["kind"] for r in records] == ["key_rotated", "issuer_removed", "issuer_added", "status_changed"]
    assert records[3] == {
        "at": records[3]["at"],
        "kind": "status_changed",
        "stream_id": s["stream_id"],
        "actor": "secops",
        "status": "paused",
        "previous": "enabled",
        "reason": None,
    }
    assert records[0]["kid"] != records[0]["previous_kid"]


async def test_an_accepted_ingest_is_audited_with_its_issuer_and_upstream_jti(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        await receiver_stream(hub)
        token = idp.set_for(hub.issuer, jti="upstream-1")
        assert (await push(hub, token)).status_code == 202
        (record,) = await audit(hub, actor=idp.iss)
        assert record["kind"] == "ingest_accepted"
        assert record["upstream_jti"] == "upstream-1"
        assert record["streams"] == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [({"since": "yesterday"}, "since must be"), ({"limit": "0"}, "limit must be"), ({"who": "x"}, "unknown")],
)
async def test_a_bad_audit_query_is_400(hub: RunningHub, params: dict[str, str], message: str) -> None:
    r = await hub.client.get("/ssf/admin/audit", params=params, headers=hub.auth("secops", "ssf.admin"))
    assert r.status_code == 400 and message in r.json()["description"]


async def test_the_audit_needs_the_admin_scope(hub: RunningHub) -> None:
    assert (await hub.client.get("/ssf/admin/audit", headers=hub.auth())).status_code == 403
