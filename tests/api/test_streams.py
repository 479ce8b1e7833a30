"""Stream management over HTTP (R-STREAM-*)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.hub import CAEP, RISC, RunningHub, on_each_store

POLL = "urn:ietf:rfc:8936"


async def test_create_without_delivery_gets_a_poll_stream(hub: RunningHub) -> None:  # R-STREAM-5, -6
    r = await hub.client.post("/ssf/stream", json={"description": "agent fleet"}, headers=hub.auth())
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"  # R-STREAM-14
    config = r.json()
    assert config["iss"] == hub.issuer
    assert config["aud"] == "receiver-1"
    assert config["delivery"]["method"] == POLL
    assert config["delivery"]["endpoint_url"] == f"{hub.issuer}/ssf/poll/{config['stream_id']}"
    assert config["description"] == "agent fleet"
    assert config["events_delivered"] == []  # nothing requested, nothing delivered
    assert CAEP + "session-revoked" in config["events_supported"]


async def test_events_delivered_is_supported_intersect_requested(hub: RunningHub) -> None:  # R-STREAM-3
    requested = [CAEP + "session-revoked", "https://example.com/unknown-event", RISC + "account-disabled"]
    config = await hub.create_stream(events_requested=requested)
    assert config["events_requested"] == requested
    assert config["events_delivered"] == [CAEP + "session-revoked", RISC + "account-disabled"]
    assert set(config["events_delivered"]) <= set(config["events_supported"])


async def test_several_streams_per_receiver_each_with_its_own_poll_url(hub: RunningHub) -> None:  # R-STREAM-7
    a = await hub.create_stream()
    b = await hub.create_stream()
    assert a["stream_id"] != b["stream_id"]
    assert a["delivery"]["endpoint_url"] != b["delivery"]["endpoint_url"]  # R-STREAM-3 poll


@on_each_store
async def test_read_one_and_read_all(hub: RunningHub) -> None:  # R-STREAM-9
    r = await hub.client.get("/ssf/stream", headers=hub.auth())
    assert r.status_code == 200 and r.json() == []
    a = await hub.create_stream(description="a")
    b = await hub.create_stream(description="b")
    r = await hub.client.get("/ssf/stream", headers=hub.auth())
    assert [s["stream_id"] for s in r.json()] == [a["stream_id"], b["stream_id"]]
    r = await hub.client.get("/ssf/stream", params={"stream_id": a["stream_id"]}, headers=hub.auth())
    assert r.status_code == 200 and r.json() == a


async def test_read_with_read_scope(hub: RunningHub) -> None:  # ssf.read reads its own streams
    a = await hub.create_stream()
    r = await hub.client.get(
        "/ssf/stream", params={"stream_id": a["stream_id"]}, headers=hub.auth(scope="ssf.read")
    )
    assert r.status_code == 200
    r = await hub.client.post("/ssf/stream", json={}, headers=hub.auth(scope="ssf.read"))
    assert r.status_code == 403


@on_each_store
async def test_another_receiver_sees_not_found(hub: RunningHub) -> None:  # R-STREAM-1
    a = await hub.create_stream()
    other = hub.auth("receiver-2")
    sid = a["stream_id"]
    assert (await hub.client.get("/ssf/stream", params={"stream_id": sid}, headers=other)).status_code == 404
    assert (await hub.client.get("/ssf/stream", headers=other)).json() == []
    r = await hub.client.patch("/ssf/stream", json={"stream_id": sid, "description": "x"}, headers=other)
    assert r.status_code == 404
    assert (
        await hub.client.delete("/ssf/stream", params={"stream_id": sid}, headers=other)
    ).status_code == 404
    assert (await hub.client.get("/ssf/status", params={"stream_id": sid}, headers=other)).status_code == 404
    r = await hub.client.post(a["delivery"]["endpoint_url"], json={"returnImmediately": True}, headers=other)
    assert r.status_code == 404


async def test_patch_changes_only_what_is_sent(hub: RunningHub) -> None:  # R-STREAM-10
    a = await hub.create_stream(description="before")
    body = {"stream_id": a["stream_id"], "events_requested": [CAEP + "session-revoked"]}
    r = await hub.client.patch("/ssf/stream", json=body, headers=hub.auth())
    assert r.status_code == 200
    updated = r.json()
    assert updated["description"] == "before"
    assert updated["events_delivered"] == [CAEP + "session-revoked"]
    read = await hub.client.get("/ssf/stream", params={"stream_id": a["stream_id"]}, headers=hub.auth())
    assert read.json() == updated


@on_each_store
async def test_put_replaces_and_deletes_what_is_left_out(hub: RunningHub) -> None:  # R-STREAM-11
    a = await hub.create_stream(description="will go")
    body = {
        "stream_id": a["stream_id"],
        "events_requested": [CAEP + "credential-change"],
        "delivery": {"method": POLL},
    }
    r = await hub.client.put("/ssf/stream", json=body, headers=hub.auth())
    assert r.status_code == 200
    replaced = r.json()
    assert "description" not in replaced
    assert replaced["events_delivered"] == [CAEP + "credential-change"]
    assert replaced["delivery"] == a["delivery"]


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://elsewhere.example"},
        {"aud": "someone-else"},
        {"events_delivered": ["https://schemas.openid.net/secevent/caep/event-type/session-revoked"]},
        {"events_supported": []},
        {"delivery": {"method": POLL, "endpoint_url": "https://evil.example/poll"}},
        {"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "https://r.example/push"}},
    ],
)
async def test_transmitter_fields_cannot_be_changed(
    hub: RunningHub, change: dict[str, Any]
) -> None:  # R-STREAM-10
    a = await hub.create_stream()
    for method in ("PATCH", "PUT"):
        r = await hub.client.request(
            method, "/ssf/stream", json={"stream_id": a["stream_id"], **change}, headers=hub.auth()
        )
        assert r.status_code == 400, (method, change, r.text)
        assert r.json()["err"] == "invalid_request"


async def test_transmitter_fields_may_be_echoed_unchanged(hub: RunningHub) -> None:  # R-STREAM-10, AMB-8
    a = await hub.create_stream()
    body = {**a, "description": "echo"}
    r = await hub.client.patch("/ssf/stream", json=body, headers=hub.auth())
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "echo"
    r = await hub.client.put("/ssf/stream", json=body, headers=hub.auth())
    assert r.status_code == 200, r.text


async def test_update_needs_stream_id_and_unknown_is_404(hub: RunningHub) -> None:  # R-STREAM-12
    r = await hub.client.patch("/ssf/stream", json={"description": "x"}, headers=hub.auth())
    assert r.status_code == 400
    r = await hub.client.put("/ssf/stream", json={"stream_id": "nope"}, headers=hub.auth())
    assert r.status_code == 404


async def test_delete(hub: RunningHub) -> None:  # R-STREAM-13
    a = await hub.create_stream()
    r = await hub.client.delete("/ssf/stream", params={"stream_id": a["stream_id"]}, headers=hub.auth())
    assert r.status_code == 204 and r.content == b""
    r = await hub.client.get("/ssf/stream", params={"stream_id": a["stream_id"]}, headers=hub.auth())
    assert r.status_code == 404
    r = await hub.client.delete("/ssf/stream", params={"stream_id": a["stream_id"]}, headers=hub.auth())
    assert r.status_code == 404
    r = await hub.client.delete("/ssf/stream", headers=hub.auth())
    assert r.status_code == 400  # stream_id is REQUIRED


@on_each_store
async def test_deleting_a_stream_drops_its_queue(hub: RunningHub) -> None:  # DESIGN.md delivery semantics
    a = await hub.create_stream()
    subject = {"format": "email", "email": "alice@example.com"}
    await hub.add_subject(a["stream_id"], subject)
    assert len((await hub.emit("session-revoked", subject))["sets"]) == 1
    await hub.client.delete("/ssf/stream", params={"stream_id": a["stream_id"]}, headers=hub.auth())
    r = await hub.client.get("/ssf/admin/streams", headers=hub.auth("operator", "ssf.admin"))
    assert r.json() == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"a string"',
        b'{"events_requested": "not-a-list"}',
        b'{"events_requested": [1, 2]}',
        b'{"description": 5}',
        b'{"delivery": "poll"}',
        b'{"delivery": {"method": 7}}',
        b'{"delivery": {"method": "urn:example:carrier-pigeon"}}',
        b'{"delivery": {"method": "urn:ietf:rfc:8935"}}',
        b'{"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "ftp://r.example/push"}}',
        b"",
    ],
)
async def test_malformed_create_is_400(hub: RunningHub, body: bytes) -> None:  # R-STREAM-8
    r = await hub.client.post(
        "/ssf/stream", content=body, headers={**hub.auth(), "content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["err"] == "invalid_request"
    assert isinstance(r.json()["description"], str)


async def test_legacy_delivery_object_is_normalised(hub: RunningHub) -> None:  # AMB-5
    legacy = {"delivery_method": "https://schemas.openid.net/secevent/risc/delivery-method/poll"}
    r = await hub.client.post("/ssf/stream", json={"delivery": legacy}, headers=hub.auth())
    assert r.status_code == 201
    assert r.json()["delivery"]["method"] == POLL


async def test_short_event_names_are_resolved_and_an_unsupported_only_request_is_400(hub: RunningHub) -> None:
    # Issue 13: the names `ssf-hub emit` takes work here too; no stream that receives nothing.
    r = await hub.client.post(
        "/ssf/stream", json={"events_requested": ["session-revoked"]}, headers=hub.auth()
    )
    assert r.status_code == 201, r.text
    assert r.json()["events_delivered"] == [
        "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
    ]
    r = await hub.client.post(
        "/ssf/stream", json={"events_requested": ["sesion-revoked"]}, headers=hub.auth()
    )
    assert r.status_code == 400
    assert r.json()["err"] == "invalid_request"
    assert (
        "supported event types: https://schemas.openid.net/secevent/caep/event-type/"
        in r.json()["description"]
    )
