"""The console's HTTP side (issue #14): only ssf.admin opens it, every answer carries a strict
CSP, it never shows a push secret or a token, and its actions and drills do what they say."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.push.helpers import ALICE, PUSH, admin
from tests.support.hub import RunningHub

PUSH_SECRET = "Bearer push-secret-never-shown-3f9a"
FRAGMENTS = ["/overview", "/streams", "/drill", "/trace?ident=x", "/sources", "/audit"]


async def push_stream_with_secret(hub: RunningHub) -> dict[str, Any]:
    delivery = {
        "method": PUSH,
        "endpoint_url": "http://127.0.0.1:9/receiver",
        "authorization_header": PUSH_SECRET,
    }
    stream = await hub.create_stream("tool-server", delivery=delivery, description="tools")
    await hub.add_subject(stream["stream_id"], ALICE, sub="tool-server")
    return stream


async def test_the_page_and_its_files_carry_a_strict_csp_and_no_inline_code(hub: RunningHub) -> None:
    for path in ("/console", "/console/static/console.js", "/console/static/console.css"):
        r = await hub.client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp and "set-cookie" not in r.headers
    page = (await hub.client.get("/console")).text
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None  # every script is a file
    assert "<style" not in page and "style=" not in page and " on" + "click=" not in page
    assert (await hub.client.get("/console/static/other.js")).status_code == 404


@pytest.mark.parametrize("path", FRAGMENTS)
async def test_only_an_admin_token_opens_the_console_api(hub: RunningHub, path: str) -> None:
    url = "/console/api" + path
    assert (await hub.client.get(url)).status_code == 401
    assert (await hub.client.get(url, headers=hub.auth("agent-1", "ssf.manage"))).status_code == 403
    assert (await hub.client.get(url, headers={"Cookie": "session=x"})).status_code == 401
    r = await hub.client.get(url, headers=admin(hub))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]


async def test_a_receiver_token_cannot_act_or_drill(hub: RunningHub) -> None:
    stream = await push_stream_with_secret(hub)
    receiver = hub.auth("tool-server", "ssf.manage")
    sid = stream["stream_id"]
    r = await hub.client.post(
        f"/console/api/streams/{sid}/status", json={"status": "paused"}, headers=receiver
    )
    assert r.status_code == 403
    r = await hub.client.post("/console/api/drill", json={"event": "session-revoked"}, headers=receiver)
    assert r.status_code == 403


async def test_no_page_shows_a_push_secret_or_a_token(hub: RunningHub) -> None:
    stream = await push_stream_with_secret(hub)
    sid = stream["stream_id"]
    token = hub.token("operator", "ssf.admin")
    headers = {"Authorization": f"Bearer {token}"}
    emitted = await hub.emit("session-revoked", ALICE)
    for path in [*FRAGMENTS, f"/streams/{sid}", f"/trace?ident={emitted['txn']}", "/streams?q=tools"]:
        html = (await hub.client.get("/console/api" + path, headers=headers)).text
        assert "push-secret-never-shown" not in html, path
        assert token not in html and token.split(".")[2] not in html, path
    detail = (await hub.client.get(f"/console/api/streams/{sid}", headers=headers)).text
    assert sid in detail and "never shown" in detail and "tool-server" in detail


async def test_pause_and_enable_from_the_console_are_audited_with_the_operator(hub: RunningHub) -> None:
    stream = await push_stream_with_secret(hub)
    sid = stream["stream_id"]

    r = await hub.client.post(
        f"/console/api/streams/{sid}/status",
        json={"status": "paused", "reason": "drill prep"},
        headers=admin(hub),
    )
    assert r.status_code == 200 and 'id="stream-status">paused' in r.text and "drill prep" in r.text
    r = await hub.client.post(
        f"/console/api/streams/{sid}/status", json={"status": "enabled", "reason": ""}, headers=admin(hub)
    )
    assert r.status_code == 200 and 'id="stream-status">enabled' in r.text
    r = await hub.client.post(f"/console/api/streams/{sid}/retry", headers=admin(hub))
    assert r.status_code == 200 and "due now" in r.text

    audit = (await hub.client.get(f"/ssf/admin/audit?stream_id={sid}", headers=admin(hub))).json()["records"]
    kinds = [(r["kind"], r.get("actor")) for r in audit]
    assert ("retry_requested", "operator") in kinds
    assert sum(1 for kind, actor in kinds if kind == "status_changed" and actor == "operator") >= 2
    r = await hub.client.post(
        "/console/api/streams/nope/status", json={"status": "paused"}, headers=admin(hub)
    )
    assert r.status_code == 404
    r = await hub.client.post(
        f"/console/api/streams/{sid}/status", json={"status": "off"}, headers=admin(hub)
    )
    assert r.status_code == 400


async def test_the_drill_form_follows_the_event_schema(hub: RunningHub) -> None:
    html = (await hub.client.get("/console/api/drill?event=credential-change", headers=admin(hub))).text
    assert 'name="claim.credential_type"' in html and 'name="claim.change_type"' in html
    assert '<option value="revoke">' in html  # change_type is an enum: a select
    r = await hub.client.get("/console/api/drill?event=verification", headers=admin(hub))
    assert r.status_code == 400  # SSF control events are not drills


async def test_a_drill_is_audited_as_one_and_its_fan_out_streams_live(hub: RunningHub) -> None:
    poll = await hub.create_stream("agent-1")
    await hub.add_subject(poll["stream_id"], {"format": "email", "email": "bob@example.com"}, sub="agent-1")
    form = {
        "event": "session-revoked",
        "subject_format": "complex",
        "email": "bob@example.com",
        "session_id": "sess-7",
        "claim.reason_admin": "drill",
        "claim.initiating_entity": "",
        "claim.event_timestamp": "",
    }
    r = await hub.client.post("/console/api/drill", json=form, headers=admin(hub))
    assert r.status_code == 200, r.text
    txn = re.search(r'id="drill-txn">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
    assert "queued for 1 stream(s)" in r.text
    got = await hub.poll(poll, "agent-1")
    await hub.poll(poll, "agent-1", ack=list(got["sets"]))

    r = await hub.client.get(f"/console/api/drill/{txn}/events?for=3", headers=admin(hub))

    assert r.headers["content-type"].startswith("text/event-stream")
    events = [block for block in r.text.split("\n\n") if block]
    updates = [json.loads(b.split("data: ", 1)[1]) for b in events if b.startswith("event: fanout")]
    assert updates[-1]["finished"] is True and "delivered" in updates[-1]["html"]
    assert poll["stream_id"] in updates[-1]["html"] and events[-1].startswith("event: done")
    (record,) = (await hub.client.get(f"/ssf/admin/audit?txn={txn}", headers=admin(hub))).json()["records"]
    assert record["drill"] is True and record["actor"] == "operator"
    assert record["subject"]["session"] == {"format": "opaque", "id": "sess-7"}


async def test_the_sources_page_lists_trusted_issuers_without_their_keys(hub: RunningHub) -> None:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", parameters={"alg": "ES256"})
    key.ensure_kid()
    registration = {"iss": "https://idp.example", "jwks": {"keys": [key.as_dict(private=False)]}}
    r = await hub.client.post("/ssf/admin/issuers", json=registration, headers=admin(hub))
    assert r.status_code == 201, r.text

    html = (await hub.client.get("/console/api/sources", headers=admin(hub))).text

    assert "https://idp.example" in html and "inline JWKS" in html
    assert str(key.as_dict(private=False)["x"]) not in html
