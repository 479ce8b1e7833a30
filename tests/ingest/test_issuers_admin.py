"""The admin API for trusted issuers, and the registry a running hub reads through."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from hub.core.issuers import TrustedIssuer
from hub.ingest.registry import IssuerRegistry
from hub.store import SQLiteStore
from tests.ingest.helpers import hub_and_idp, push
from tests.support.hub import RunningHub

IDP = "https://idp.example.com/realms/main"


def admin(hub: RunningHub) -> dict[str, str]:
    return hub.auth("secops", "ssf.admin")


async def test_add_read_list_replace_and_remove_an_issuer(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, _):
        body = {"iss": IDP, "jwks_uri": "https://idp.example.com/jwks", "event_types": ["session-revoked"]}

        created = await hub.client.post("/ssf/admin/issuers", json=body, headers=admin(hub))
        assert created.status_code == 201, created.text
        assert created.json()["event_types"] == [
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
        ]

        one = await hub.client.get(f"/ssf/admin/issuers/{quote(IDP, safe='')}", headers=admin(hub))
        assert one.status_code == 200
        assert one.json()["iss"] == IDP

        replaced = await hub.client.post(
            "/ssf/admin/issuers", json={**body, "algorithms": ["PS256"]}, headers=admin(hub)
        )
        assert replaced.status_code == 200
        listed = (await hub.client.get("/ssf/admin/issuers", headers=admin(hub))).json()
        assert [(i["iss"], i["algorithms"]) for i in listed] == [(IDP, ["PS256"])]

        removed = await hub.client.delete(f"/ssf/admin/issuers/{quote(IDP, safe='')}", headers=admin(hub))
        assert removed.status_code == 204
        again = await hub.client.delete(f"/ssf/admin/issuers/{quote(IDP, safe='')}", headers=admin(hub))
        assert again.status_code == 404
        assert again.json()["err"] == "not_found"


async def test_the_issuer_api_needs_ssf_admin(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, _):
        body = {"iss": IDP, "jwks_uri": "https://idp.example.com/jwks"}
        assert (await hub.client.get("/ssf/admin/issuers")).status_code == 401
        for scope in ("ssf.ingest", "ssf.manage"):
            r = await hub.client.post("/ssf/admin/issuers", json=body, headers=hub.auth("x", scope))
            assert r.status_code == 403, scope


async def test_bad_registrations_get_a_clear_400(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, _):
        cases = [
            {"iss": IDP},
            {"iss": IDP, "jwks_uri": "https://idp.example.com/jwks", "algorithms": ["HS256"]},
            {"iss": IDP, "jwks_uri": "https://idp.example.com/jwks", "event_types": ["no-such-event"]},
            {"iss": IDP, "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}},
            ["not", "an", "object"],
        ]
        for body in cases:
            r = await hub.client.post("/ssf/admin/issuers", json=body, headers=admin(hub))
            assert r.status_code == 400, (body, r.text)
            assert r.json()["err"] == "invalid_request"
        assert (await hub.client.get("/ssf/admin/issuers", headers=admin(hub))).json() == []


async def test_an_issuer_added_through_the_api_is_trusted_at_once(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        body = {"iss": idp.iss, "jwks_uri": idp.jwks_uri}
        await hub.client.post("/ssf/admin/issuers", json=body, headers=admin(hub))

        assert (await push(hub, idp.set_for(hub.issuer))).status_code == 202

        await hub.client.delete(f"/ssf/admin/issuers/{quote(idp.iss, safe='')}", headers=admin(hub))
        assert (await push(hub, idp.set_for(hub.issuer))).json()["err"] == "invalid_issuer"


async def test_the_registry_sees_another_processs_changes_within_its_ttl(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    hub_store, cli_store = SQLiteStore(path), SQLiteStore(path)
    await hub_store.open()
    await cli_store.open()
    now = [100.0]
    registry = IssuerRegistry(hub_store, ttl=1.0, miss_ttl=0.2, clock=lambda: now[0])
    try:
        assert await registry.get(IDP) is None
        await cli_store.put_issuer(TrustedIssuer(iss=IDP, jwks_uri="https://idp.example.com/jwks"))

        assert await registry.get(IDP) is None  # a miss is cached for miss_ttl
        now[0] += 0.2
        assert (await registry.get(IDP)) is not None

        await cli_store.remove_issuer(IDP)
        now[0] += 0.5
        assert (await registry.get(IDP)) is not None  # a hit is trusted for ttl
        now[0] += 0.5
        assert await registry.get(IDP) is None
    finally:
        await cli_store.close()
        await hub_store.close()
