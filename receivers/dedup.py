"""De-duplication of SETs by (``iss``, ``jti``) with a bounded, time-limited memory (R-SET-2, R-SEC-3).

Delivery is at least once: a push is retried when the ``202`` got lost, a poll redelivers what
was not acknowledged. The receiver acknowledges a repeat again (a transmitter must get its
``202``/``ack`` every time) but acts only once.

Memory is bounded twice: an entry is forgotten ``ttl`` seconds after it was first seen, and
beyond ``max_entries`` the oldest entries go first. :meth:`Deduplicator.horizon` says from
when on every SET seen is still remembered; :class:`~receivers.receiver.Receiver` refuses a SET
issued before it (and :class:`~receivers.verify.SetVerifier` one older than its ``max_age``,
by default this ``ttl``), so a SET is never forgotten and then acted on again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["Deduplicator"]


class Deduplicator:
    """Remembers (``iss``, ``jti``) pairs for ``ttl`` seconds, at most ``max_entries`` of them."""

    def __init__(
        self,
        *,
        ttl: float = 7 * 24 * 3600.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # oldest first
        self._evicted_through = float("-inf")  # first-seen time of the newest entry evicted early

    def __len__(self) -> int:
        self._expire()
        return len(self._seen)

    def seen(self, iss: str, jti: str) -> bool:
        """Whether (``iss``, ``jti``) was remembered and has not expired."""
        self._expire()
        return (iss, jti) in self._seen

    def remember(self, iss: str, jti: str) -> None:
        """Remember a SET that is being processed; a repeat keeps its first time."""
        self._expire()
        key = (iss, jti)
        if key in self._seen:
            return
        self._seen[key] = self.clock()
        while len(self._seen) > self.max_entries:
            _, first = self._seen.popitem(last=False)
            self._evicted_through = max(self._evicted_through, first)

    def horizon(self) -> float:
        """SETs first seen after this time are all remembered: ``ttl`` ago, or later once
        ``max_entries`` forced entries out before their time."""
        return max(self.clock() - self.ttl, self._evicted_through)

    def check_and_remember(self, iss: str, jti: str) -> bool:
        """True when the SET is new (and now remembered), False for a repeat."""
        if self.seen(iss, jti):
            return False
        self.remember(iss, jti)
        return True

    def _expire(self) -> None:
        horizon = self.clock() - self.ttl
        while self._seen:
            key, first = next(iter(self._seen.items()))
            if first > horizon:
                break
            del self._seen[key]
