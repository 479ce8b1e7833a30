"""Hostile and broken requests get a clear 4xx JSON error, never a 500 (DESIGN.md Errors)."""

from __future__ import annotations

import pytest

from tests.support.hub import RunningHub

ALICE = {"format": "email", "email": "alice@example.com"}


async def test_oversized_body_is_413(hub: RunningHub) -> None:
    big = b'{"description": "' + b"x" * (300 * 1024) + b'"}'
    r = await hub.client.post(
        "/ssf/stream", content=big, headers={**hub.auth(), "content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["err"] == "payload_too_large"


async def test_oversized_chunked_body_is_413(hub: RunningHub) -> None:
    async def chunks():
        for _ in range(300):
            yield b"x" * 1024

    r = await hub.client.post("/ssf/stream", content=chunks(), headers=hub.auth())
    assert r.status_code == 413


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe", b"{" * 5000 + b"}" * 5000, b"null", b"1e999999", b'{"a": NaN}'],
)
async def test_odd_json_never_500(hub: RunningHub, body: bytes) -> None:
    for path in ("/ssf/stream", "/ssf/verify", "/ssf/status", "/ssf/subjects:add", "/ssf/admin/events"):
        scope = "ssf.admin" if "admin" in path else "ssf.manage"
        r = await hub.client.post(
            path, content=body, headers={**hub.auth(scope=scope), "content-type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (path, body[:20], r.status_code, r.text)
        assert "Traceback" not in r.text


async def test_nothing_accepted_is_lost_after_bad_requests(hub: RunningHub) -> None:
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], ALICE)
    (item,) = (await hub.emit("session-revoked", ALICE))["sets"]
    for body in (b"{", b"[]", b'{"maxEvents": -5}'):
        r = await hub.client.post(
            s["delivery"]["endpoint_url"],
            content=body,
            headers={**hub.auth(), "content-type": "application/json"},
        )
        assert r.status_code == 400
    assert list((await hub.poll(s))["sets"]) == [item["jti"]]


async def test_a_refusal_is_logged_with_its_err_but_not_the_token(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="hub.web")
    token = "not-a-jwt-but-secret"
    r = await hub.client.get("/ssf/stream", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "hub.web"]
    assert "refused GET /ssf/stream: 401 invalid_token" in lines
    assert not any(token in line for line in caplog.messages)
