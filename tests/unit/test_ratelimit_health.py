"""Per-endpoint rate limiting and a push stream's delivery health (research/delivery.md §3, §9).

Over the rate a SET waits, it is never dropped. A stream is paused (SSF ``paused``: events
held, not lost) only after SETs have exhausted their retry schedule (R-PUSH-8) and no
delivery has succeeded for a whole window; any success resets that.
"""

from __future__ import annotations

import json

import pytest

from hub.core.health import DeliveryHealth, after_failure, after_success, should_pause
from hub.core.ratelimit import TokenBucket

# --- TokenBucket ---------------------------------------------------------------------------------


def test_a_full_bucket_grants_a_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket.full(rate=10, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.1)


def test_a_refused_take_deducts_nothing() -> None:
    bucket = TokenBucket.full(rate=2, burst=1, now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.0) == pytest.approx(0.5)  # asking again did not dig a deeper hole
    assert bucket.take(0.5) == 0.0


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    bucket = TokenBucket.full(rate=10, burst=5, now=0.0)
    for _ in range(5):
        bucket.take(0.0)
    assert bucket.take(0.25) == 0.0  # 2.5 tokens came back
    assert bucket.tokens == pytest.approx(1.5)
    bucket.take(3600.0)
    assert bucket.tokens == pytest.approx(4.0)  # capped at the burst of 5, minus one taken


def test_taking_several_tokens_at_once() -> None:
    bucket = TokenBucket.full(rate=4, burst=4, now=0.0)
    assert bucket.take(0.0, n=3) == 0.0
    assert bucket.take(0.0, n=3) == pytest.approx(0.5)


def test_a_rate_of_zero_or_less_means_no_limit() -> None:
    for rate in (0.0, -1.0):
        bucket = TokenBucket.full(rate=rate, burst=0, now=0.0)
        assert all(bucket.take(0.0) == 0.0 for _ in range(10_000))


def test_a_clock_stepping_back_adds_no_tokens() -> None:
    bucket = TokenBucket.full(rate=1, burst=1, now=100.0)
    assert bucket.take(100.0) == 0.0
    assert bucket.take(50.0) == pytest.approx(1.0)
    assert bucket.updated == 100.0
    assert bucket.take(101.0) == 0.0


def test_asking_for_more_than_the_burst_is_an_error_not_an_endless_wait() -> None:
    bucket = TokenBucket.full(rate=10, burst=2, now=0.0)
    with pytest.raises(ValueError, match="at most 2"):
        bucket.take(0.0, n=3)


# --- DeliveryHealth ------------------------------------------------------------------------------

FAILING = DeliveryHealth(
    last_success_at=10.0,
    last_error="503 from receiver",
    last_error_at=20.0,
    failing_since=15.0,
    auth_failing=True,
    consecutive_failures=7,
)


def test_a_new_stream_is_healthy() -> None:
    h = DeliveryHealth()
    assert (h.failing_since, h.auth_failing, h.consecutive_failures) == (None, False, 0)
    assert should_pause(h, now=10**9, window=0) is False


@pytest.mark.parametrize("health", [DeliveryHealth(), FAILING])
def test_the_record_survives_json(health: DeliveryHealth) -> None:
    record = json.loads(json.dumps(health.to_record()))
    assert DeliveryHealth.from_record(record) == health


def test_from_record_fills_missing_keys_and_ignores_unknown_ones() -> None:
    assert DeliveryHealth.from_record({"consecutive_failures": 2, "added_later": 1}) == DeliveryHealth(
        consecutive_failures=2
    )
    assert DeliveryHealth.from_record({"last_success_at": 5}).last_success_at == 5.0


@pytest.mark.parametrize(
    "record",
    [
        {"last_success_at": "yesterday"},
        {"failing_since": True},
        {"last_error": 503},
        {"auth_failing": "no"},
        {"consecutive_failures": -1},
        {"consecutive_failures": 1.5},
    ],
)
def test_from_record_refuses_wrong_types(record: dict) -> None:
    key = next(iter(record))
    with pytest.raises(ValueError, match=key):
        DeliveryHealth.from_record(record)


def test_a_success_clears_the_failing_spell() -> None:
    h = after_success(FAILING, now=30.0)
    assert h == DeliveryHealth(
        last_success_at=30.0, last_error="503 from receiver", last_error_at=20.0
    )  # the last error stays visible for the operator


def test_a_failure_counts_and_records_the_error() -> None:
    h = after_failure(DeliveryHealth(), now=5.0, error="timeout", auth=False, exhausted=False)
    assert h == DeliveryHealth(last_error="timeout", last_error_at=5.0, consecutive_failures=1)
    h = after_failure(h, now=6.0, error="503", auth=False, exhausted=False)
    assert (h.consecutive_failures, h.last_error, h.last_error_at) == (2, "503", 6.0)


def test_an_auth_failure_flags_the_credentials_until_a_success() -> None:
    h = after_failure(DeliveryHealth(), now=1.0, error="401", auth=True, exhausted=False)
    assert h.auth_failing is True
    h = after_failure(h, now=2.0, error="503", auth=False, exhausted=False)
    assert h.auth_failing is True
    assert after_success(h, now=3.0).auth_failing is False


def test_the_pause_clock_starts_only_when_a_set_exhausts_its_schedule() -> None:
    h = after_failure(DeliveryHealth(), now=1.0, error="503", auth=False, exhausted=False)
    assert h.failing_since is None
    h = after_failure(h, now=100.0, error="503", auth=False, exhausted=True)
    assert h.failing_since == 100.0
    h = after_failure(h, now=200.0, error="503", auth=False, exhausted=True)
    assert h.failing_since == 100.0  # not restarted by later exhausted SETs


def test_the_stream_pauses_once_the_window_has_passed() -> None:
    h = DeliveryHealth(failing_since=1000.0)
    assert should_pause(h, now=1000.0 + 86_399, window=86_400) is False
    assert should_pause(h, now=1000.0 + 86_400, window=86_400) is True
    assert should_pause(h, now=1000.0, window=0) is True


def test_a_success_inside_the_window_prevents_the_pause() -> None:
    h = after_failure(DeliveryHealth(), now=0.0, error="503", auth=False, exhausted=True)
    h = after_success(h, now=50.0)
    assert should_pause(h, now=10**6, window=100) is False
