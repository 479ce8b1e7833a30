"""Bearer access tokens: the local issuer and external issuers (JWKS over a real server)."""

from __future__ import annotations

import asyncio
import socket
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.auth.tokens import (
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    SCOPE_ADMIN,
    SCOPE_INGEST,
    SCOPE_MANAGE,
    SCOPE_READ,
    ExternalIssuer,
    Principal,
    TokenValidator,
    mint_local_token,
    require_scope,
)
from hub.errors import ConfigError, Forbidden, Unauthorized
from hub.keys.ring import eddsa_allowed, load_or_create_token_key
from tests.support.servers import serve_app

NOW = 1_700_000_000.0
ISS = "https://idp.example"
LOCAL = {"iss": LOCAL_ISSUER, "sub": "a", "aud": LOCAL_AUDIENCE, "exp": int(NOW) + 60}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def sign(key: Key, claims: dict[str, Any], **header: Any) -> str:
    alg = header.pop("alg", key.alg)
    hdr = {"alg": alg, "typ": "at+jwt", "kid": key.kid, **header}
    hdr = {k: v for k, v in hdr.items() if v is not None}
    with eddsa_allowed():
        return jwt.encode(hdr, claims, key, algorithms=[alg])


def new_key(alg: str) -> Key:
    key: Key
    if alg in ("RS256", "PS256"):
        key = RSAKey.generate_key(2048, parameters={"alg": alg, "use": "sig"})
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", parameters={"alg": alg, "use": "sig"})
    else:
        key = OKPKey.generate_key("Ed25519", parameters={"alg": alg, "use": "sig"})
    key.ensure_kid()
    return key


class Idp:
    """An OAuth issuer whose JWKS endpoint the test controls."""

    def __init__(self) -> None:
        self.keys: list[Key] = [new_key("RS256")]
        self.status = 200
        self.requests = 0
        self.jku_requests = 0
        self.base_url = ""
        self.app = Starlette(routes=[Route("/jwks", self.jwks), Route("/evil-jwks", self.evil)])

    async def jwks(self, request: Request) -> Response:
        self.requests += 1
        if self.status != 200:
            return Response("down", status_code=self.status)
        return JSONResponse({"keys": [k.as_dict(private=False) for k in self.keys]})

    async def evil(self, request: Request) -> Response:
        self.jku_requests += 1
        return JSONResponse({"keys": []})

    def issuer(self, **kw: Any) -> ExternalIssuer:
        return ExternalIssuer(issuer=ISS, jwks_uri=f"{self.base_url}/jwks", **kw)

    def token(self, now: float, key: Key | None = None, **claims: Any) -> str:
        body = {"iss": ISS, "sub": "agent-7", "iat": int(now), "exp": int(now) + 300, "scp": ["ssf.read"]}
        body.update(claims)
        return sign(key or self.keys[-1], {k: v for k, v in body.items() if v is not None})


@pytest.fixture
def token_key(tmp_path: Path) -> ECKey:
    return load_or_create_token_key(tmp_path)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()  # a fake clock: rate limits and expiry are tested without sleeping


@pytest.fixture
def validator(token_key: ECKey, http: httpx.AsyncClient, clock: Clock) -> TokenValidator:
    return TokenValidator(token_key, [], http_client=http, clock=clock)


@pytest.fixture
async def idp() -> AsyncIterator[Idp]:
    idp = Idp()
    async with serve_app(idp.app) as base_url:
        idp.base_url = base_url
        yield idp


async def refused(validator: TokenValidator, header: str | None) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        await validator.authenticate(header)
    return info.value


# -- local issuer -------------------------------------------------------------------------------


async def test_minted_token_accepted(validator: TokenValidator, token_key: ECKey) -> None:
    token = mint_local_token(token_key, sub="agent-1", scope="ssf.manage ssf.read", now=NOW)
    principal = await validator.authenticate(f"Bearer {token}")
    assert principal == Principal(
        sub="agent-1", scopes=frozenset({SCOPE_MANAGE, SCOPE_READ}), issuer=LOCAL_ISSUER, client_id=None
    )
    assert (await validator.authenticate(f"bearer  {token} ")).sub == "agent-1"


def test_minted_token_claims(token_key: ECKey) -> None:
    token = mint_local_token(token_key, sub="a", scope="x:y anything", ttl=60, now=NOW + 0.7, client_id="cli")
    decoded = jwt.decode(token, token_key, algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "typ": "at+jwt", "kid": token_key.kid}
    claims = decoded.claims
    assert claims["iss"] == LOCAL_ISSUER
    assert claims["aud"] == LOCAL_AUDIENCE
    assert (claims["iat"], claims["exp"]) == (int(NOW), int(NOW) + 60)
    assert claims["scope"] == "x:y anything"
    assert claims["client_id"] == "cli"
    assert len(claims["jti"]) == 32
    assert mint_local_token(token_key, sub="a", scope="", now=NOW) != mint_local_token(
        token_key, sub="a", scope="", now=NOW
    )


async def test_local_token_has_no_leeway(validator: TokenValidator, token_key: ECKey) -> None:
    token = mint_local_token(token_key, sub="a", scope="ssf.read", ttl=300, now=NOW - 301)  # exp = now-1
    assert (await refused(validator, f"Bearer {token}")).description == "token expired"
    at_edge = mint_local_token(token_key, sub="a", scope="ssf.read", ttl=300, now=NOW - 300)  # exp = now
    assert (await refused(validator, f"Bearer {at_edge}")).description == "token expired"
    future = mint_local_token(token_key, sub="a", scope="ssf.read", now=NOW + 5)
    assert (await refused(validator, f"Bearer {future}")).description == "token issued in the future"


async def test_wrong_signature_refused(validator: TokenValidator, token_key: ECKey) -> None:
    other = ECKey.generate_key("P-256", auto_kid=True)
    forged = mint_local_token(other, sub="a", scope="ssf.admin", now=NOW)
    assert "unknown signing key" in (await refused(validator, f"Bearer {forged}")).description
    # Same kid as ours, but signed by another key.
    forged = sign(other, LOCAL, alg="ES256", kid=token_key.kid)
    assert (await refused(validator, f"Bearer {forged}")).description == "bad token signature"
    good = mint_local_token(token_key, sub="a", scope="ssf.read", now=NOW)
    head, body, sig = good.split(".")
    tampered = f"{head}.{body}.{sig[:-4]}AAAA"
    assert (await refused(validator, f"Bearer {tampered}")).description == "bad token signature"


async def test_alg_none_and_hmac_refused(validator: TokenValidator, token_key: ECKey) -> None:
    claims = {**LOCAL, "scope": "ssf.admin"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        unsigned = jwt.encode({"alg": "none", "typ": "at+jwt"}, claims, None, algorithms=["none"])  # type: ignore[arg-type]
    assert (await refused(validator, f"Bearer {unsigned}")).description == "token algorithm not allowed"
    secret = OctKey.generate_key(256)
    hmac = jwt.encode({"alg": "HS256", "typ": "at+jwt"}, claims, secret, algorithms=["HS256"])
    assert (await refused(validator, f"Bearer {hmac}")).description == "token algorithm not allowed"


async def test_missing_and_malformed_headers(validator: TokenValidator) -> None:
    for header in (None, "", "   "):
        err = await refused(validator, header)
        assert err.token_presented is False
        assert err.status_code == 401
        assert "error=" not in err.www_authenticate
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer abc", "Bearer a.b.c", "Token x.y.z"):
        err = await refused(validator, header)
        assert err.token_presented is True
        assert err.err == "invalid_token"


async def test_local_claim_checks(validator: TokenValidator, token_key: ECKey) -> None:
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({"aud": "urn:other"}, {}, "token audience not accepted"),
        ({"aud": None}, {}, "token lacks claim aud"),
        ({"sub": None}, {}, "token lacks claim sub"),
        ({"exp": None}, {}, "token lacks claim exp"),
        ({"nbf": int(NOW) + 10}, {}, "token not yet valid"),
        ({"iss": "https://stranger"}, {}, "unknown issuer"),
        ({"iss": None}, {}, "token has no issuer"),
        ({"scope": 7}, {}, "malformed scope claim"),
        ({}, {"typ": "JWT"}, "token type must be at+jwt"),
        ({}, {"typ": "secevent+jwt"}, "a security event token is not an access token"),
    ]
    for overrides, header, reason in cases:
        claims = {k: v for k, v in {**LOCAL, **overrides}.items() if v is not None}
        token = sign(token_key, claims, alg="ES256", **header)
        assert (await refused(validator, f"Bearer {token}")).description == reason, overrides


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"scope": "ssf.read  ssf.manage"}, {"ssf.read", "ssf.manage"}),
        ({"scp": ["ssf.ingest", "ssf.admin"]}, {"ssf.ingest", "ssf.admin"}),
        ({"scp": "ssf.read ssf.admin"}, {"ssf.read", "ssf.admin"}),
        ({"scope": "a", "scp": ["b"]}, {"a", "b"}),
        ({}, set()),
    ],
)
async def test_scope_parsing(
    validator: TokenValidator, token_key: ECKey, claims: dict[str, Any], expected: set[str]
) -> None:
    token = sign(token_key, {**LOCAL, **claims}, alg="ES256")
    assert (await validator.authenticate(f"Bearer {token}")).scopes == expected


def test_require_scope() -> None:
    p = Principal(sub="a", scopes=frozenset({SCOPE_READ}), issuer=LOCAL_ISSUER, client_id=None)
    require_scope(p, SCOPE_READ)
    require_scope(p, SCOPE_MANAGE, SCOPE_READ)
    with pytest.raises(Forbidden) as info:
        require_scope(p, SCOPE_MANAGE, SCOPE_ADMIN)
    assert info.value.status_code == 403
    assert info.value.err == "insufficient_scope"
    with pytest.raises(Forbidden):
        require_scope(p, SCOPE_INGEST)


def test_external_issuer_config_checks() -> None:
    with pytest.raises(ConfigError):
        ExternalIssuer(ISS, "https://idp/jwks", algorithms=("RS256", "HS256"))
    with pytest.raises(ConfigError):
        ExternalIssuer(ISS, "https://idp/jwks", algorithms=("none",))
    with pytest.raises(ConfigError):
        ExternalIssuer(LOCAL_ISSUER, "https://idp/jwks")
    with pytest.raises(ConfigError):
        ExternalIssuer(ISS, "file:///etc/passwd")


# -- external issuers ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
async def test_external_token_accepted(validator: TokenValidator, idp: Idp, alg: str) -> None:
    idp.keys = [new_key(alg)]
    validator.add_issuer(idp.issuer())
    token = idp.token(NOW, azp="client-9", scp=["ssf.read", "ssf.manage"])
    principal = await validator.authenticate(f"Bearer {token}")
    assert principal == Principal(
        sub="agent-7", scopes=frozenset({"ssf.read", "ssf.manage"}), issuer=ISS, client_id="client-9"
    )
    await validator.authenticate(f"Bearer {token}")
    assert idp.requests == 1  # cached


async def test_issuer_added_at_runtime(validator: TokenValidator, idp: Idp) -> None:
    token = idp.token(NOW)
    assert (await refused(validator, f"Bearer {token}")).description == "unknown issuer"
    validator.add_issuer(idp.issuer())
    assert (await validator.authenticate(f"Bearer {token}")).issuer == ISS
    assert validator.remove_issuer(ISS)
    assert (await refused(validator, f"Bearer {token}")).description == "unknown issuer"


async def test_issuer_key_rotation_picked_up(validator: TokenValidator, idp: Idp, clock: Clock) -> None:
    validator.add_issuer(idp.issuer())
    await validator.authenticate(f"Bearer {idp.token(clock.now)}")
    idp.keys = [idp.keys[0], new_key("ES256")]
    clock.now += 60
    principal = await validator.authenticate(f"Bearer {idp.token(clock.now)}")
    assert principal.sub == "agent-7"
    assert idp.requests == 2


async def test_unknown_kid_refetch_is_rate_limited(validator: TokenValidator, idp: Idp, clock: Clock) -> None:
    validator.add_issuer(idp.issuer())
    await validator.authenticate(f"Bearer {idp.token(clock.now)}")
    assert idp.requests == 1
    stranger = new_key("RS256")
    for _ in range(5):
        token = idp.token(clock.now, key=stranger)
        assert (await refused(validator, f"Bearer {token}")).description == "unknown signing key"
    assert idp.requests == 1
    clock.now += 60
    # Many concurrent requests with an unknown kid still cause a single fetch.
    token = idp.token(clock.now, key=stranger)
    results = await asyncio.gather(
        *(validator.authenticate(f"Bearer {token}") for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, Unauthorized) for r in results)
    assert idp.requests == 2
    # Once the issuer publishes the key, it is found on the next allowed refetch.
    idp.keys.append(stranger)
    await refused(validator, f"Bearer {token}")
    clock.now += 60
    assert (await validator.authenticate(f"Bearer {idp.token(clock.now, key=stranger)}")).sub == "agent-7"
    assert idp.requests == 3


async def test_external_leeway(validator: TokenValidator, idp: Idp) -> None:
    validator.add_issuer(idp.issuer())
    assert await validator.authenticate(f"Bearer {idp.token(NOW, exp=int(NOW) - 10)}")
    assert await validator.authenticate(f"Bearer {idp.token(NOW, nbf=int(NOW) + 10, iat=int(NOW) + 10)}")
    late = idp.token(NOW, exp=int(NOW) - 31)
    assert (await refused(validator, f"Bearer {late}")).description == "token expired"
    early = idp.token(NOW, nbf=int(NOW) + 31)
    assert (await refused(validator, f"Bearer {early}")).description == "token not yet valid"


async def test_external_audience(validator: TokenValidator, idp: Idp) -> None:
    validator.add_issuer(idp.issuer(audience=("api://hub", "https://hub.example")))
    assert await validator.authenticate(f"Bearer {idp.token(NOW, aud='api://hub')}")
    assert await validator.authenticate(f"Bearer {idp.token(NOW, aud=['x', 'https://hub.example'])}")
    for aud in ("api://other", ["x", "y"]):
        err = await refused(validator, f"Bearer {idp.token(NOW, aud=aud)}")
        assert err.description == "token audience not accepted"
    assert (await refused(validator, f"Bearer {idp.token(NOW)}")).description == "token lacks claim aud"


async def test_external_alg_restrictions(validator: TokenValidator, idp: Idp) -> None:
    validator.add_issuer(idp.issuer(algorithms=("ES256",)))
    err = await refused(validator, f"Bearer {idp.token(NOW)}")  # RS256 key
    assert err.description == "token algorithm not allowed"
    assert idp.requests == 0
    # HS256 is refused before any key is looked at (no alg-confusion with public keys).
    secret = OctKey.generate_key(256)
    claims = {"iss": ISS, "sub": "x", "exp": int(NOW) + 60}
    hmac = jwt.encode({"alg": "HS256", "kid": idp.keys[0].kid}, claims, secret, algorithms=["HS256"])
    assert (await refused(validator, f"Bearer {hmac}")).description == "token algorithm not allowed"


async def test_token_supplied_jku_is_ignored(validator: TokenValidator, idp: Idp) -> None:
    validator.add_issuer(idp.issuer())
    attacker = new_key("RS256")
    claims = {"iss": ISS, "sub": "x", "exp": int(NOW) + 60}
    token = sign(attacker, claims, jku=f"{idp.base_url}/evil-jwks", x5u=f"{idp.base_url}/evil-jwks")
    assert (await refused(validator, f"Bearer {token}")).description == "unknown signing key"
    small = new_key("ES256")  # an RSA JWK would not fit the header size limit
    embedded = sign(small, claims, jwk=small.as_dict(private=False))
    assert (await refused(validator, f"Bearer {embedded}")).description == "unknown signing key"
    assert idp.jku_requests == 0


async def test_unreachable_jwks_is_unauthorized(
    token_key: ECKey, http: httpx.AsyncClient, clock: Clock
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    issuer = ExternalIssuer(ISS, f"http://127.0.0.1:{port}/jwks")
    validator = TokenValidator(token_key, [issuer], http_client=http, clock=clock)
    token = sign(new_key("ES256"), {"iss": ISS, "sub": "x", "exp": int(NOW) + 60})
    err = await refused(validator, f"Bearer {token}")
    assert err.description == "could not fetch keys for issuer"
    assert err.status_code == 401


@pytest.mark.parametrize("failure", ["status", "garbage", "empty"])
async def test_bad_jwks_responses(validator: TokenValidator, idp: Idp, clock: Clock, failure: str) -> None:
    validator.add_issuer(idp.issuer())
    if failure == "status":
        idp.status = 500
    elif failure == "garbage":
        idp.app.router.routes[0] = Route("/jwks", lambda r: Response("{not json"))
    else:
        idp.app.router.routes[0] = Route(
            "/jwks", lambda r: JSONResponse({"keys": [{"kty": "oct", "k": "AA"}]})
        )
    token = idp.token(NOW)
    err = await refused(validator, f"Bearer {token}")
    assert err.description == "could not fetch keys for issuer"
    if failure == "status":
        await refused(validator, f"Bearer {token}")
        assert idp.requests == 1  # failures are retried at a bounded rate too
        idp.status = 200
        clock.now += 5
        assert await validator.authenticate(f"Bearer {idp.token(clock.now)}")
        assert idp.requests == 2


async def test_stale_keys_kept_when_refresh_fails(
    token_key: ECKey, http: httpx.AsyncClient, idp: Idp
) -> None:
    clock = Clock()
    validator = TokenValidator(token_key, [idp.issuer()], http_client=http, clock=clock, cache_ttl=600)
    await validator.authenticate(f"Bearer {idp.token(clock.now)}")
    idp.status = 503
    clock.now += 601
    assert await validator.authenticate(f"Bearer {idp.token(clock.now)}")
    assert idp.requests == 2
