"""How long to wait before reconnecting to a store that stopped answering.

Capped exponential backoff with "equal jitter": the wait doubles per failed attempt up
to ``cap`` and half of it is random, so replicas that lost Redis together do not all
reconnect in the same millisecond, yet none waits longer than ``cap`` once it is back
(research/delivery.md §14: a worker that gave up after a 3 s blip, outpost#881).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReconnectBackoff:
    base: float = 0.1  # seconds before the first retry (before jitter)
    cap: float = 5.0  # never wait longer than this

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"need 0 < base <= cap, got base={self.base!r} cap={self.cap!r}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before reconnect attempt ``attempt`` (0 for the first retry)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt, 32))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)
