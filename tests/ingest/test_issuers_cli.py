"""``ssf-hub issuers add|list|remove`` on a running hub, and ``ssf-hub emit --as-issuer``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from joserfc.jwk import RSAKey

from hub.core.dialects import UPSTREAM_CLAIM
from tests.ingest.helpers import ALICE, hub_and_idp, push, received, receiver_stream
from tests.support.idp import new_key

SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")


async def cli(*args: str) -> tuple[int, str, str]:
    """Run ``ssf-hub`` in a child process while this event loop keeps serving the hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    proc = await asyncio.create_subprocess_exec(
        SSF_HUB, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def eventually(check: Callable[[], Awaitable[bool]], limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_issuers_add_takes_effect_on_a_running_hub_and_remove_too(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        data_dir = str(hub.settings.data_dir)
        assert (await push(hub, idp.set_for(hub.issuer))).json()["err"] == "invalid_issuer"

        code, out, err = await cli(
            "issuers", "add", "--data-dir", data_dir, "--iss", idp.iss, "--jwks-uri", idp.jwks_uri
        )
        assert code == 0, err
        assert out.strip() == idp.iss

        async def accepted() -> bool:
            return (await push(hub, idp.set_for(hub.issuer))).status_code == 202

        assert await eventually(accepted)  # no restart

        code, out, _ = await cli("issuers", "list", "--data-dir", data_dir, "--json")
        assert code == 0
        assert [(i["iss"], i["jwks_uri"]) for i in json.loads(out)] == [(idp.iss, idp.jwks_uri)]
        code, out, _ = await cli("issuers", "list", "--data-dir", data_dir)
        assert idp.iss in out and "RS256,ES256" in out

        code, _, err = await cli("issuers", "remove", "--data-dir", data_dir, "--iss", idp.iss)
        assert code == 0, err

        async def refused() -> bool:
            r = await push(hub, idp.set_for(hub.issuer))
            return r.status_code == 400 and r.json()["err"] == "invalid_issuer"

        assert await eventually(refused)
        code, _, err = await cli("issuers", "remove", "--data-dir", data_dir, "--iss", idp.iss)
        assert code == 1
        assert "no trusted issuer" in err


async def test_issuers_add_with_a_pinned_jwks_file_and_limits(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path, alg="ES256") as (hub, idp):
        jwks_file = tmp_path / "idp-jwks.json"
        jwks_file.write_text(json.dumps(idp.jwks()))
        code, _, err = await cli(
            "issuers", "add", "--data-dir", str(hub.settings.data_dir), "--iss", idp.iss,
            "--jwks-file", str(jwks_file), "--alg", "ES256",
            "--event-type", "session-revoked", "--subject-pattern", "email:*@example.com",
        )  # fmt: skip
        assert code == 0, err
        stream = await receiver_stream(hub)

        async def accepted() -> bool:
            return (await push(hub, idp.set_for(hub.issuer))).status_code == 202

        assert await eventually(accepted)
        assert idp.jwks_fetches == 0  # pinned keys: nothing fetched
        outsider = idp.set_for(hub.issuer, subject={"format": "email", "email": "eve@evil.example"})
        assert (await push(hub, outsider)).json()["err"] == "access_denied"
        assert len(await received(hub, stream)) == 1


async def test_issuers_add_creates_the_data_dir_and_refuses_bad_registrations(tmp_path: Path) -> None:
    fresh = tmp_path / "not" / "yet"
    code, _, err = await cli(
        "issuers",
        "add",
        "--data-dir",
        str(fresh),
        "--iss",
        "https://idp.example",
        "--jwks-uri",
        "https://idp.example/jwks",
    )
    assert code == 0, err
    assert (fresh / "hub.sqlite3").exists()

    code, _, err = await cli(
        "issuers",
        "add",
        "--data-dir",
        str(fresh),
        "--iss",
        "https://idp.example",
        "--jwks-uri",
        "http://idp.example/jwks",
    )
    assert code == 1
    assert "https" in err  # plain http only to loopback (R-SEC-4)
    code, _, err = await cli(
        "issuers",
        "add",
        "--data-dir",
        str(fresh),
        "--iss",
        "x",
        "--jwks-uri",
        "https://x/j",
        "--alg",
        "HS256",
    )
    assert code == 2  # HMAC is not even a choice (R-SEC-1)
    code, _, err = await cli("issuers", "add", "--data-dir", str(fresh), "--iss", "x")
    assert code == 2
    assert "--jwks-uri" in err


async def test_emit_as_issuer_proves_the_path_from_idp_to_agent(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path, alg="ES256") as (hub, idp):
        key = new_key("ES256", kid="cli-key")
        idp.keys = [key]  # the IdP publishes the key the operator signs with
        key_file = tmp_path / "idp-key.jwk"
        key_file.write_text(json.dumps(key.as_dict(private=True)))
        await cli(
            "issuers",
            "add",
            "--data-dir",
            str(hub.settings.data_dir),
            "--iss",
            idp.iss,
            "--jwks-uri",
            idp.jwks_uri,
        )
        stream = await receiver_stream(hub)
        ingest_token = hub.token("secops-drill", "ssf.ingest")

        code, out, err = await cli(
            "emit", "--url", hub.issuer, "--token", ingest_token, "--event", "session-revoked",
            "--subject", json.dumps(ALICE), "--claims", '{"reason_admin": {"en": "drill"}}',
            "--as-issuer", idp.iss, "--key", str(key_file), "--json",
        )  # fmt: skip

        assert code == 0, err
        printed = json.loads(out)
        (claims,) = await received(hub, stream)
        assert claims["txn"] == printed["jti"] == printed["txn"]
        assert claims[UPSTREAM_CLAIM] == {"iss": idp.iss, "jti": printed["jti"]}
        assert claims["events"]["https://schemas.openid.net/secevent/caep/event-type/session-revoked"][
            "reason_admin"
        ] == {"en": "drill"}


async def test_emit_as_issuer_reports_the_hubs_refusal(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        pem = tmp_path / "key.pem"
        assert isinstance(idp.key, RSAKey)
        pem.write_bytes(idp.key.as_pem(private=True))  # registered nowhere

        token = hub.token("x", "ssf.ingest")
        code, _, err = await cli(
            "emit", "--url", hub.issuer, "--token", token, "--event", "session-revoked",
            "--subject", json.dumps(ALICE), "--as-issuer", idp.iss, "--key", str(pem),
        )  # fmt: skip

        assert code == 1
        assert "400 invalid_issuer" in err


async def test_issuers_add_strict_refuses_what_tolerance_would_repair(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        data_dir = str(hub.settings.data_dir)
        code, _, err = await cli(
            "issuers", "add", "--data-dir", data_dir, "--iss", idp.iss, "--jwks-uri", idp.jwks_uri, "--strict"
        )
        assert code == 0, err
        duo = idp.claims(hub.issuer)
        duo["events"] = {next(iter(duo["events"])): {"initiating_entity": "Duo policy"}}

        async def refused() -> bool:
            r = await push(hub, idp.sign(duo))
            return r.status_code == 400 and r.json()["description"].startswith(
                "session-revoked: data.initiating_entity must be one of"
            )

        assert await eventually(refused)
        code, out, _ = await cli("issuers", "list", "--data-dir", data_dir, "--json")
        assert [i["strict"] for i in json.loads(out)] == [True]
        code, out, _ = await cli("issuers", "list", "--data-dir", data_dir)
        assert "strict" in out.splitlines()[1]
