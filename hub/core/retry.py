"""When to try a push again (R-PUSH-8; research/delivery.md §1 and "What an SSF hub should adopt").

RFC 8935 leaves the retry policy to the transmitter. The schedule is data: ``delays[i]``
is the wait before attempt ``i + 1``, each drawn with ±``jitter`` so that many streams
failing together do not retry in lock-step. Time and randomness are arguments; nothing
here reads a clock or owns a random generator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

# Front-loaded on purpose: these are mostly revocations (session-revoked, credential-change),
# and every minute a revocation waits is a minute a stolen session keeps working. Svix's
# first retry is at 5 s then 5 min; we try at 1 s, 5 s, 30 s and 2 min before backing off
# to hours. The last delay repeats once the schedule is exhausted, so nothing is dropped.
DEFAULT_SCHEDULE: tuple[float, ...] = (0, 1, 5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)

# A Retry-After this large is already far beyond any cap; bounding it keeps the result finite.
_RETRY_AFTER_CEILING = 1e12


def _check_delay(value: float, what: str) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {value!r}")


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.2
    max_retry_after: float = 3600.0

    def __post_init__(self) -> None:
        if not self.delays:
            raise ValueError("the retry schedule needs at least one delay")
        for i, delay in enumerate(self.delays, start=1):
            _check_delay(delay, f"retry schedule delay {i}")
        if not (0 <= self.jitter < 1):  # also rejects NaN
            raise ValueError(f"retry jitter must be in [0, 1), got {self.jitter!r}")
        _check_delay(self.max_retry_after, "max_retry_after")

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        """A schedule from comma-separated seconds, e.g. ``"0,1,5,30"`` (a setting's value)."""
        if not text.strip():
            raise ValueError("the retry schedule is empty; give comma-separated seconds such as 0,1,5,30")
        delays: list[float] = []
        for i, raw in enumerate(text.split(","), start=1):
            item = raw.strip()
            try:
                value = float(item)
            except ValueError:
                raise ValueError(f"retry schedule item {i} ({item!r}) is not a number of seconds") from None
            _check_delay(value, f"retry schedule item {i} ({item!r})")
            delays.append(value)
        return cls(tuple(delays))

    @property
    def horizon(self) -> float:
        """Seconds from the first attempt to the last scheduled one (jitter aside)."""
        return float(sum(self.delays))

    def next_delay(
        self, failed_attempts: int, rng: random.Random, *, retry_after: float | None = None
    ) -> tuple[float, bool]:
        """The wait before the next attempt after ``failed_attempts`` failures, and whether
        the schedule is exhausted (every scheduled attempt has been made and failed).

        Exhausted deliveries keep retrying at the last delay: the caller decides when a
        stream has failed long enough to pause (see :mod:`hub.core.health`).
        A receiver's Retry-After can lengthen the wait, up to ``max_retry_after``, but never
        shortens it: a receiver cannot make us hammer it faster than the schedule.
        """
        if failed_attempts < 1:
            raise ValueError(f"failed_attempts must be >= 1, got {failed_attempts}")
        exhausted = failed_attempts >= len(self.delays)
        scheduled = self.delays[min(failed_attempts, len(self.delays) - 1)]
        spread = self.jitter * scheduled
        delay = max(0.0, scheduled + rng.uniform(-spread, spread)) if spread else float(scheduled)
        if retry_after is not None and not math.isnan(retry_after):
            delay = max(delay, min(max(retry_after, 0.0), self.max_retry_after))
        return delay, exhausted


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from an RFC 9110 §10.2.3 Retry-After value, or None if absent/unusable.

    Accepts delta-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime form) relative to
    ``now`` (Unix seconds). A date in the past or a negative number means "no wait" (0.0).
    """
    if value is None:
        return None
    text = value.strip()
    digits = text[1:] if text.startswith("-") else text
    # isascii(): str.isdigit() also accepts characters such as "²" that float() rejects.
    if digits and digits.isascii() and digits.isdigit():
        return 0.0 if text.startswith("-") else min(float(digits), _RETRY_AFTER_CEILING)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # HTTP-dates are always UTC; a naive datetime would otherwise be read as local time.
        when = when.replace(tzinfo=UTC)
    try:
        return max(0.0, min(when.timestamp() - now, _RETRY_AFTER_CEILING))
    except (OverflowError, ValueError, OSError):
        return None
