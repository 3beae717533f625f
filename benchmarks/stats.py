"""Medians, percentiles and a distribution-free 95 % interval for a median."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: Iterable[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else None


def median_interval(values: Iterable[float | None], confidence: float = 0.95) -> tuple[float, float] | None:
    """The order statistics x(k) and x(n+1-k) with the largest k whose binomial coverage is at
    least ``confidence``: no assumption about the shape of the host's noise (the pairs seen on
    shared GPU hosts have long tails both ways). None for too few values (under 6 at 95 %)."""
    data = sorted(v for v in values if v is not None)
    n, best = len(data), None
    for k in range(1, n // 2 + 1):
        tail = sum(math.comb(n, i) for i in range(k)) / 2**n  # P(Binomial(n, 1/2) <= k - 1)
        if 1 - 2 * tail < confidence:
            break
        best = k
    return None if best is None else (data[best - 1], data[n - best])
