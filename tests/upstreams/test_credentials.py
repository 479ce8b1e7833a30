"""The client-assertion key comes from a file the operator points at: PEM or JWK, private only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from hub.upstreams.credentials import KeyFileError, assertion_algorithm, load_client_key


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (RSAKey.generate_key(2048), "RS256"),
        (ECKey.generate_key("P-256"), "ES256"),
        (ECKey.generate_key("P-384"), "ES384"),
        (OKPKey.generate_key("Ed25519"), "EdDSA"),
    ],
)
def test_a_private_key_loads_from_pem_or_jwk_and_names_its_algorithm(
    tmp_path: Path, key: Key, alg: str
) -> None:
    pem, jwk = tmp_path / "key.pem", tmp_path / "key.json"
    pem.write_bytes(key.as_pem(private=True))  # type: ignore[union-attr]
    jwk.write_text(json.dumps(key.as_dict(private=True)))
    for path in (pem, jwk):
        loaded = load_client_key(str(path))
        assert loaded.thumbprint() == key.thumbprint() and assertion_algorithm(loaded) == alg


def test_a_public_key_or_garbage_is_refused(tmp_path: Path) -> None:
    public = tmp_path / "public.pem"
    public.write_bytes(ECKey.generate_key("P-256").as_pem(private=False))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    for path in (public, garbage):
        with pytest.raises(KeyFileError, match="private key"):
            load_client_key(str(path))
    with pytest.raises(KeyFileError, match="cannot read"):
        load_client_key(str(tmp_path / "missing.pem"))
