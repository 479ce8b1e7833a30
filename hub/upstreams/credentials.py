"""Access tokens for talking to an upstream transmitter, from the configured token source.

The client-credentials key is read from its file each time a link connects, so an operator
rotates it by replacing the file; it never enters the store.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey, import_key

from hub.core.upstreams import ClientCredentials, StaticBearer, TokenSourceSpec
from hub.errors import InvalidRequest
from receivers.oauth import ClientCredentials as ClientCredentialsGrant
from receivers.oauth import StaticToken, TokenSource

MAX_KEY_FILE_BYTES = 64 * 1024
_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class KeyFileError(InvalidRequest):
    """The client-assertion key file is missing, unreadable, or not a private key."""


def load_client_key(path: str) -> Key:
    """A private key from a PEM file or a JWK (JSON) file."""
    file = Path(path)
    try:
        data = file.read_bytes()[: MAX_KEY_FILE_BYTES + 1]
    except OSError as exc:
        raise KeyFileError(f"cannot read private key file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"private key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
    key: Key | None = None
    try:
        if data.lstrip().startswith(b"{"):
            key = import_key(json.loads(data))
        else:
            for kty in ("RSA", "EC", "OKP"):
                try:
                    key = import_key(data, kty)
                    break
                except (JoseError, ValueError, TypeError):
                    continue
    except (JoseError, ValueError, TypeError, KeyError):
        key = None
    if key is None or not isinstance(key, RSAKey | ECKey | OKPKey) or not key.is_private:
        raise KeyFileError(f"{path} does not hold an RSA, EC or OKP private key (PEM or JWK)")
    return key


def assertion_algorithm(key: Key) -> str:
    """The JWS algorithm a client assertion signed with ``key`` uses."""
    if isinstance(key, ECKey):
        return _EC_ALGS.get(key.curve_name, "ES256")
    if isinstance(key, OKPKey):
        return "EdDSA"
    return "RS256"


def token_source(spec: TokenSourceSpec, *, http: httpx.AsyncClient) -> TokenSource:
    """A token source for ``spec``; reads the key file (raises :class:`KeyFileError`)."""
    if isinstance(spec, StaticBearer):
        return StaticToken(spec.token)
    assert isinstance(spec, ClientCredentials)
    key = load_client_key(spec.private_key_file)
    return ClientCredentialsGrant(
        spec.token_endpoint,
        spec.client_id,
        http=http,
        private_key=key,
        signing_alg=assertion_algorithm(key),
        scope=spec.scope,
        audience=spec.audience,
    )
