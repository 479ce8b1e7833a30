"""The hub's own keys, kept as private JWKs under ``<data_dir>/keys/``.

* ``signing.json`` — the ring that signs outgoing SETs. The newest key signs; keys it
  replaced stay in the published JWKS until their overlap ends, so receivers can still
  verify SETs that were signed (and maybe queued) before a rotation.
* ``access-token.json`` — the ES256 key of the local OAuth issuer. ``ssf-hub token`` runs
  as a separate process on the same data dir, so both sides must end up with the same key
  even when they start at the same moment.

Ring logic never reads the clock: callers pass ``now`` so rotation is testable and the
scheduler decides what time it is.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, Key, KeyParameters, OKPKey, RSAKey, import_key

from hub.errors import ConfigError

SIGNING_ALGS = ("RS256", "ES256", "EdDSA")
SET_TYP = "secevent+jwt"
DEFAULT_OVERLAP = 7 * 24 * 3600.0  # long enough for queued SETs to be polled after a rotation
RSA_BITS = 2048  # R-SEC-5 / CAEP interop profile: RSA keys of at least 2048 bits
TOKEN_KEY_ALG = "ES256"
_FILE_VERSION = 1


@contextlib.contextmanager
def eddsa_allowed() -> Iterator[None]:
    """Silence joserfc's RFC 9864 deprecation warning for ``EdDSA`` (we still offer it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        yield


def _generate(alg: str) -> Key:
    params: KeyParameters = {"alg": alg, "use": "sig"}
    key: Key
    if alg == "RS256":
        key = RSAKey.generate_key(RSA_BITS, parameters=params)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", parameters=params)
    elif alg == "EdDSA":
        key = OKPKey.generate_key("Ed25519", parameters=params)
    else:
        raise ConfigError(f"signing algorithm {alg!r} is not one of {', '.join(SIGNING_ALGS)}")
    key.ensure_kid()  # RFC 7638 thumbprint: alg/use are not part of it
    return key


@dataclass
class RingKey:
    key: Key  # private
    alg: str
    created_at: float
    not_after: float | None = None  # None while active; else published until this time

    @property
    def kid(self) -> str:
        kid = self.key.kid
        assert kid is not None  # _generate and _import_ring always set one
        return kid


class SigningKeyRing:
    """The SET signing keys, oldest first; the last one is the active key."""

    def __init__(self, keys: list[RingKey]) -> None:
        if not keys or keys[-1].not_after is not None:
            raise ValueError("a signing key ring needs an active key last")
        self._keys = list(keys)
        self._jwks: dict[str, Any] | None = None
        self._headers: dict[str, bool] = {}  # a SET's JOSE header segment -> signed by a ring key

    @classmethod
    def generate(cls, alg: str, now: float) -> SigningKeyRing:
        return cls([RingKey(_generate(alg), alg, now)])

    @property
    def keys(self) -> tuple[RingKey, ...]:
        return tuple(self._keys)

    @property
    def active(self) -> RingKey:
        return self._keys[-1]

    def jwks(self) -> dict[str, Any]:
        if self._jwks is None:
            self._jwks = {
                "keys": [k.key.as_dict(private=False, kid=k.kid, alg=k.alg, use="sig") for k in self._keys]
            }
        # Callers get their own copy; the cache must not be edited from outside.
        return {"keys": [dict(k) for k in self._jwks["keys"]]}

    def sign(self, claims: dict[str, Any], *, typ: str = SET_TYP) -> str:
        active = self.active
        header = {"alg": active.alg, "typ": typ, "kid": active.kid}
        # jwt.encode rewrites datetime claims in place; the caller's dict stays untouched.
        with eddsa_allowed():
            return jwt.encode(header, dict(claims), active.key, algorithms=[active.alg])

    def signed_by_ring(self, token: str) -> bool:
        """Whether ``token`` (a SET this hub signed) names a key still in the ring: false after
        the key was retired at once (``keys rotate --retire-now``). Cheap: one lookup per
        distinct header, and the hub's headers differ only by key."""
        header = token.partition(".")[0]
        known = self._headers.get(header)
        if known is None:
            try:
                kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))).get("kid")
            except (ValueError, AttributeError):
                kid = None
            known = self._headers[header] = any(k.kid == kid for k in self._keys)
        return known

    def rotate(self, now: float, overlap: float, *, alg: str | None = None) -> None:
        """Make a new active key (of ``alg``, default the current one's); keep the old one published."""
        new_alg = alg or self.active.alg
        new = RingKey(_generate(new_alg), new_alg, now)
        self.active.not_after = now + overlap
        self._keys.append(new)
        self._jwks = None
        self._headers = {}

    def prune(self, now: float) -> bool:
        kept = [k for k in self._keys if k.not_after is None or k.not_after > now]
        changed = len(kept) != len(self._keys)
        if changed:
            self._keys = kept
            self._jwks = None
            self._headers = {}
        return changed

    def needs_rotation(self, now: float, max_age: float) -> bool:
        return now - self.active.created_at >= max_age

    def adopt(self, other: SigningKeyRing) -> None:
        """Take ``other``'s keys in place (a rotation another replica stored), so every
        holder of this ring object signs and publishes with them from now on."""
        self._keys = list(other.keys)
        self._jwks = None
        self._headers = {}


# -- files ------------------------------------------------------------------------------------


def keys_dir(data_dir: Path) -> Path:
    d = Path(data_dir) / "keys"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem allows it
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(path: Path, data: bytes) -> Path:
    """A fully written, fsynced 0600 file next to ``path`` (same filesystem, so rename/link work)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` so a reader (or a crash) sees the old file or the new one, never half."""
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; False when another writer got there first.

    A hard link of a finished temp file is atomic and fails if the name is taken, so a
    concurrent reader never sees a partly written key.
    """
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"key file {path} cannot be read: {exc}") from exc


def _import_private(data: Any, source: Path | str) -> Key:
    """``source`` names where the key came from in error messages (a file, a store key)."""
    try:
        key = import_key(data)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"key file {source} holds an invalid JWK: {exc}") from exc
    if not key.is_private:
        raise ConfigError(f"key file {source} holds a public key; a private key is needed")
    key.ensure_kid()
    return key


def encode_ring(ring: SigningKeyRing) -> bytes:
    """The ring as stored (a file, or a document in a shared store): private JWKs and times."""
    doc = {
        "version": _FILE_VERSION,
        "keys": [
            {
                "jwk": k.key.as_dict(private=True),
                "alg": k.alg,
                "created_at": k.created_at,
                "not_after": k.not_after,
            }
            for k in ring.keys
        ],
    }
    return json.dumps(doc, indent=1).encode()


def decode_ring(doc: Any, source: Path | str) -> SigningKeyRing:
    """The ring from what :func:`encode_ring` wrote; ``source`` names it in errors."""
    try:
        ring_keys = [
            RingKey(
                key=_import_private(e["jwk"], source),
                alg=str(e["alg"]),
                created_at=float(e["created_at"]),
                not_after=None if e.get("not_after") is None else float(e["not_after"]),
            )
            for e in doc["keys"]
        ]
        return SigningKeyRing(ring_keys)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"key file {source} is malformed: {exc}") from exc


def import_token_key(data: Any, source: Path | str) -> ECKey:
    """The local issuer's key from its JWK; it must be a private P-256 EC key."""
    key = _import_private(data, source)
    if not isinstance(key, ECKey) or key.curve_name != "P-256":
        raise ConfigError(f"key file {source} must hold a P-256 EC key")
    return key


def generate_token_key() -> ECKey:
    key = _generate(TOKEN_KEY_ALG)
    assert isinstance(key, ECKey)
    return key


class KeyFile:
    """The signing ring on disk: ``<data_dir>/keys/signing.json``, mode 0600."""

    def __init__(self, data_dir: Path) -> None:
        self.path = keys_dir(data_dir) / "signing.json"

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> SigningKeyRing:
        return decode_ring(_read_json(self.path), self.path)

    def save(self, ring: SigningKeyRing) -> None:
        write_atomic(self.path, encode_ring(ring))

    def create(self, ring: SigningKeyRing) -> bool:
        return create_exclusive(self.path, encode_ring(ring))


def save_signing_keys(data_dir: Path, ring: SigningKeyRing) -> None:
    """Persist the ring after ``rotate``/``prune``."""
    KeyFile(data_dir).save(ring)


def load_or_create_signing_keys(
    data_dir: Path, alg: str, now: float, *, overlap: float = DEFAULT_OVERLAP
) -> SigningKeyRing:
    """The ring from disk (made on first start); rotates when ``alg`` changed since last run."""
    if alg not in SIGNING_ALGS:
        raise ConfigError(f"signing algorithm {alg!r} is not one of {', '.join(SIGNING_ALGS)}")
    kf = KeyFile(data_dir)
    if not kf.exists():
        ring = SigningKeyRing.generate(alg, now)
        if kf.create(ring):
            return ring
        # Another process created it between our check and our link: use theirs.
    ring = kf.load()
    changed = ring.prune(now)
    if ring.active.alg != alg:
        ring.rotate(now, overlap, alg=alg)
        changed = True
    if changed:
        kf.save(ring)
    return ring


def load_or_create_token_key(data_dir: Path) -> ECKey:
    """The local issuer's ES256 key, shared by the hub and ``ssf-hub token`` processes."""
    path = keys_dir(data_dir) / "access-token.json"
    if not path.exists():
        key = generate_token_key()
        if create_exclusive(path, json.dumps(key.as_dict(private=True)).encode()):
            return key
    return import_token_key(_read_json(path), path)
