"""SETs per minute in and out of this process, from the counters behind ``/metrics``."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from prometheus_client import Counter

from hub import metrics

WINDOW = 300.0  # seconds of samples kept; the rate is over what the window holds


def counter_total(counter: Counter) -> float:
    return sum(s.value for family in counter.collect() for s in family.samples if s.name.endswith("_total"))


class RateMeter:
    """Samples the issued and delivered counters when asked; the rate is per minute over the
    samples kept (a fresh console shows 0 until a second sample, a few seconds later)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.samples: deque[tuple[float, float, float]] = deque()

    def per_minute(self) -> tuple[float, float]:
        now = self.clock()
        self.samples.append((now, counter_total(metrics.SETS_ISSUED), counter_total(metrics.SETS_DELIVERED)))
        while self.samples and now - self.samples[0][0] > WINDOW:
            self.samples.popleft()
        first, last = self.samples[0], self.samples[-1]
        span = last[0] - first[0]
        if span <= 0:
            return 0.0, 0.0
        return (last[1] - first[1]) * 60 / span, (last[2] - first[2]) * 60 / span
