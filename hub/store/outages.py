"""Which exceptions mean "the store is unreachable right now", not "the hub has a bug".

The HTTP edge answers them with 503, a JSON error and ``Retry-After``; background work
(push workers, the sweep, timed jobs, the wake-up relay) logs one line and tries again on
its next round, once the store's client has reconnected. Both stores raise
:class:`~hub.errors.Unavailable` themselves; redis-py's own errors are listed too for code
that talks to Redis directly (the wake-up relay) and as a net at the HTTP edge.
"""

from __future__ import annotations

from hub.errors import Unavailable
from hub.store.redis_engine import OUTAGE_ERRORS, RETRY_AFTER

REDIS_OUTAGES: tuple[type[Exception], ...] = OUTAGE_ERRORS
STORE_OUTAGES: tuple[type[Exception], ...] = (Unavailable, *REDIS_OUTAGES)
OUTAGE_RETRY_AFTER = RETRY_AFTER  # seconds a client is told to wait


def is_store_outage(exc: BaseException) -> bool:
    return isinstance(exc, STORE_OUTAGES)


def describe_outage(exc: BaseException) -> str:
    """One line for the log: the exception's type and message, no trace."""
    text = str(exc).strip() or "no detail"
    return f"{type(exc).__name__}: {text[:200]}"
