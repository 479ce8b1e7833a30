"""In-test peers for the receivers tests, all served on 127.0.0.1.

* :class:`FakeTransmitter`: a minimal SSF transmitter — discovery, JWKS, SET signing — that
  pushes SETs with httpx to a receiver's push endpoint (RFC 8935), standing in for the hub
  until its push delivery lands.
* :class:`FakeAuthServer`: an identity provider / OAuth authorization server — JWKS, a
  client-credentials token endpoint (client secret or private_key_jwt), and minting of user,
  agent and Txn-Tokens for the middleware and the agent-side cache.
"""

from __future__ import annotations

import base64
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receivers.events import SESSION_REVOKED
from tests.support.servers import serve_app

ALICE = {"format": "email", "email": "alice@example.com"}
BOB = {"format": "email", "email": "bob@example.com"}
AGENT_ID = "spiffe://example.org/agent/researcher"
AGENT = {"format": "uri", "uri": AGENT_ID}


def sign(claims: dict[str, Any], key: Key, alg: str, **header: Any) -> str:
    hdr: dict[str, Any] = {"alg": alg, "typ": "secevent+jwt"}
    if key.kid:
        hdr["kid"] = key.kid
    hdr.update(header)
    hdr = {k: v for k, v in hdr.items() if v is not None}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated")
        return jwt.encode(hdr, claims, key, algorithms=[alg], default_type=None)


def new_key(alg: str = "RS256", kid: str | None = None) -> Key:
    params: dict[str, Any] = {"alg": alg, "use": "sig"}
    if kid:
        params["kid"] = kid
    key: Key
    if alg.startswith(("RS", "PS")):
        key = RSAKey.generate_key(2048, parameters=params)  # type: ignore[arg-type]
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", parameters=params)  # type: ignore[arg-type]
    else:
        key = OKPKey.generate_key("Ed25519", parameters=params)  # type: ignore[arg-type]
    key.ensure_kid()
    return key


class FakeTransmitter:
    def __init__(self, *, alg: str = "ES256", stream_id: str = "stream-1", aud: str = "receiver-1") -> None:
        self.alg = alg
        self.keys: list[Key] = [new_key(alg)]
        self.stream_id = stream_id
        self.aud = aud
        self.issuer = "http://127.0.0.1:0"  # set when served
        self.jwks_requests = 0
        self.metadata_overrides: dict[str, Any] = {}

    @property
    def key(self) -> Key:
        return self.keys[-1]

    def rotate(self) -> Key:
        self.keys.append(new_key(self.alg))
        return self.key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.keys]}

    def app(self) -> Starlette:
        async def metadata(request: Request) -> JSONResponse:
            doc = {
                "spec_version": "1_0",
                "issuer": self.issuer,
                "jwks_uri": self.issuer + "/jwks.json",
                "delivery_methods_supported": ["urn:ietf:rfc:8935"],
            }
            doc.update(self.metadata_overrides)
            return JSONResponse(doc)

        async def jwks(request: Request) -> JSONResponse:
            self.jwks_requests += 1
            return JSONResponse(self.jwks())

        return Starlette(
            routes=[Route("/.well-known/ssf-configuration", metadata), Route("/jwks.json", jwks)]
        )

    def claims(
        self,
        event: str = SESSION_REVOKED,
        payload: dict[str, Any] | None = None,
        subject: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "aud": self.aud,
            "txn": "txn-" + uuid.uuid4().hex[:8],
            "sub_id": subject if subject is not None else ALICE,
            "events": {event: payload if payload is not None else {"event_timestamp": now}},
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], *, key: Key | None = None, **header: Any) -> str:
        return sign(claims, key or self.key, self.alg, **header)

    def set(self, event: str = SESSION_REVOKED, **kwargs: Any) -> str:
        return self.sign(self.claims(event, **kwargs))

    async def push(
        self, http: httpx.AsyncClient, url: str, token: str, *, authorization: str | None = None
    ) -> httpx.Response:
        """RFC 8935: one SET per POST, exact Content-Type and Accept (R-PUSH-1)."""
        headers = {"Content-Type": "application/secevent+jwt", "Accept": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        return await http.post(url, content=token.encode(), headers=headers)


@asynccontextmanager
async def serve_transmitter(transmitter: FakeTransmitter) -> AsyncIterator[FakeTransmitter]:
    async with serve_app(transmitter.app()) as base:
        transmitter.issuer = base
        yield transmitter


class FakeAuthServer:
    """Issuer of user/agent access tokens and Txn-Tokens; OAuth token endpoint for clients."""

    def __init__(self) -> None:
        self.key = new_key("ES256")
        self.issuer = "http://127.0.0.1:0"
        self.clients: dict[str, str | Key] = {}  # client_id -> secret or public key
        self.token_requests: list[dict[str, str]] = []
        self.token_ttl = 300
        self.expired_tokens = 0  # issue this many already-expired tokens claiming expires_in 3600
        self.audience = "ssf-hub"
        self.scope = "ssf.manage"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def mint(
        self,
        sub: str,
        *,
        iat: float | None = None,
        ttl: int = 300,
        typ: str = "at+jwt",
        aud: str = "tools",
        **claims: Any,
    ) -> str:
        now = int(time.time() if iat is None else iat)
        body: dict[str, Any] = {"iss": self.issuer, "sub": sub, "aud": aud, "iat": now, "exp": now + ttl}
        body["jti"] = uuid.uuid4().hex
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        header = {"alg": "ES256", "kid": self.key.kid, "typ": typ}
        return jwt.encode(header, body, self.key, algorithms=["ES256"])

    def txn_token(self, sub: str, req_wl: str, *, iat: float | None = None, **claims: Any) -> str:
        return self.mint(
            sub,
            iat=iat,
            typ="txntoken+jwt",
            aud="trust.example.com",
            req_wl=req_wl,
            txn=uuid.uuid4().hex,
            **claims,
        )

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse(self.jwks())

        async def token(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode()))  # no python-multipart needed
            self.token_requests.append(form)
            client_id = self._authenticate(request, form)
            if client_id is None or form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            now = int(time.time())
            lie = self.expired_tokens > 0
            self.expired_tokens -= 1
            ttl = -5 if lie else self.token_ttl
            access = self.mint(
                client_id, iat=now, ttl=ttl, aud=self.audience, scope=self.scope, client_id=client_id
            )
            expires_in = 3600 if lie else self.token_ttl
            return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": expires_in})

        return Starlette(routes=[Route("/jwks", jwks), Route("/token", token, methods=["POST"])])

    def _authenticate(self, request: Request, form: dict[str, str]) -> str | None:
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            return client_id if self.clients.get(client_id) == secret else None
        assertion = form.get("client_assertion")
        client_id = form.get("client_id", "")
        key = self.clients.get(client_id)
        if assertion is None or not isinstance(key, Key):
            return None
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return None
        try:
            claims = jwt.decode(assertion, key, algorithms=["ES256", "RS256"]).claims
        except Exception:
            return None
        ok = (
            claims.get("iss") == client_id
            and claims.get("sub") == client_id
            and claims.get("aud") == self.issuer + "/token"
            and claims.get("exp", 0) > time.time()
        )
        return client_id if ok else None


@asynccontextmanager
async def serve_auth_server(server: FakeAuthServer) -> AsyncIterator[FakeAuthServer]:
    async with serve_app(server.app()) as base:
        server.issuer = base
        yield server
