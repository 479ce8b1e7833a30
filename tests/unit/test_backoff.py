"""Reconnect backoff: doubles per failure, never exceeds the cap, half of it jittered."""

from __future__ import annotations

import random

import pytest

from hub.core.backoff import ReconnectBackoff


def test_the_wait_doubles_until_the_cap_and_stays_there() -> None:
    backoff = ReconnectBackoff(base=0.1, cap=5.0)
    rng = random.Random(7)
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    for attempt, ceiling in enumerate(ceilings):
        for _ in range(50):
            assert ceiling / 2 <= backoff.delay(attempt, rng) <= ceiling
    assert backoff.delay(10_000, rng) <= 5.0  # a very long outage does not overflow


def test_replicas_that_failed_together_do_not_retry_together() -> None:
    backoff = ReconnectBackoff()
    waits = {round(backoff.delay(5, random.Random(seed)), 6) for seed in range(20)}
    assert len(waits) == 20


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_a_nonsense_backoff_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base"):
        ReconnectBackoff(base=base, cap=cap)
