"""Bearer access tokens (RFC 9068 style) for the management, poll, ingest and admin APIs.

Two kinds of issuer are trusted:

* the hub's own local issuer (``ssf-hub token`` mints with the key in the data dir); it
  shares our clock, so its tokens get no leeway;
* external OAuth issuers (Okta, Entra, Keycloak...), whose keys come only from their
  configured ``jwks_uri`` — never from a token's ``jku``/``x5u``/``jwk`` header.

The token's unverified ``iss`` only picks which issuer's keys to try; nothing in it is
trusted until the signature and claims check out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import (
    ClaimError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, Key, KeySet, import_key
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry, encode

from hub.errors import ConfigError, Forbidden, Unauthorized
from hub.keys import TOKEN_KEY_ALG, eddsa_allowed
from hub.verified_tokens import VerifiedTokens

log = logging.getLogger(__name__)

LOCAL_ISSUER = "urn:ssf-hub:local"
LOCAL_AUDIENCE = "urn:ssf-hub"
ACCESS_TOKEN_TYP = "at+jwt"

SCOPE_MANAGE = "ssf.manage"
SCOPE_READ = "ssf.read"
SCOPE_INGEST = "ssf.ingest"
SCOPE_ADMIN = "ssf.admin"

DEFAULT_EXTERNAL_ALGS = ("RS256", "ES256", "PS256", "EdDSA")
MAX_JWKS_BYTES = 256 * 1024
_SET_TYP = "secevent+jwt"


def mint_local_token(
    key: Key, *, sub: str, scope: str, ttl: int = 300, now: float, client_id: str | None = None
) -> str:
    """A token the local issuer accepts; ``scope`` is kept verbatim (any string)."""
    if not sub:
        raise ValueError("sub must not be empty")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    key.ensure_kid()
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": LOCAL_ISSUER,
        "sub": sub,
        "aud": LOCAL_AUDIENCE,
        "iat": iat,
        "exp": iat + ttl,
        "jti": uuid.uuid4().hex,
        "scope": scope,
    }
    if client_id is not None:
        claims["client_id"] = client_id
    header = {"alg": TOKEN_KEY_ALG, "typ": ACCESS_TOKEN_TYP, "kid": key.kid}
    return encode(header, claims, key, algorithms=[TOKEN_KEY_ALG])


@dataclass(frozen=True)
class Principal:
    sub: str
    scopes: frozenset[str]
    issuer: str
    client_id: str | None


@dataclass(frozen=True)
class ExternalIssuer:
    issuer: str
    jwks_uri: str
    audience: str | tuple[str, ...] | None = None  # when set, ``aud`` must hold one of them
    algorithms: tuple[str, ...] = DEFAULT_EXTERNAL_ALGS

    def __post_init__(self) -> None:
        if self.issuer == LOCAL_ISSUER:
            raise ConfigError(f"issuer {LOCAL_ISSUER!r} is reserved for the hub's own tokens")
        if not self.jwks_uri.startswith(("https://", "http://")):
            raise ConfigError(f"jwks_uri of issuer {self.issuer!r} must be an http(s) URL")
        # Symmetric and unsigned tokens would let anyone who knows (or guesses) a secret mint tokens.
        bad = [a for a in self.algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if bad or not self.algorithms:
            raise ConfigError(f"issuer {self.issuer!r}: algorithms must be asymmetric, got {bad or 'none'}")

    @property
    def audiences(self) -> tuple[str, ...]:
        if self.audience is None:
            return ()
        return (self.audience,) if isinstance(self.audience, str) else tuple(self.audience)


@dataclass
class _IssuerState:
    config: ExternalIssuer
    registry: jws.JWSRegistry
    keys: KeySet | None = None
    fetched_at: float | None = None  # last successful fetch
    attempted_at: float | None = None  # last attempt, successful or not
    last_ok: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _FetchError(Exception):
    pass


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    out: set[str] = set()
    for name in ("scope", "scp"):  # ``scp``: Okta / Entra; array or space-separated string
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            out.update(value.split())
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out.update(value)
        else:
            raise Unauthorized(f"malformed {name} claim")
    return frozenset(out)


def _client_id(claims: dict[str, Any]) -> str | None:
    for name in ("client_id", "azp", "cid"):  # RFC 9068, OIDC/Entra, Okta
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def require_scope(principal: Principal, *allowed: str) -> None:
    """Refuse (403) unless the principal holds at least one of ``allowed``."""
    if principal.scopes.isdisjoint(allowed):
        raise Forbidden(f"requires scope {' or '.join(allowed)}", err="insufficient_scope")


class TokenValidator:
    def __init__(
        self,
        local_key: Key,
        issuers: Iterable[ExternalIssuer] = (),
        *,
        http_client: httpx.AsyncClient,
        leeway: int = 30,
        clock: Callable[[], float] = time.time,
        refetch_interval: float = 60.0,
        retry_interval: float = 5.0,
        cache_ttl: float = 3600.0,
        fetch_timeout: float = 5.0,
        verified_tokens: VerifiedTokens | None = None,
    ) -> None:
        local_key.ensure_kid()
        # Verification needs only the public half; keep the private key out of this object.
        self._local_key = import_key(local_key.as_dict(private=False))
        if not isinstance(self._local_key, ECKey):
            raise ConfigError("the local token key must be an EC P-256 key")
        self._local_registry = jws.JWSRegistry(algorithms=[TOKEN_KEY_ALG])
        self._http = http_client
        self._leeway = leeway
        self._clock = clock
        self._refetch_interval = refetch_interval
        self._retry_interval = retry_interval
        self._cache_ttl = cache_ttl
        self._fetch_timeout = fetch_timeout
        self._issuers: dict[str, _IssuerState] = {}
        self._verified = verified_tokens if verified_tokens is not None else VerifiedTokens()
        for issuer in issuers:
            self.add_issuer(issuer)

    # -- issuer set (changes at runtime: ``ssf-hub issuers add`` needs no restart) ---------------
    def add_issuer(self, issuer: ExternalIssuer) -> None:
        old = self._issuers.get(issuer.issuer)
        if old is not None and old.config == issuer:
            return  # keep the warm key cache
        # External headers carry vendor extras (Entra ``nonce``...), so no strict header set.
        registry = jws.JWSRegistry(algorithms=list(issuer.algorithms), strict_check_header=False)
        self._issuers[issuer.issuer] = _IssuerState(issuer, registry)
        self._verified.forget_issuer(issuer.issuer)

    def remove_issuer(self, issuer: str) -> bool:
        self._verified.forget_issuer(issuer)
        return self._issuers.pop(issuer, None) is not None

    def set_issuers(self, issuers: Iterable[ExternalIssuer]) -> None:
        wanted = {i.issuer: i for i in issuers}
        for name in list(self._issuers):
            if name not in wanted:
                del self._issuers[name]
        for issuer in wanted.values():
            self.add_issuer(issuer)

    @property
    def issuers(self) -> tuple[ExternalIssuer, ...]:
        return tuple(s.config for s in self._issuers.values())

    # -- authentication -------------------------------------------------------------------------
    async def authenticate(self, authorization_header: str | None) -> Principal:
        if authorization_header is None or not authorization_header.strip():
            raise Unauthorized("no access token", token_presented=False)
        scheme, _, token = authorization_header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("authorization scheme must be Bearer")
        token = token.strip()
        if not token:
            raise Unauthorized("empty bearer token")

        now = self._clock()
        hit = self._verified.get(token, now)
        if hit is not None and (hit.issuer == LOCAL_ISSUER or hit.issuer in self._issuers):
            claims, iss = hit.claims, hit.issuer
        else:
            claims, iss = await self._verify(token)
            self._verified.put(token, claims, iss, now)
        audiences: tuple[str, ...]
        if iss == LOCAL_ISSUER:
            leeway, audiences = 0, (LOCAL_AUDIENCE,)
        elif (state := self._issuers.get(iss)) is not None:
            leeway, audiences = self._leeway, state.config.audiences
        else:  # removed while its keys were being fetched
            raise Unauthorized("unknown issuer")
        # Checked on every use, cached or not: a token expires on time.
        self._check_claims(claims, iss, audiences, leeway)
        return Principal(sub=claims["sub"], scopes=_scopes(claims), issuer=iss, client_id=_client_id(claims))

    async def _verify(self, token: str) -> tuple[dict[str, Any], str]:
        """The token's claims and issuer once its signature checks out."""
        obj, claims = self._parse_unverified(token)
        alg = obj.protected["alg"]
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise Unauthorized("token has no issuer")
        if iss == LOCAL_ISSUER:
            self._verify_local(obj, alg)
        else:
            state = self._issuers.get(iss)
            if state is None:
                raise Unauthorized("unknown issuer")
            await self._verify_external(state, obj, alg)
        return claims, iss

    def _parse_unverified(self, token: str) -> tuple[jws.CompactSignature, dict[str, Any]]:
        try:
            obj = jws.extract_compact(token.encode())
        except (JoseError, ValueError, TypeError) as exc:
            raise Unauthorized("malformed token") from exc
        header = obj.protected
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none" or alg.upper().startswith("HS"):
            raise Unauthorized("token algorithm not allowed")
        if "b64" in header:  # RFC 7797 unencoded payloads are not JWTs
            raise Unauthorized("malformed token")
        typ = header.get("typ")
        if isinstance(typ, str) and typ.lower().removeprefix("application/") == _SET_TYP:
            raise Unauthorized("a security event token is not an access token")
        try:
            claims = json.loads(obj.payload)
        except ValueError as exc:
            raise Unauthorized("malformed token claims") from exc
        if not isinstance(claims, dict):
            raise Unauthorized("malformed token claims")
        return obj, claims

    def _verify_local(self, obj: jws.CompactSignature, alg: str) -> None:
        header = obj.protected
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower().removeprefix("application/") != ACCESS_TOKEN_TYP:
            raise Unauthorized("token type must be at+jwt")
        if alg != TOKEN_KEY_ALG:
            raise Unauthorized("token algorithm not allowed")
        kid = header.get("kid")
        if kid is not None and kid != self._local_key.kid:
            raise Unauthorized("unknown signing key")
        if not _signature_ok(obj, [self._local_key], self._local_registry):
            raise Unauthorized("bad token signature")

    async def _verify_external(self, state: _IssuerState, obj: jws.CompactSignature, alg: str) -> None:
        if alg not in state.config.algorithms:
            raise Unauthorized("token algorithm not allowed")
        kid = obj.protected.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("malformed token")
        candidates = await self._keys_for(state, kid)
        if not _signature_ok(obj, candidates, state.registry):
            raise Unauthorized("bad token signature")

    def _check_claims(
        self, claims: dict[str, Any], iss: str, audiences: tuple[str, ...], leeway: int
    ) -> None:
        options: dict[str, ClaimsOption] = {
            "iss": {"essential": True, "value": iss},
            "sub": {"essential": True},
            "exp": {"essential": True},
        }
        if audiences:
            options["aud"] = {"essential": True, "values": list(audiences)}
        now = math.floor(self._clock())
        try:
            JWTClaimsRegistry(now=now, leeway=leeway, **options).validate(claims)
        except ExpiredTokenError as exc:
            raise Unauthorized("token expired") from exc
        except MissingClaimError as exc:
            raise Unauthorized(f"token lacks claim {exc.claim}") from exc
        except ClaimError as exc:
            reason = {
                "nbf": "token not yet valid",
                "iat": "token issued in the future",
                "aud": "token audience not accepted",
            }.get(exc.claim, f"invalid {exc.claim} claim")
            raise Unauthorized(reason) from exc
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized("token lacks claim sub")

    # -- external keys --------------------------------------------------------------------------
    async def _keys_for(self, state: _IssuerState, kid: str | None) -> list[Key]:
        if self._wants_fetch(state, kid) and self._may_fetch(state):
            async with state.lock:
                # Concurrent requests queue here; only the first one fetches.
                if self._wants_fetch(state, kid) and self._may_fetch(state):
                    await self._refresh(state)
        if state.keys is None:
            raise Unauthorized("could not fetch keys for issuer")
        if kid is None:
            return list(state.keys.keys)
        found = [k for k in state.keys.keys if k.kid == kid]
        if not found:
            raise Unauthorized("unknown signing key")
        return found

    def _wants_fetch(self, state: _IssuerState, kid: str | None) -> bool:
        if state.keys is None or state.fetched_at is None:
            return True
        if self._clock() - state.fetched_at >= self._cache_ttl:
            return True
        return kid is not None and all(k.kid != kid for k in state.keys.keys)

    def _may_fetch(self, state: _IssuerState) -> bool:
        # Bounded rate (R-SEC-2): tokens with made-up kids must not turn into a flood of fetches.
        if state.attempted_at is None:
            return True
        interval = self._refetch_interval if state.last_ok else self._retry_interval
        return self._clock() - state.attempted_at >= interval

    async def _refresh(self, state: _IssuerState) -> None:
        state.attempted_at = self._clock()
        try:
            keys = await self._fetch(state.config.jwks_uri)
        except Exception as exc:  # any failure here must end as a 401, never a 500
            state.last_ok = False
            log.warning("fetching JWKS of issuer %s failed: %r", state.config.issuer, exc)
            return  # keep serving the keys we had, if any
        state.keys = keys
        state.fetched_at = state.attempted_at
        state.last_ok = True

    async def _fetch(self, uri: str) -> KeySet:
        body = bytearray()
        async with self._http.stream(
            "GET", uri, timeout=self._fetch_timeout, headers={"Accept": "application/json"}
        ) as resp:
            if resp.status_code != 200:
                raise _FetchError(f"HTTP {resp.status_code}")
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise _FetchError("JWKS too large")
        doc = json.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise _FetchError("not a JWK Set")
        keys: list[Key] = []
        for entry in doc["keys"]:
            # Only asymmetric signing keys; skip (not fail on) keys we cannot use (RFC 7517 §5).
            if not isinstance(entry, dict) or entry.get("kty") == "oct" or entry.get("use", "sig") != "sig":
                continue
            try:
                keys.append(import_key(entry))
            except (JoseError, ValueError, TypeError, KeyError):
                continue
        if not keys:
            raise _FetchError("no usable keys")
        return KeySet(keys)


def _signature_ok(obj: jws.CompactSignature, keys: list[Key], registry: jws.JWSRegistry) -> bool:
    for key in keys:
        try:
            with eddsa_allowed():
                if jws.validate_compact(obj, key, registry=registry):
                    return True
        except JoseError:
            continue  # wrong key type for this alg, unsupported header, ...
    return False
