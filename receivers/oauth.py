"""OAuth access tokens for talking to a transmitter (R-SEC-5: bearer tokens in the header only).

- :class:`StaticToken`: a token you already have.
- :class:`ClientCredentials`: the OAuth 2.0 client-credentials grant, authenticating the client
  with a secret (``client_secret_basic``) or a signed JWT (``private_key_jwt``, RFC 7523).
  The token is reused until ``refresh_margin`` seconds before ``expires_in`` runs out — at
  most half its lifetime before, so short-lived tokens (30 s or less) are still reused.
  Without ``http`` each token request uses a short-lived client of its own.
- :class:`BearerAuth`: an ``httpx.Auth`` that sends ``Authorization: Bearer`` from a token
  source and, when the server answers ``401`` with ``error="invalid_token"`` (RFC 6750 §3.1;
  the token expired early or was revoked), gets a new token and retries once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Protocol

import httpx
from joserfc import jwt
from joserfc.jwk import Key

from receivers.errors import TokenError

__all__ = ["BearerAuth", "ClientCredentials", "StaticToken", "TokenSource", "is_invalid_token"]

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class TokenSource(Protocol):
    async def token(self, *, rejected: str | None = None) -> str:
        """A current access token. ``rejected``: a token the server refused; when it is the
        one held, get a new one instead of returning it again."""
        ...


class StaticToken:
    """A fixed access token; a refusal of it cannot be repaired (:class:`TokenError`)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self, *, rejected: str | None = None) -> str:
        if rejected is not None and rejected == self._token:
            raise TokenError("the static access token was refused")
        return self._token


def is_invalid_token(response: httpx.Response) -> bool:
    """A ``401`` whose ``WWW-Authenticate`` says ``error="invalid_token"``."""
    header = response.headers.get("www-authenticate", "")
    return response.status_code == 401 and 'error="invalid_token"' in header.replace(" ", "")


class ClientCredentials:
    """OAuth 2.0 client-credentials token source (``client_secret_basic`` or RFC 7523 ``private_key_jwt``)."""

    def __init__(
        self,
        token_endpoint: str,
        client_id: str,
        *,
        http: httpx.AsyncClient | None = None,
        client_secret: str | None = None,
        private_key: Key | None = None,
        signing_alg: str = "ES256",
        scope: str | None = None,
        audience: str | None = None,
        assertion_audience: str | None = None,
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if (client_secret is None) == (private_key is None):
            raise ValueError("give exactly one of client_secret and private_key")
        self.token_endpoint = token_endpoint
        self.client_id = client_id
        self.http = http
        self.client_secret = client_secret
        self.private_key = private_key
        self.signing_alg = signing_alg
        self.scope = scope
        self.audience = audience
        self.assertion_audience = assertion_audience or token_endpoint
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.new_id = new_id
        self.requests = 0  # token requests made, for observability and tests
        self._token: str | None = None
        self._expires_at: float | None = None
        self._refresh_at: float | None = None
        self._lock = asyncio.Lock()

    async def token(self, *, rejected: str | None = None) -> str:
        async with self._lock:
            if self._usable(rejected):
                assert self._token is not None
                return self._token
            await self._fetch()
            assert self._token is not None
            return self._token

    def _usable(self, rejected: str | None) -> bool:
        if self._token is None or (rejected is not None and rejected == self._token):
            return False
        return self._refresh_at is None or self.clock() < self._refresh_at

    def client_assertion(self) -> str:
        """The RFC 7523 §2.2 client assertion: iss = sub = client_id, aud = the token endpoint."""
        if self.private_key is None:
            raise TokenError("no private key for private_key_jwt")
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.assertion_audience,
            "jti": self.new_id(),
            "iat": now,
            "exp": now + 60,
        }
        header: dict[str, Any] = {"alg": self.signing_alg}
        if self.private_key.kid:
            header["kid"] = self.private_key.kid
        return jwt.encode(header, claims, self.private_key, algorithms=[self.signing_alg])

    async def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        auth: httpx.BasicAuth | None = None
        if self.client_secret is not None:
            auth = httpx.BasicAuth(self.client_id, self.client_secret)
        else:
            form.update(
                client_id=self.client_id,
                client_assertion_type=JWT_BEARER_ASSERTION,
                client_assertion=self.client_assertion(),
            )
        self.requests += 1
        started = self.clock()
        try:
            async with contextlib.AsyncExitStack() as stack:
                http = self.http
                if http is None:
                    http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
                response = await http.post(
                    self.token_endpoint,
                    data=form,
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                    headers={"Accept": "application/json"},
                )
            body = response.json() if response.content else {}
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError(f"token request to {self.token_endpoint} failed: {exc}") from exc
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise TokenError(f"token endpoint answered {response.status_code} {error or ''}".strip())
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenError("token response without access_token")
        expires_in = body.get("expires_in")
        self._token = token
        lifetime = (
            float(expires_in)
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
            else None
        )
        self._expires_at = None if lifetime is None else started + lifetime
        self._refresh_at = (
            None if lifetime is None else started + lifetime - min(self.refresh_margin, lifetime / 2)
        )


class BearerAuth(httpx.Auth):
    """``httpx.Auth`` for an ``httpx.AsyncClient``: bearer token, one retry on ``invalid_token``."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("BearerAuth needs an httpx.AsyncClient")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if is_invalid_token(response):
            await response.aread()
            token = await self.source.token(rejected=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
