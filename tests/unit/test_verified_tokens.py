# ruff: noqa: F811  (the fixtures imported from test_access are redefined as parameters)
"""A token verified once is not re-verified on every request, yet it still expires on time
and stops working when its issuer goes away or changes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey

from hub.auth.tokens import TokenValidator, mint_local_token
from hub.auth.verified import VerifiedTokens
from hub.errors import Unauthorized
from hub.keys.ring import load_or_create_token_key
from tests.unit.test_access import ISS, NOW, Clock, Idp, clock, http, idp  # noqa: F401  (fixtures)


@pytest.fixture
def token_key(tmp_path: Path) -> ECKey:
    return load_or_create_token_key(tmp_path)


@pytest.fixture
def verified() -> VerifiedTokens:
    return VerifiedTokens(size=2, ttl=60.0)


@pytest.fixture
def validator(
    token_key: ECKey,
    http: httpx.AsyncClient,
    clock: Clock,
    verified: VerifiedTokens,
) -> TokenValidator:
    return TokenValidator(token_key, [], http_client=http, clock=clock, verified_tokens=verified)


async def test_a_verified_token_is_remembered(
    validator: TokenValidator, token_key: ECKey, verified: VerifiedTokens
) -> None:
    token = mint_local_token(token_key, sub="agent-1", scope="ssf.read", now=NOW)
    await validator.authenticate(f"Bearer {token}")
    assert verified.get(token, NOW) is not None
    assert (await validator.authenticate(f"Bearer {token}")).sub == "agent-1"


async def test_a_remembered_token_still_expires_on_time(
    validator: TokenValidator,
    token_key: ECKey,
    clock: Clock,
) -> None:
    token = mint_local_token(token_key, sub="agent-1", scope="ssf.read", ttl=30, now=NOW)
    await validator.authenticate(f"Bearer {token}")
    clock.now = NOW + 30  # exp reached, the entry itself still fresh
    with pytest.raises(Unauthorized, match="token expired"):
        await validator.authenticate(f"Bearer {token}")


async def test_a_forged_token_is_never_remembered(
    validator: TokenValidator, token_key: ECKey, verified: VerifiedTokens
) -> None:
    forged = mint_local_token(ECKey.generate_key("P-256"), sub="admin", scope="ssf.admin", now=NOW)
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await validator.authenticate(f"Bearer {forged}")
    assert len(verified) == 0


async def test_an_issuer_reconfigured_rechecks_its_tokens(validator: TokenValidator, idp: Idp) -> None:
    validator.add_issuer(idp.issuer())
    token = idp.token(NOW)
    await validator.authenticate(f"Bearer {token}")
    validator.add_issuer(idp.issuer(audience="https://hub.example"))  # now aud is required
    with pytest.raises(Unauthorized, match="aud"):
        await validator.authenticate(f"Bearer {token}")


def test_entries_are_bounded_in_number_and_age() -> None:
    cache = VerifiedTokens(size=2, ttl=60.0)
    for n, token in enumerate(["a", "b", "c"]):
        cache.put(token, {"n": n}, ISS, NOW)
    assert cache.get("a", NOW) is None and len(cache) == 2  # least recently used went first
    assert cache.get("b", NOW + 59.9) is not None
    assert cache.get("b", NOW + 60) is None
    assert cache.get("c", NOW - 1) is None  # a clock that went back does not extend an entry


def test_forgetting_an_issuer_drops_only_its_entries() -> None:
    cache = VerifiedTokens()
    cache.put("a", {}, ISS, NOW)
    cache.put("b", {}, "urn:other", NOW)
    cache.forget_issuer(ISS)
    assert cache.get("a", NOW) is None and cache.get("b", NOW) is not None
