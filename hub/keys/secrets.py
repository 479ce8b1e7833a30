"""Secrets at rest: what receivers and upstreams entrust to the hub, encrypted in the store.

A push stream's ``authorization_header`` and an upstream's static bearer token are sealed with
a 256-bit key kept beside the signing keys (``keys/secrets.json`` on SQLite, a key document in
Redis), as compact JWE (``dir`` + ``A256GCM``, joserfc). A stolen ``hub.sqlite3`` or Redis dump
without the key shows ``sealed:...`` instead of the credentials. A value written before sealing
existed reads as it is and is sealed at its next write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from hub.errors import ConfigError
from hub.keys import ring as keyfiles

PREFIX = "sealed:"
_HEADER = {"alg": "dir", "enc": "A256GCM"}
SECRETS_FILE = "secrets.json"


class SecretBox:
    def __init__(self, key: OctKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SecretBox:
        return cls(OctKey.generate_key(256))

    def to_document(self) -> str:
        return json.dumps(self._key.as_dict(private=True))

    @classmethod
    def from_document(cls, document: Any, source: object) -> SecretBox:
        try:
            key = OctKey.import_key(document)
        except (JoseError, ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: not a secrets key: {exc}") from None
        return cls(key)

    def seal(self, value: str) -> str:
        return PREFIX + jwe.encrypt_compact(_HEADER, value.encode(), self._key)

    def open(self, value: str) -> str:
        if not value.startswith(PREFIX):
            return value  # written before sealing: sealed at its next write
        try:
            plaintext = jwe.decrypt_compact(value[len(PREFIX) :], self._key).plaintext
        except (JoseError, ValueError) as exc:
            raise ConfigError(f"a sealed secret does not open with this hub's secrets key: {exc}") from None
        return (plaintext or b"").decode()


def load_or_create_secret_box(data_dir: Path) -> SecretBox:
    """The data dir's secrets key (0600, made on first use, shared with CLI processes)."""
    path = keyfiles.keys_dir(data_dir) / SECRETS_FILE
    if not path.exists():
        box = SecretBox.generate()
        if keyfiles.create_exclusive(path, box.to_document().encode()):
            return box
    return SecretBox.from_document(json.loads(path.read_text(encoding="utf-8")), path)
