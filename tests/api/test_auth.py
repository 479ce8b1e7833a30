"""Bearer access tokens on every management, poll and admin request (R-SEC-5, DESIGN.md)."""

from __future__ import annotations

import pytest

from tests.support.hub import RunningHub

ENDPOINTS = [
    ("GET", "/ssf/stream"),
    ("POST", "/ssf/stream"),
    ("PATCH", "/ssf/stream"),
    ("PUT", "/ssf/stream"),
    ("DELETE", "/ssf/stream?stream_id=x"),
    ("GET", "/ssf/status?stream_id=x"),
    ("POST", "/ssf/status"),
    ("POST", "/ssf/subjects:add"),
    ("POST", "/ssf/subjects:remove"),
    ("POST", "/ssf/verify"),
    ("POST", "/ssf/poll/x"),
    ("POST", "/ssf/admin/events"),
    ("GET", "/ssf/admin/streams"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_no_token_is_401_with_bearer_challenge(hub: RunningHub, method: str, path: str) -> None:
    r = await hub.client.request(method, path, json={})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in r.headers["www-authenticate"]  # RFC 6750 §3.1: no credentials, no error code
    assert r.json()["err"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_bad_token_is_401_invalid_token(hub: RunningHub, method: str, path: str) -> None:
    headers = {"Authorization": "Bearer not.a.jwt"}
    r = await hub.client.request(method, path, json={}, headers=headers)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_expired_token_is_refused(hub: RunningHub) -> None:
    from hub.auth.tokens import mint_local_token
    from hub.keys.ring import load_or_create_token_key

    key = load_or_create_token_key(hub.settings.data_dir)
    token = mint_local_token(
        key, sub="receiver-1", scope="ssf.manage", ttl=1, now=__import__("time").time() - 2
    )
    r = await hub.client.get("/ssf/stream", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_token_in_query_string_is_refused(hub: RunningHub) -> None:  # R-SEC-5, CAEP interop 2.7.2
    r = await hub.client.get("/ssf/stream", params={"access_token": hub.token()})
    assert r.status_code == 401
    # ... even when a header token is present too
    r = await hub.client.get("/ssf/stream", params={"access_token": hub.token()}, headers=hub.auth())
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("scope", "method", "path", "allowed"),
    [
        ("ssf.read", "GET", "/ssf/stream", True),
        ("ssf.read", "POST", "/ssf/stream", False),
        ("ssf.read", "POST", "/ssf/poll/x", False),
        ("ssf.ingest", "GET", "/ssf/stream", False),
        ("ssf.manage", "POST", "/ssf/admin/events", False),
        ("ssf.manage", "GET", "/ssf/admin/streams", False),
        ("ssf.admin", "GET", "/ssf/admin/streams", True),
        ("ssf.admin", "POST", "/ssf/stream", False),
    ],
)
async def test_scopes(hub: RunningHub, scope: str, method: str, path: str, allowed: bool) -> None:
    r = await hub.client.request(method, path, json={}, headers=hub.auth(scope=scope))
    if allowed:
        assert r.status_code not in (401, 403), r.text
    else:
        assert r.status_code == 403, r.text
        assert r.json()["err"] in {"insufficient_scope", "access_denied"}


async def test_token_from_another_data_dir_is_refused(hub: RunningHub, tmp_path) -> None:
    from hub.auth.tokens import mint_local_token
    from hub.keys.ring import load_or_create_token_key

    foreign = mint_local_token(
        load_or_create_token_key(tmp_path / "other"),
        sub="x",
        scope="ssf.manage",
        now=__import__("time").time(),
    )
    r = await hub.client.get("/ssf/stream", headers={"Authorization": f"Bearer {foreign}"})
    assert r.status_code == 401
