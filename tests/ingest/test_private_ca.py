"""An identity provider behind a private CA (issue 13): tls_ca_file makes its JWKS trusted,
and without it the refusal says why instead of a bare "no keys yet"."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load_settings
from hub.errors import ConfigError
from tests.ingest.helpers import push, receiver_stream, trust
from tests.support.hub import run_hub
from tests.support.idp import run_idp
from tests.support.tls import make_test_ca


async def test_an_issuer_jwks_behind_a_private_ca_is_fetched_with_tls_ca_file(tmp_path: Path) -> None:
    ca = make_test_ca(tmp_path / "ca")
    async with (
        run_idp(tls=ca.server) as idp,
        run_hub(tmp_path / "hub", tls_ca_file=str(ca.ca_file), ingest_jwks_refetch_seconds=0) as hub,
    ):
        assert idp.jwks_uri.startswith("https://127.0.0.1:")
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        r = await push(hub, idp.set_for(hub.issuer))
        assert r.status_code == 202, r.text
        assert len((await hub.poll(stream, "agent-1"))["sets"]) == 1


async def test_without_the_ca_the_503_says_the_certificate_is_not_trusted(tmp_path: Path) -> None:
    ca = make_test_ca(tmp_path / "ca")
    async with run_idp(tls=ca.server) as idp, run_hub(tmp_path / "hub", ingest_jwks_refetch_seconds=0) as hub:
        await trust(hub, idp)
        r = await push(hub, idp.set_for(hub.issuer))
        assert r.status_code == 503
        description = r.json()["description"]
        assert "TLS: the server's certificate is not trusted" in description
        assert "CERTIFICATE_VERIFY_FAILED" in description


def test_a_tls_ca_file_that_is_not_there_stops_the_hub_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment SSF_HUB_TLS_CA_FILE: setting tls_ca_file="):
        load_settings(environ={"SSF_HUB_TLS_CA_FILE": str(tmp_path / "missing.pem")})
