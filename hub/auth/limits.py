"""Per-client request budgets, so one receiver cannot monopolise subject management.

R-SUBJ-3 lets a transmitter answer ``429`` to add/remove-subject calls; a receiver that
registers subjects in a tight loop gets told when to come back instead of slowing routing
for everyone. One token bucket per (budget, owner); the table is bounded, and a client
evicted from it simply starts again with a full bucket.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from hub.core.ratelimit import TokenBucket
from hub.errors import TooManyRequests


class ClientLimits:
    def __init__(
        self, *, rate: float, burst: float, clock: Callable[[], float], max_clients: int = 10_000
    ) -> None:
        self._rate = rate
        self._burst = max(burst, 1.0)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def spend(self, client: str) -> None:
        """Take one request from ``client``'s budget, or raise ``TooManyRequests``."""
        if self._rate <= 0:
            return
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket.full(self._rate, self._burst, now)
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(client)
        wait = bucket.take(now)
        if wait > 0:
            raise TooManyRequests(
                "too many subject changes; retry later", retry_after=max(1, math.ceil(wait))
            )
