"""Discovery metadata, JWKS and health (R-DISC-*, DESIGN.md contract)."""

from __future__ import annotations

from pathlib import Path

from tests.support.hub import RunningHub, run_hub


async def test_metadata_lists_every_endpoint_under_the_issuer(hub: RunningHub) -> None:  # R-DISC-4, R-DISC-7
    r = await hub.client.get("/.well-known/ssf-configuration")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")  # R-DISC-2
    meta = r.json()
    assert meta["issuer"] == hub.issuer == hub.base_url
    assert meta["spec_version"] == "1_0"
    assert meta["delivery_methods_supported"] == ["urn:ietf:rfc:8936", "urn:ietf:rfc:8935"]
    assert {"spec_urn": "urn:ietf:rfc:6749"} in meta["authorization_schemes"]
    assert meta["default_subjects"] == "NONE"
    for name in (
        "jwks_uri",
        "configuration_endpoint",
        "status_endpoint",
        "add_subject_endpoint",
        "remove_subject_endpoint",
        "verification_endpoint",
    ):
        assert meta[name].startswith(hub.issuer + "/"), name
    # R-DISC-5: no empty arrays
    assert all(v != [] for v in meta.values())


async def test_metadata_is_readable_without_a_token(
    hub: RunningHub,
) -> None:  # R-DISC-4 authorization_schemes
    r = await hub.client.get("/.well-known/ssf-configuration")
    assert r.status_code == 200


async def test_jwks_publishes_the_signing_key_with_kid(hub: RunningHub) -> None:  # R-SET-16
    jwks = await hub.jwks()
    assert len(jwks["keys"]) == 1
    key = jwks["keys"][0]
    assert key["kid"] and key["alg"] == "RS256" and key["kty"] == "RSA"
    assert "d" not in key and "p" not in key  # public part only


async def test_issuer_with_a_path_uses_path_insertion(tmp_path: Path) -> None:  # R-DISC-1
    async with run_hub(tmp_path, issuer="http://127.0.0.1:1/tenant1/") as probe:
        port = probe.settings.port
    issuer = f"http://127.0.0.1:{port}/tenant1"
    async with run_hub(tmp_path, port=port, issuer=issuer + "/") as hub:
        assert (await hub.client.get("/.well-known/ssf-configuration")).status_code == 404
        r = await hub.client.get("/.well-known/ssf-configuration/tenant1")
        assert r.status_code == 200
        meta = r.json()
        assert meta["issuer"] == issuer  # trailing slash stripped
        assert meta["configuration_endpoint"] == issuer + "/ssf/stream"
        # The endpoints it names really answer.
        created = await hub.client.post(meta["configuration_endpoint"], json={}, headers=hub.auth())
        assert created.status_code == 201
        assert created.json()["iss"] == issuer
        assert (await hub.client.get(meta["jwks_uri"])).status_code == 200


async def test_healthz(hub: RunningHub) -> None:
    r = await hub.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_unknown_path_is_a_json_404(hub: RunningHub) -> None:
    r = await hub.client.get("/nope")
    assert r.status_code == 404
    assert r.json()["err"] == "not_found"


async def test_wrong_method_is_a_json_405(hub: RunningHub) -> None:
    r = await hub.client.delete("/ssf/verify", headers=hub.auth())
    assert r.status_code == 405
    assert r.json()["err"] == "method_not_allowed"


async def test_signing_keys_survive_a_restart(tmp_path: Path) -> None:  # keys kept in the data dir
    async with run_hub(tmp_path) as first:
        kids = [k["kid"] for k in (await first.jwks())["keys"]]
    async with run_hub(tmp_path) as second:
        assert [k["kid"] for k in (await second.jwks())["keys"]] == kids


async def test_es256_and_eddsa_are_selectable(tmp_path: Path) -> None:  # R-SEC-5 alternatives
    for alg, kty in (("ES256", "EC"), ("EdDSA", "OKP")):
        async with run_hub(tmp_path / alg, signing_alg=alg) as hub:
            (key,) = (await hub.jwks())["keys"]
            assert (key["alg"], key["kty"]) == (alg, kty)
            stream = await hub.create_stream()
            await hub.client.post("/ssf/verify", json={"stream_id": stream["stream_id"]}, headers=hub.auth())
            (claims,) = await hub.poll_verified(stream)
            assert claims["sub_id"] == {"format": "opaque", "id": stream["stream_id"]}
