"""The hub's signing key ring and key files."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from hub.errors import ConfigError
from hub.keys.ring import (
    SIGNING_ALGS,
    KeyFile,
    SigningKeyRing,
    eddsa_allowed,
    load_or_create_signing_keys,
    load_or_create_token_key,
    save_signing_keys,
)

T0 = 1_700_000_000.0
DAY = 86_400.0


def verify(token: str, jwks: dict[str, object]) -> jwt.Token:
    keyset = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    with eddsa_allowed():
        return jwt.decode(token, keyset, algorithms=list(SIGNING_ALGS))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_and_next_start_reloads_same_key(tmp_path: Path) -> None:
    ring = load_or_create_signing_keys(tmp_path, "ES256", T0)
    path = tmp_path / "keys" / "signing.json"
    assert path.exists()
    assert mode(path) == 0o600
    again = load_or_create_signing_keys(tmp_path, "ES256", T0 + 10)
    assert again.active.kid == ring.active.kid
    assert again.active.created_at == T0
    assert again.jwks() == ring.jwks()
    token = ring.sign({"jti": "1"})
    assert verify(token, again.jwks()).claims == {"jti": "1"}


def test_kid_is_rfc7638_thumbprint(tmp_path: Path) -> None:
    ring = load_or_create_signing_keys(tmp_path, "ES256", T0)
    assert ring.active.kid == ring.active.key.thumbprint()


def test_rsa_key_is_2048_bit(tmp_path: Path) -> None:
    ring = load_or_create_signing_keys(tmp_path, "RS256", T0)
    key = ring.active.key
    assert isinstance(key, RSAKey)
    assert key.raw_value.key_size == 2048


@pytest.mark.parametrize("alg", SIGNING_ALGS)
def test_sign_header_and_verify_with_published_jwks(alg: str) -> None:
    ring = SigningKeyRing.generate(alg, T0)
    token = ring.sign({"iss": "https://hub", "jti": "abc"})
    decoded = verify(token, ring.jwks())
    assert decoded.header == {"alg": alg, "typ": "secevent+jwt", "kid": ring.active.kid}
    assert decoded.claims["jti"] == "abc"
    (published,) = ring.jwks()["keys"]
    assert published["kid"] == ring.active.kid
    assert published["alg"] == alg
    assert published["use"] == "sig"
    # Only public parts are published.
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(published)


def test_sign_custom_typ() -> None:
    ring = SigningKeyRing.generate("ES256", T0)
    assert verify(ring.sign({"a": 1}, typ="JWT"), ring.jwks()).header["typ"] == "JWT"


def test_rotation_keeps_old_key_during_overlap_then_prune_drops_it() -> None:
    ring = SigningKeyRing.generate("ES256", T0)
    old_kid = ring.active.kid
    old_set = ring.sign({"jti": "old"})
    ring.rotate(T0 + DAY, overlap=3600)
    assert ring.active.kid != old_kid
    assert ring.active.not_after is None
    kids = [k["kid"] for k in ring.jwks()["keys"]]
    assert kids == [old_kid, ring.active.kid]
    # A SET signed before the rotation still verifies against the published JWKS.
    assert verify(old_set, ring.jwks()).claims["jti"] == "old"
    assert verify(ring.sign({"jti": "new"}), ring.jwks()).header["kid"] == ring.active.kid

    assert ring.prune(T0 + DAY + 3599) is False
    assert len(ring.jwks()["keys"]) == 2
    assert ring.prune(T0 + DAY + 3600) is True
    assert [k["kid"] for k in ring.jwks()["keys"]] == [ring.active.kid]
    with pytest.raises(JoseError):  # no key left for it
        verify(old_set, ring.jwks())


def test_needs_rotation() -> None:
    ring = SigningKeyRing.generate("ES256", T0)
    assert not ring.needs_rotation(T0 + DAY - 1, DAY)
    assert ring.needs_rotation(T0 + DAY, DAY)
    ring.rotate(T0 + DAY, overlap=DAY)
    assert not ring.needs_rotation(T0 + DAY, DAY)


def test_rotation_persists_and_reloads(tmp_path: Path) -> None:
    ring = load_or_create_signing_keys(tmp_path, "ES256", T0)
    ring.rotate(T0 + DAY, overlap=DAY)
    save_signing_keys(tmp_path, ring)
    path = KeyFile(tmp_path).path
    assert mode(path) == 0o600
    reloaded = load_or_create_signing_keys(tmp_path, "ES256", T0 + DAY + 1)
    assert [k.kid for k in reloaded.keys] == [k.kid for k in ring.keys]
    # Loading after the overlap prunes the old key and writes that back.
    later = load_or_create_signing_keys(tmp_path, "ES256", T0 + 3 * DAY)
    assert [k.kid for k in later.keys] == [ring.active.kid]
    assert len(json.loads(path.read_text())["keys"]) == 1
    assert not list(path.parent.glob(".*.tmp"))  # no temp files left behind


@pytest.mark.parametrize(("first", "second"), [("RS256", "ES256"), ("ES256", "EdDSA"), ("EdDSA", "RS256")])
def test_changing_configured_alg_rotates(tmp_path: Path, first: str, second: str) -> None:
    ring = load_or_create_signing_keys(tmp_path, first, T0)
    old_set = ring.sign({"jti": "before"})
    changed = load_or_create_signing_keys(tmp_path, second, T0 + 60, overlap=DAY)
    assert changed.active.alg == second
    assert [k["alg"] for k in changed.jwks()["keys"]] == [first, second]
    assert changed.keys[0].not_after == T0 + 60 + DAY
    assert verify(old_set, changed.jwks()).claims["jti"] == "before"
    # Persisted: the next start with the same alg does not rotate again.
    assert load_or_create_signing_keys(tmp_path, second, T0 + 120).active.kid == changed.active.kid


def test_unknown_alg_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_or_create_signing_keys(tmp_path, "HS256", T0)


def test_corrupt_key_file_is_config_error_not_silently_replaced(tmp_path: Path) -> None:
    load_or_create_signing_keys(tmp_path, "ES256", T0)
    path = KeyFile(tmp_path).path
    path.write_text("{not json")
    with pytest.raises(ConfigError):
        load_or_create_signing_keys(tmp_path, "ES256", T0)
    assert path.read_text() == "{not json"


def test_token_key_created_once_and_shared(tmp_path: Path) -> None:
    key = load_or_create_token_key(tmp_path)
    path = tmp_path / "keys" / "access-token.json"
    assert mode(path) == 0o600
    assert key.is_private
    assert key.curve_name == "P-256"
    assert load_or_create_token_key(tmp_path).kid == key.kid


def test_token_key_concurrent_first_start_agrees(tmp_path: Path) -> None:
    kids: list[str | None] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        kids.append(load_or_create_token_key(tmp_path).kid)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(kids) == 8
    assert len(set(kids)) == 1
    assert not list((tmp_path / "keys").glob(".*.tmp"))
