"""Access tokens from an external OAuth issuer (Keycloak, Okta, Entra, SPIFFE JWT bundle)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.hub import run_hub
from tests.support.servers import serve_app


def _idp(key: RSAKey) -> Starlette:
    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [key.as_dict(private=False)]})

    return Starlette(routes=[Route("/jwks", jwks)])


def _token(key: RSAKey, iss: str, sub: str, scope: str) -> str:
    now = int(time.time())
    claims = {"iss": iss, "sub": sub, "aud": "ssf-hub", "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    claims["scope"] = scope
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}, claims, key, algorithms=["RS256"])


async def test_external_issuer_tokens_manage_their_own_streams(tmp_path: Path) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "idp-1"})
    async with serve_app(_idp(key)) as idp_url:
        iss = idp_url + "/realms/agents"
        issuers = [{"issuer": iss, "jwks_uri": idp_url + "/jwks", "audience": "ssf-hub"}]
        async with run_hub(tmp_path, external_issuers=issuers) as hub:
            ext = {"Authorization": f"Bearer {_token(key, iss, 'agent-9', 'ssf.manage')}"}
            r = await hub.client.post("/ssf/stream", json={}, headers=ext)
            assert r.status_code == 201, r.text
            sid = r.json()["stream_id"]
            assert (
                await hub.client.get("/ssf/stream", params={"stream_id": sid}, headers=ext)
            ).status_code == 200

            # The same sub from the hub's local issuer is someone else.
            local = hub.auth("agent-9")
            assert (
                await hub.client.get("/ssf/stream", params={"stream_id": sid}, headers=local)
            ).status_code == 404

            # Wrong audience and missing scope are refused.
            now = int(time.time())
            bad_aud = jwt.encode(
                {"alg": "RS256", "kid": key.kid},
                {"iss": iss, "sub": "agent-9", "aud": "someone-else", "iat": now, "exp": now + 60},
                key,
                algorithms=["RS256"],
            )
            r = await hub.client.get("/ssf/stream", headers={"Authorization": f"Bearer {bad_aud}"})
            assert r.status_code == 401
            read_only = {"Authorization": f"Bearer {_token(key, iss, 'agent-9', 'ssf.read')}"}
            assert (await hub.client.post("/ssf/stream", json={}, headers=read_only)).status_code == 403


async def test_token_signed_by_an_unknown_issuer_is_refused(tmp_path: Path) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "rogue"})
    async with run_hub(tmp_path) as hub:
        token = _token(key, "https://rogue.example", "agent-9", "ssf.manage")
        r = await hub.client.get("/ssf/stream", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
