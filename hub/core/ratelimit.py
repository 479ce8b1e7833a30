"""A token bucket per push endpoint (research/delivery.md §9 and "adopt" item 8).

Over the rate, a SET waits rather than fails: the caller gets the seconds to wait and
tries again then (Convoy and Hookdeck also queue, never drop). Time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float  # tokens added per second; <= 0 means no limit
    burst: float  # the most tokens the bucket holds
    tokens: float
    updated: float  # when ``tokens`` was last brought up to date

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate=rate, burst=burst, tokens=burst, updated=now)

    def take(self, now: float, n: float = 1.0) -> float:
        """Take ``n`` tokens: 0.0 if granted (and deducted), else the seconds until ``n``
        tokens will be there (nothing deducted, so a waiter does not starve others)."""
        if self.rate <= 0:
            return 0.0
        if n > self.burst:
            # It could never be granted; a caller looping on the wait would spin forever.
            raise ValueError(f"cannot take {n} tokens from a bucket that holds at most {self.burst}")
        if now > self.updated:
            # A clock that steps backwards adds nothing and does not move ``updated`` back.
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate
