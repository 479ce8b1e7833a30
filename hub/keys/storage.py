"""Where the hub's own keys persist: files in the data dir, or documents in a shared store.

With SQLite (one hub process) the signing ring and the token key stay in
``<data_dir>/keys/`` (:mod:`hub.keys.ring`). With Redis, every replica must sign with the same
ring and accept the same tokens, so both live in the store as documents:

* the first replica to start creates them with a compare-and-set, so two replicas
  starting at once end up with one ring and one token key, whichever wrote first;
* a rotation reads the current ring, rotates it and writes it back only if nobody changed
  it meanwhile (else it starts over from the newer ring);
* every replica re-reads the ring every :data:`RING_RELOAD_SECONDS`, so a rotation done
  by one replica is picked up by the others in seconds, far within the overlap period in
  which the replaced key stays published.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from joserfc.jwk import ECKey

from hub.errors import ConfigError, Unavailable
from hub.keys import ring as keyfiles
from hub.keys.secrets import SecretBox, load_or_create_secret_box

RING_DOCUMENT = "signing"
TOKEN_KEY_DOCUMENT = "access-token"
SECRETS_DOCUMENT = "secrets"
RING_RELOAD_SECONDS = 10.0
CAS_ATTEMPTS = 10  # concurrent rotations are rare; ten lost races in a row means trouble

RingEdit = Callable[[keyfiles.SigningKeyRing], bool]


@runtime_checkable
class KeyDocuments(Protocol):
    """A store that can keep small documents shared by replicas (the Redis store)."""

    async def get_key_document(self, name: str) -> str | None: ...

    async def put_key_document(self, name: str, document: str, *, expected: str | None) -> bool:
        """Write ``document`` only if the stored one is still ``expected`` (None: absent)."""
        ...


class KeyStorage(Protocol):
    shared: bool  # True when several replicas use it (then the ring is reloaded periodically)

    async def load_ring(self, alg: str, now: float) -> keyfiles.SigningKeyRing:
        """The ring (made on first start); rotated when ``alg`` changed since the last run."""
        ...

    async def change_ring(self, ring: keyfiles.SigningKeyRing, edit: RingEdit) -> bool:
        """Apply ``edit`` (True if it changed the ring) and persist; ``ring`` ends up current."""
        ...

    async def reload_ring(self, ring: keyfiles.SigningKeyRing) -> bool:
        """Take a newer stored ring into ``ring``; True if there was one."""
        ...

    async def token_key(self) -> ECKey:
        """The local token issuer's key (made on first use)."""
        ...

    async def secret_box(self) -> SecretBox:
        """The key that seals receivers' credentials at rest (made on first use)."""
        ...


class FileKeyStorage:
    """The key files under ``<data_dir>/keys/``.

    ``shared``: several hub processes use the files (``serve --processes``); each re-reads the
    ring file every :data:`RING_RELOAD_SECONDS` to take a rotation another one made."""

    def __init__(self, data_dir: Path, *, shared: bool = False) -> None:
        self.data_dir = data_dir
        self.shared = shared
        self._file = keyfiles.KeyFile(data_dir)
        self._seen: bytes | None = None  # the ring file this process last read or wrote

    async def load_ring(self, alg: str, now: float) -> keyfiles.SigningKeyRing:
        ring = await asyncio.to_thread(keyfiles.load_or_create_signing_keys, self.data_dir, alg, now)
        self._seen = keyfiles.encode_ring(ring)
        return ring

    async def change_ring(self, ring: keyfiles.SigningKeyRing, edit: RingEdit) -> bool:
        if self.shared:
            await self.reload_ring(ring)  # edit the newest ring, not a stale copy
        changed = edit(ring)
        if changed:
            await asyncio.to_thread(keyfiles.save_signing_keys, self.data_dir, ring)
            self._seen = keyfiles.encode_ring(ring)
        return changed

    async def reload_ring(self, ring: keyfiles.SigningKeyRing) -> bool:
        if not self.shared:
            return False  # this process is the only writer
        current = await asyncio.to_thread(self._file.path.read_bytes)
        if current == self._seen:
            return False
        ring.adopt(keyfiles.decode_ring(json.loads(current), self._file.path))
        self._seen = current
        return True

    async def token_key(self) -> ECKey:
        return await asyncio.to_thread(keyfiles.load_or_create_token_key, self.data_dir)

    async def secret_box(self) -> SecretBox:
        return await asyncio.to_thread(load_or_create_secret_box, self.data_dir)


class SharedKeyStorage:
    """The keys as documents in a store every replica shares."""

    shared = True

    def __init__(self, documents: KeyDocuments, *, overlap: float = keyfiles.DEFAULT_OVERLAP) -> None:
        self.documents = documents
        self.overlap = overlap
        self._seen: str | None = None  # the stored ring this process last took

    @staticmethod
    def _decode(document: str) -> keyfiles.SigningKeyRing:
        return keyfiles.decode_ring(json.loads(document), f"(store document {RING_DOCUMENT!r})")

    async def load_ring(self, alg: str, now: float) -> keyfiles.SigningKeyRing:
        if alg not in keyfiles.SIGNING_ALGS:
            raise ConfigError(f"signing algorithm {alg!r} is not one of {', '.join(keyfiles.SIGNING_ALGS)}")

        def upgrade(ring: keyfiles.SigningKeyRing) -> bool:
            changed = ring.prune(now)
            if ring.active.alg != alg:
                ring.rotate(now, self.overlap, alg=alg)
                changed = True
            return changed

        for _ in range(CAS_ATTEMPTS):
            current = await self.documents.get_key_document(RING_DOCUMENT)
            if current is None:
                ring = await asyncio.to_thread(keyfiles.SigningKeyRing.generate, alg, now)
            else:
                ring = self._decode(current)
                if not await asyncio.to_thread(upgrade, ring):
                    self._seen = current
                    return ring
            if await self._store(ring, expected=current):
                return ring
        raise Unavailable("the signing key ring changed too often to load it; try again")

    async def change_ring(self, ring: keyfiles.SigningKeyRing, edit: RingEdit) -> bool:
        for _ in range(CAS_ATTEMPTS):
            current = await self.documents.get_key_document(RING_DOCUMENT)
            # Edit the newest stored ring (another replica may have rotated it), not ours.
            working = keyfiles.SigningKeyRing(list(ring.keys)) if current is None else self._decode(current)
            changed = await asyncio.to_thread(edit, working)
            if not changed:
                ring.adopt(working)
                self._seen = current
                return False
            if await self._store(working, expected=current):
                ring.adopt(working)
                return True
        raise Unavailable("the signing key ring changed too often to update it; try again")

    async def _store(self, ring: keyfiles.SigningKeyRing, *, expected: str | None) -> bool:
        document = keyfiles.encode_ring(ring).decode()
        stored = await self.documents.put_key_document(RING_DOCUMENT, document, expected=expected)
        if stored:
            self._seen = document
        return stored

    async def reload_ring(self, ring: keyfiles.SigningKeyRing) -> bool:
        current = await self.documents.get_key_document(RING_DOCUMENT)
        if current is None or current == self._seen:
            return False
        ring.adopt(self._decode(current))
        self._seen = current
        return True

    async def token_key(self) -> ECKey:
        source = f"(store document {TOKEN_KEY_DOCUMENT!r})"
        current = await self.documents.get_key_document(TOKEN_KEY_DOCUMENT)
        if current is None:
            key = await asyncio.to_thread(keyfiles.generate_token_key)
            document = json.dumps(key.as_dict(private=True))
            if await self.documents.put_key_document(TOKEN_KEY_DOCUMENT, document, expected=None):
                return key
            current = await self.documents.get_key_document(TOKEN_KEY_DOCUMENT)  # another won
            if current is None:
                raise Unavailable("the token key vanished from the store while it was being created")
        return keyfiles.import_token_key(json.loads(current), source)

    async def secret_box(self) -> SecretBox:
        current = await self.documents.get_key_document(SECRETS_DOCUMENT)
        if current is None:
            fresh = SecretBox.generate()
            if await self.documents.put_key_document(SECRETS_DOCUMENT, fresh.to_document(), expected=None):
                return fresh
            current = await self.documents.get_key_document(SECRETS_DOCUMENT)  # another replica won
            if current is None:
                raise Unavailable("the secrets key vanished from the store while it was being created")
        return SecretBox.from_document(json.loads(current), f"(store document {SECRETS_DOCUMENT!r})")


def key_storage_for(store: object, data_dir: Path, *, sibling_processes: bool = False) -> KeyStorage:
    """Shared documents when the store keeps them (Redis), else the data dir's files (re-read
    when ``sibling_processes`` use them too)."""
    if isinstance(store, KeyDocuments):
        return SharedKeyStorage(store)
    return FileKeyStorage(data_dir, shared=sibling_processes)
