"""The upstreams admin API refuses what it cannot use with one clear 4xx JSON error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import RunningHub

BEARER = {"type": "bearer", "token": "t"}
URL = "/ssf/admin/upstreams"


def admin(hub: RunningHub) -> dict[str, str]:
    return hub.auth("secops", "ssf.admin")


async def test_listing_needs_an_admin_token(hub: RunningHub) -> None:
    r = await hub.client.get(URL)
    assert r.status_code == 401 and r.json()["err"] == "invalid_token"
    r = await hub.client.get(URL, headers=hub.auth("agent-1", "ssf.manage"))
    assert r.status_code == 403 and r.json()["err"] == "insufficient_scope"
    r = await hub.client.get(URL, headers=admin(hub))
    assert r.status_code == 200 and r.json() == []


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"config_url": "https://idp.example.com"}', "token_source"),
        (
            b'{"config_url": "https://idp", "token_source": {"type": "bearer", "token": "t"}, "x": 1}',
            "x",
        ),
    ],
)
async def test_a_bad_request_is_a_400_naming_the_problem(
    hub: RunningHub, body: bytes, complaint: str
) -> None:
    r = await hub.client.post(URL, content=body, headers=admin(hub))
    assert r.status_code == 400, r.text
    assert r.json()["err"] == "invalid_request" and complaint in r.json()["description"]


async def test_a_key_file_the_hub_cannot_read_is_refused_at_once(hub: RunningHub, tmp_path: Path) -> None:
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello")
    for path, complaint in ((tmp_path / "missing.pem", "cannot read"), (not_a_key, "private key")):
        source: dict[str, Any] = {
            "type": "client_credentials",
            "token_endpoint": "https://idp.example.com/token",
            "client_id": "hub",
            "private_key_file": str(path),
        }
        r = await hub.client.post(
            URL, json={"config_url": "https://idp.example.com", "token_source": source}, headers=admin(hub)
        )
        assert r.status_code == 400 and complaint in r.json()["description"], r.text


async def test_ids_are_unique_and_unknown_ids_are_404(hub: RunningHub) -> None:
    body = {"upstream_id": "okta", "config_url": "https://okta.example.com", "token_source": BEARER}
    r = await hub.client.post(URL, json=body, headers=admin(hub))
    assert r.status_code == 201 and r.json()["upstream_id"] == "okta"
    assert r.json()["state"]["health"] == "pending"
    r = await hub.client.post(URL, json=body, headers=admin(hub))
    assert r.status_code == 409 and r.json()["err"] == "conflict"
    for method in ("GET", "DELETE"):
        r = await hub.client.request(method, URL + "/nope", headers=admin(hub))
        assert r.status_code == 404 and r.json()["err"] == "not_found"
    r = await hub.client.delete(URL + "/okta", headers=admin(hub))
    assert r.status_code == 204
    assert (await hub.client.get(URL, headers=admin(hub))).json() == []


async def test_compatibility_options_are_stored_and_shown(hub: RunningHub) -> None:
    """Issue #15: what an operator knows about a transmitter's quirks, given when adding it."""
    compatibility = {
        "expected_issuer": "https://idp.example.com/.well-known/ssf-configuration",
        "create_fields": {"aud": "https://hub.example.com"},
        "omit_fields": ["description"],
        "renewal": "replace",
        "push_auth": "endpoint_url_token",
    }
    body = {"upstream_id": "odd", "config_url": "https://idp.example.com", "token_source": BEARER}
    r = await hub.client.post(URL, json={**body, "compatibility": compatibility}, headers=admin(hub))
    assert r.status_code == 201, r.text
    assert r.json()["compatibility"] == compatibility
    assert r.json()["delivery"] == "auto"  # picked from the transmitter's metadata at connect
    shown = (await hub.client.get(URL + "/odd", headers=admin(hub))).json()
    assert shown["compatibility"] == compatibility and shown["state"]["adaptations"] == []
    # Without options the hub stays strict: every option at its default.
    r = await hub.client.post(URL, json={**body, "upstream_id": "plain"}, headers=admin(hub))
    assert r.json()["compatibility"] == {
        "expected_issuer": None,
        "create_fields": {},
        "omit_fields": [],
        "renewal": "patch",
        "push_auth": "authorization_header",
    }


@pytest.mark.parametrize(
    ("compatibility", "complaint"),
    [
        ([], "compatibility must be a JSON object"),
        ({"strict": False}, "unknown compatibility option(s): strict"),
        ({"expected_issuer": "idp"}, "expected_issuer"),
        ({"create_fields": {"delivery": {}}}, "the hub sets delivery itself"),
        ({"create_fields": {"aud": None}}, "aud must be a JSON value"),
        ({"omit_fields": ["aud"]}, "omit_fields must be an array of: description, events_requested"),
        ({"renewal": "post"}, "renewal must be patch, replace or recreate"),
        ({"push_auth": "query"}, "push_auth must be authorization_header or endpoint_url_token"),
    ],
)
async def test_a_bad_compatibility_option_is_a_400_naming_it(
    hub: RunningHub, compatibility: Any, complaint: str
) -> None:
    body = {"config_url": "https://idp.example.com", "token_source": BEARER, "compatibility": compatibility}
    r = await hub.client.post(URL, json=body, headers=admin(hub))
    assert r.status_code == 400, r.text
    assert r.json()["err"] == "invalid_request" and complaint in r.json()["description"]
