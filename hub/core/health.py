"""A push stream's delivery health and when to pause it (research/delivery.md §3, "adopt" item 3).

The pause clock starts only when a SET has used up its whole retry schedule, not at the
first failure: a receiver down for an hour recovers on its own, while one failing for the
whole pause window is gone. Pausing (SSF ``paused``) holds events instead of dropping
them. Time is an argument; the functions return new values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class DeliveryHealth:
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    failing_since: float | None = None  # set when a SET first exhausted its retry schedule
    auth_failing: bool = False  # the receiver is refusing our credentials (401/403 and the like)
    consecutive_failures: int = 0

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict (what the stores keep)."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DeliveryHealth:
        """The inverse of :meth:`to_record`; missing keys take their defaults, unknown ones are
        ignored (records written by older or newer versions), wrong types raise ValueError."""
        return cls(
            last_success_at=_number(record, "last_success_at"),
            last_error=_text(record, "last_error"),
            last_error_at=_number(record, "last_error_at"),
            failing_since=_number(record, "failing_since"),
            auth_failing=_flag(record, "auth_failing"),
            consecutive_failures=_count(record, "consecutive_failures"),
        )


def after_success(h: DeliveryHealth, now: float) -> DeliveryHealth:
    """Any 2xx ends the failing spell, including the pause clock."""
    return replace(h, last_success_at=now, failing_since=None, auth_failing=False, consecutive_failures=0)


def after_failure(
    h: DeliveryHealth, now: float, error: str, *, auth: bool, exhausted: bool
) -> DeliveryHealth:
    """One failed attempt. ``exhausted``: the SET has used up its retry schedule, which
    starts the pause clock if it is not running yet."""
    return replace(
        h,
        last_error=error,
        last_error_at=now,
        auth_failing=h.auth_failing or auth,
        consecutive_failures=h.consecutive_failures + 1,
        failing_since=h.failing_since if h.failing_since is not None or not exhausted else now,
    )


def should_pause(h: DeliveryHealth, now: float, window: float) -> bool:
    """True once deliveries have failed, with no success, for ``window`` seconds since a SET
    exhausted its schedule (``window`` 0: pause as soon as one does)."""
    return h.failing_since is not None and now - h.failing_since >= window


def _number(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"delivery health {key} must be a number, got {value!r}")
    return float(value)


def _text(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"delivery health {key} must be a string, got {value!r}")
    return value


def _flag(record: dict[str, Any], key: str) -> bool:
    value = record.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"delivery health {key} must be true or false, got {value!r}")
    return value


def _count(record: dict[str, Any], key: str) -> int:
    value = record.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"delivery health {key} must be a whole number >= 0, got {value!r}")
    return value
