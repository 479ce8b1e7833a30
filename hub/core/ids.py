"""Identifiers for ``jti`` and ``txn`` that no other SET of any hub replica carries.

RFC 8417 asks only that a ``jti`` be unique for its issuer; it need not be unguessable (a
SET's integrity comes from its signature). A random 64-bit prefix per process and a counter
give 32 hex characters like ``uuid4().hex`` at an eighth of its cost, which shows on an emit
that fans out to many streams.
"""

from __future__ import annotations

import itertools
import secrets


class UniqueIds:
    """``next()`` gives ``<16 hex: this process's random prefix><16 hex: a counter>``."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else secrets.token_hex(8)
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self._counter):016x}"
