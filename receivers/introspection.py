"""The caller behind an opaque access token, asked of the authorization server (RFC 7662).

:class:`IntrospectionIdentity` is an :data:`~receivers.identity.Identity`, like
:class:`~receivers.identity.BearerJwtIdentity`, for tokens that are not JWTs: it POSTs the
token to the introspection endpoint (``token=...&token_type_hint=access_token``, RFC 7662
§2.1), authenticated as the resource server (``client_secret_basic``, or any ``httpx.Auth``).

- ``"active": true`` gives a :class:`~receivers.caller.Caller` whose credential speaks for the
  subjects in the response (``sub``, ``email``, ``act``, ``client_id``... read like JWT claims,
  :func:`~receivers.principals.principals_from_claims`) and was issued at its ``iat``; with
  ``audience`` set, ``aud`` must contain it.
- ``"active": false``, an expired ``exp`` or a foreign audience raise
  :class:`~receivers.errors.TokenError` (the middleware answers ``401 invalid_token``); so does
  an endpoint that cannot be reached or answers anything but ``200`` (fail closed).

Answers are cached for ``cache_ttl`` seconds (never past the token's ``exp``), keyed by the
token's fingerprint, so a busy service asks once per token per interval; inactive answers
too. Revocations still apply at once: the middleware checks the credential's ``iat`` against
the revocation list on every request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

import httpx

from receivers.caller import Caller, Credential
from receivers.errors import TokenError
from receivers.identity import bearer_token
from receivers.principals import principals_from_claims
from receivers.tokens import TokenKind, fingerprint

__all__ = ["IntrospectionIdentity"]


class IntrospectionIdentity:
    """The caller behind ``Authorization: Bearer <opaque token>``, by RFC 7662 introspection."""

    kind = TokenKind.ACCESS

    def __init__(
        self,
        endpoint: str,
        *,
        http: httpx.AsyncClient,
        client_id: str | None = None,
        client_secret: str | None = None,
        auth: httpx.Auth | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        cache_ttl: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if auth is None and client_id is not None and client_secret is not None:
            auth = httpx.BasicAuth(client_id, client_secret)
        self.endpoint = endpoint
        self.http = http
        self.auth = auth
        self.audience = audience
        self.issuer = issuer
        self.cache_ttl = cache_ttl
        self.max_entries = max_entries
        self.clock = clock
        self.requests = 0  # introspection requests made
        # fingerprint -> (valid until, claims of an active token or None)
        self._cache: OrderedDict[str, tuple[float, dict[str, object] | None]] = OrderedDict()

    def token_of(self, headers: Mapping[str, str]) -> str | None:
        return bearer_token(headers)

    async def __call__(self, headers: Mapping[str, str]) -> Caller | None:
        token = self.token_of(headers)
        if token is None:
            return None
        claims = await self.claims(token)
        iat = claims.get("iat")
        txn = claims.get("txn")
        credential = Credential(
            kind=self.kind,
            subjects=tuple(principals_from_claims(claims, issuer=self.issuer)),
            issued_at=float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None,
            fingerprint=fingerprint(token),
            txn=txn if isinstance(txn, str) else None,
        )
        return Caller((credential,))

    async def claims(self, token: str) -> dict[str, object]:
        """The introspection response of an active token; raises :class:`TokenError` otherwise."""
        now = self.clock()
        key = fingerprint(token)
        cached = self._cache.get(key)
        if cached is None or cached[0] <= now:
            cached = await self._introspect(token, now)
            self._cache[key] = cached
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        claims = cached[1]
        if claims is None:
            raise TokenError("the access token is not active")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp <= now:
            raise TokenError("the access token has expired")
        return claims

    async def _introspect(self, token: str, now: float) -> tuple[float, dict[str, object] | None]:
        self.requests += 1
        try:
            response = await self.http.post(
                self.endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError(f"token introspection failed: {type(exc).__name__}") from exc
        if response.status_code != 200 or not isinstance(body, dict):
            raise TokenError(f"token introspection answered {response.status_code}")
        until = now + self.cache_ttl
        if body.get("active") is not True or not self._audience_ok(body.get("aud")):
            return until, None
        exp = body.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            until = min(until, float(exp))
        return until, body

    def _audience_ok(self, aud: object) -> bool:
        if self.audience is None:
            return True
        return aud == self.audience or (isinstance(aud, list) and self.audience in aud)
