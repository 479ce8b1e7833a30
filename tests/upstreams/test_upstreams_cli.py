"""``ssf-hub upstreams add | list | remove`` on a data dir, taking effect on a running hub."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.hub import run_hub
from tests.upstreams.support import FAST, IDP, eventually, idp_streams

SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    return await asyncio.to_thread(
        subprocess.run, [SSF_HUB, "upstreams", *args], capture_output=True, text=True, timeout=60, env=env
    )


async def test_an_upstream_added_from_the_command_line_is_picked_up_by_the_running_hub(
    tmp_path: Path,
) -> None:
    data = tmp_path / "hub"
    async with run_hub(tmp_path / "idp", **IDP) as idp, run_hub(data, **FAST) as hub:
        bearer = idp.token(sub=hub.issuer, scope="ssf.manage", ttl=3600)
        added = await cli(
            "add",
            "--data-dir",
            str(data),
            "--config-url",
            idp.issuer,
            "--token-source",
            "bearer",
            "--bearer-token",
            bearer,
            "--events",
            "session-revoked,credential-change",
            "--name",
            "idp",
        )
        assert added.returncode == 0, added.stderr
        assert added.stdout.strip() == "idp"

        async def listed_healthy() -> str | None:
            out = await cli("list", "--data-dir", str(data))
            assert out.returncode == 0, out.stderr
            rows = [line.split() for line in out.stdout.splitlines()[1:]]
            return out.stdout if rows and rows[0][:3] == ["idp", "poll", "healthy"] else None

        table = await eventually(listed_healthy)
        assert idp.issuer in table and bearer not in table
        (record,) = json.loads((await cli("list", "--data-dir", str(data), "--json")).stdout)
        assert record["state"]["stream_id"] == (await idp_streams(idp))[0]["stream_id"]
        assert record["token_source"] == {"type": "bearer"}

        removed = await cli("remove", "idp", "--data-dir", str(data))
        assert removed.returncode == 0, removed.stderr

        async def unsubscribed() -> bool:
            return await idp_streams(idp) == []

        await eventually(unsubscribed)  # the hub deleted its stream at the IdP


async def test_command_line_mistakes_are_one_line_on_stderr(tmp_path: Path) -> None:
    data = str(tmp_path / "hub")
    missing = await cli("add", "--data-dir", data, "--config-url", "https://idp", "--token-source", "bearer")
    assert missing.returncode == 1 and "needs --bearer-token" in missing.stderr
    no_key = await cli(
        "add",
        "--data-dir",
        data,
        "--config-url",
        "https://idp.example.com",
        "--token-source",
        "client-credentials",
        "--token-endpoint",
        "https://idp.example.com/token",
        "--client-id",
        "hub",
        "--private-key",
        str(tmp_path / "nope.pem"),
    )
    assert no_key.returncode == 1 and "cannot read private key file" in no_key.stderr
    assert no_key.stderr.count("\n") == 1
    unknown = await cli("remove", "nope", "--data-dir", data)
    assert unknown.returncode == 1 and "no upstream nope" in unknown.stderr


async def test_compatibility_options_from_the_command_line(tmp_path: Path) -> None:
    """Issue #15: ``upstreams add`` takes the options an odd transmitter needs."""
    data = str(tmp_path / "hub")
    added = await cli(
        "add",
        "--data-dir",
        data,
        "--config-url",
        "https://idp.example.com/.well-known/ssf-configuration",
        "--token-source",
        "bearer",
        "--bearer-token",
        "t",
        "--name",
        "odd",
        "--expected-issuer",
        "https://idp.example.com/.well-known/ssf-configuration",
        "--create-field",
        "aud=https://hub.example.com",
        "--create-field",
        'scopes=["a","b"]',
        "--omit-field",
        "description",
        "--renewal",
        "recreate",
        "--push-auth",
        "endpoint_url_token",
    )
    assert added.returncode == 0, added.stderr
    (record,) = json.loads((await cli("list", "--data-dir", data, "--json")).stdout)
    assert record["delivery"] == "auto"
    assert record["compatibility"] == {
        "expected_issuer": "https://idp.example.com/.well-known/ssf-configuration",
        "create_fields": {"aud": "https://hub.example.com", "scopes": ["a", "b"]},
        "omit_fields": ["description"],
        "renewal": "recreate",
        "push_auth": "endpoint_url_token",
    }
    bad = await cli(
        "add", "--data-dir", data, "--config-url", "https://idp.example.com", "--token-source", "bearer",
        "--bearer-token", "t", "--create-field", "aud",
    )  # fmt: skip
    assert bad.returncode == 1 and "--create-field 'aud': give NAME=VALUE" in bad.stderr
