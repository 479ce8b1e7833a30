"""The push retry schedule and Retry-After (R-PUSH-7, R-PUSH-8; research/delivery.md §1).

RFC 8935 leaves retries to the transmitter. The hub retries on a front-loaded schedule
with ±20 % jitter, never drops a SET once the schedule is used up, and lets a receiver's
Retry-After lengthen (never shorten) a wait, within a cap.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.retry import DEFAULT_SCHEDULE, RetrySchedule, parse_retry_after


class FakeRandom(random.Random):
    """Returns one end of the requested range and records what was asked."""

    def __init__(self, end: str) -> None:
        super().__init__(0)
        self.end = end
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a if self.end == "low" else b


NO_JITTER = RetrySchedule(jitter=0.0)


# --- the default schedule ------------------------------------------------------------------------


def test_the_first_attempt_is_immediate_and_the_next_ones_come_within_minutes() -> None:
    # Revocations are the point of the hub: the first retries are seconds apart, not minutes.
    assert DEFAULT_SCHEDULE[0] == 0
    assert DEFAULT_SCHEDULE[1:5] == (1, 5, 30, 120)
    assert sum(DEFAULT_SCHEDULE[:5]) < 3 * 60


def test_the_default_schedule_spans_about_a_day_and_never_shrinks() -> None:
    assert RetrySchedule().horizon == sum(DEFAULT_SCHEDULE) == 85_356
    assert list(DEFAULT_SCHEDULE) == sorted(DEFAULT_SCHEDULE)
    assert RetrySchedule().delays == DEFAULT_SCHEDULE
    assert RetrySchedule().jitter == 0.2


def test_horizon_is_the_sum_of_the_delays() -> None:
    assert RetrySchedule((0, 1.5, 10)).horizon == 11.5


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delays": ()}, "at least one delay"),
        ({"delays": (0, -1)}, "delay 2"),
        ({"delays": (0, math.nan)}, "delay 2"),
        ({"delays": (0, math.inf)}, "delay 2"),
        ({"jitter": 1.0}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": math.nan}, "jitter"),
        ({"max_retry_after": -1.0}, "max_retry_after"),
    ],
)
def test_a_bad_schedule_is_refused_with_a_message_naming_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetrySchedule(**kwargs)


def test_parse_reads_comma_separated_seconds() -> None:
    schedule = RetrySchedule.parse(" 0, 1,5 ,30, 0.5")
    assert schedule.delays == (0.0, 1.0, 5.0, 30.0, 0.5)
    assert schedule.jitter == 0.2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,1,soon,5", r"item 3 \('soon'\)"),
        ("0,,5", r"item 2 \(''\)"),
        ("0,1,", r"item 3 \(''\)"),
        ("0,-5", r"item 2 \('-5'\)"),
        ("0,inf", r"item 2 \('inf'\)"),
        ("nan", r"item 1 \('nan'\)"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_parse_names_the_bad_item(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetrySchedule.parse(text)


# --- next_delay ----------------------------------------------------------------------------------


def test_after_n_failures_the_wait_is_the_delay_before_attempt_n_plus_1() -> None:
    schedule = RetrySchedule((0, 1, 5, 30), jitter=0.0)
    rng = random.Random(1)
    assert schedule.next_delay(1, rng) == (1, False)
    assert schedule.next_delay(2, rng) == (5, False)
    assert schedule.next_delay(3, rng) == (30, False)


def test_an_exhausted_schedule_keeps_retrying_at_the_last_delay() -> None:
    # Nothing is dropped: the stream is paused later by the health rules instead (hub.core.health).
    schedule = RetrySchedule((0, 1, 5, 30), jitter=0.0)
    rng = random.Random(1)
    assert schedule.next_delay(4, rng) == (30, True)
    assert schedule.next_delay(500, rng) == (30, True)


def test_a_one_entry_schedule_is_exhausted_after_the_first_failure() -> None:
    assert RetrySchedule((7,), jitter=0.0).next_delay(1, random.Random(1)) == (7, True)


def test_failed_attempts_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="failed_attempts"):
        NO_JITTER.next_delay(0, random.Random(1))


def test_jitter_reaches_both_ends_of_plus_or_minus_20_percent() -> None:
    schedule = RetrySchedule((0, 100), jitter=0.2)
    low, high = FakeRandom("low"), FakeRandom("high")
    assert schedule.next_delay(1, low) == (80, False)
    assert schedule.next_delay(1, high) == (120, False)
    assert low.calls == [(-20, 20)]


def test_a_zero_delay_stays_zero_without_asking_the_rng() -> None:
    rng = FakeRandom("high")
    assert RetrySchedule((0, 0, 5)).next_delay(1, rng) == (0, False)
    assert rng.calls == []


@settings(database=None, max_examples=300)
@given(
    failed=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32),
    jitter=st.floats(min_value=0, max_value=0.99),
)
def test_jitter_always_stays_within_bounds(failed: int, seed: int, jitter: float) -> None:
    schedule = RetrySchedule(jitter=jitter)
    scheduled = DEFAULT_SCHEDULE[min(failed, len(DEFAULT_SCHEDULE) - 1)]
    delay, exhausted = schedule.next_delay(failed, random.Random(seed))
    assert scheduled * (1 - jitter) - 1e-9 <= delay <= scheduled * (1 + jitter) + 1e-9
    assert delay >= 0
    assert exhausted == (failed >= len(DEFAULT_SCHEDULE))


def test_the_same_seed_gives_the_same_delays() -> None:
    # Randomness is injected, so a test (or a replay) can reproduce a run exactly.
    first = [RetrySchedule().next_delay(n, random.Random(42))[0] for n in range(1, 13)]
    second = [RetrySchedule().next_delay(n, random.Random(42))[0] for n in range(1, 13)]
    assert first == second


# --- Retry-After (R-PUSH-7) ----------------------------------------------------------------------


def test_retry_after_lengthens_the_wait() -> None:
    assert NO_JITTER.next_delay(1, random.Random(1), retry_after=90) == (90, False)


def test_retry_after_never_shortens_the_wait() -> None:
    # A receiver saying "Retry-After: 0" must not make us retry faster than the schedule.
    assert NO_JITTER.next_delay(3, random.Random(1), retry_after=0) == (30, False)
    assert NO_JITTER.next_delay(3, random.Random(1), retry_after=-10) == (30, False)


def test_retry_after_is_capped_at_max_retry_after() -> None:
    schedule = RetrySchedule(jitter=0.0, max_retry_after=600)
    assert schedule.next_delay(1, random.Random(1), retry_after=86_400) == (600, False)
    assert schedule.next_delay(1, random.Random(1), retry_after=math.inf) == (600, False)


def test_the_cap_does_not_shorten_a_long_scheduled_delay() -> None:
    schedule = RetrySchedule(jitter=0.0, max_retry_after=60)
    assert schedule.next_delay(11, random.Random(1), retry_after=7200) == (28_800, False)


def test_a_nan_retry_after_is_ignored() -> None:
    assert NO_JITTER.next_delay(2, random.Random(1), retry_after=math.nan) == (5, False)


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("-3", 0.0),  # negative: no wait
        ("Thu, 01 Jan 2026 12:02:00 GMT", 120.0),  # IMF-fixdate
        ("Thursday, 01-Jan-26 12:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Thu Jan  1 12:01:00 2026", 60.0),  # obsolete asctime form, no zone: UTC
        ("Wed, 31 Dec 2025 12:00:00 GMT", 0.0),  # in the past: no wait
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize("value", [None, "", "soon", "1.5", "1e3", "²", "12 apples", "Thu, 99 Foo 2026"])
def test_parse_retry_after_ignores_what_it_cannot_read(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_parse_retry_after_round_trips_a_formatted_date() -> None:
    when = datetime(2026, 1, 1, 13, 0, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == 3600.0


def test_an_absurd_retry_after_stays_finite() -> None:
    value = parse_retry_after("9" * 5000, NOW)
    assert value is not None
    assert math.isfinite(value)
    assert value > 10**9


@settings(database=None, max_examples=300)
@given(st.text(max_size=60))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or (math.isfinite(result) and result >= 0)
