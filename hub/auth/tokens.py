"""Bearer access tokens (RFC 9068 style) for the management, poll, ingest and admin APIs.

Two kinds of issuer are trusted:

* the hub's own local issuer (``ssf-hub token`` mints with the key in the data dir); it
  shares our clock, so its tokens get no leeway;
* external OAuth issuers (Okta, Entra, Keycloak...), whose keys come only from their
  configured ``jwks_uri`` — never from a token's ``jku``/``x5u``/``jwk`` header.

The token's unverified ``iss`` only picks which issuer's keys to try; nothing in it is
trusted until the signature and claims check out. External keys come from the library's
:class:`receivers.jwks.JwksCache` (the same cache ingest uses), signatures are checked by
:func:`receivers.verify.signature_ok`; what is the hub's own here is the issuer set, the
local issuer, scopes and the verified-token cache.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import (
    ClaimError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, Key, import_key
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry, encode

from hub.auth.verified import VerifiedTokens
from hub.core.inputs import decode_json
from hub.errors import ConfigError, Forbidden, InvalidRequest, Unauthorized
from hub.keys.ring import TOKEN_KEY_ALG
from receivers.errors import KeysUnavailable
from receivers.jwks import JwksCache
from receivers.verify import jose_registry, signature_ok

LOCAL_ISSUER = "urn:ssf-hub:local"
LOCAL_AUDIENCE = "urn:ssf-hub"
ACCESS_TOKEN_TYP = "at+jwt"

SCOPE_MANAGE = "ssf.manage"
SCOPE_READ = "ssf.read"
SCOPE_INGEST = "ssf.ingest"
SCOPE_ADMIN = "ssf.admin"
SCOPE_METRICS = "ssf.metrics"  # a Prometheus scrape: GET /metrics and nothing else
KNOWN_SCOPES = (SCOPE_MANAGE, SCOPE_READ, SCOPE_INGEST, SCOPE_ADMIN, SCOPE_METRICS)

DEFAULT_EXTERNAL_ALGS = ("RS256", "ES256", "PS256", "EdDSA")
# Real access tokens are 1-2 KiB (Entra's largest about 4 KiB); anything far larger is refused
# before any parsing or key lookup.
MAX_ACCESS_TOKEN_BYTES = 8 * 1024
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


@dataclass(frozen=True)
class _IssuerState:
    config: ExternalIssuer
    registry: jws.JWSRegistry
    keys: JwksCache


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
        max_token_bytes: int = MAX_ACCESS_TOKEN_BYTES,
    ) -> None:
        local_key.ensure_kid()
        # Verification needs only the public half; keep the private key out of this object.
        self._local_key = import_key(local_key.as_dict(private=False))
        if not isinstance(self._local_key, ECKey):
            raise ConfigError("the local token key must be an EC P-256 key")
        self._local_registry = jose_registry([TOKEN_KEY_ALG])
        self._http = http_client
        self._leeway = leeway
        self._clock = clock
        # How each issuer's JwksCache refetches: on an unknown kid at a bounded rate (R-SEC-2).
        self._jwks_timing = {
            "max_age": cache_ttl,
            "min_refetch_interval": refetch_interval,
            "min_retry_interval": retry_interval,
            "timeout": fetch_timeout,
        }
        self._max_token_bytes = max_token_bytes
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
        keys = JwksCache(issuer.jwks_uri, http=self._http, clock=self._clock, **self._jwks_timing)
        self._issuers[issuer.issuer] = _IssuerState(issuer, jose_registry(issuer.algorithms), keys)
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
        if len(token) > self._max_token_bytes:
            raise Unauthorized(f"token longer than {self._max_token_bytes} bytes")
        try:
            obj = jws.extract_compact(token.encode())
        except (JoseError, ValueError, TypeError, RecursionError) as exc:  # nested header JSON
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
            claims = decode_json(obj.payload, what="the token claims")
        except InvalidRequest as exc:
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
        if not signature_ok(obj, [self._local_key], self._local_registry):
            raise Unauthorized("bad token signature")

    async def _verify_external(self, state: _IssuerState, obj: jws.CompactSignature, alg: str) -> None:
        if alg not in state.config.algorithms:
            raise Unauthorized("token algorithm not allowed")
        kid = obj.protected.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("malformed token")
        try:
            candidates = await state.keys.keys_for(kid)
        except KeysUnavailable:
            # Keys held but this kid not looked up yet (refetch rate limit, R-SEC-2), or none yet.
            held = state.keys.has_keys
            raise Unauthorized("unknown signing key" if held else "could not fetch keys for issuer") from None
        if not candidates:
            raise Unauthorized("unknown signing key")
        if not signature_ok(obj, candidates, state.registry):
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
