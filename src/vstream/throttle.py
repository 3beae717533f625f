"""Bounded-rate repainting: at most ``rate`` UI updates per second per view, final state always.

A view (display handle, widget) is repainted from the stream's snapshot, never per token: the
cost of streaming to the browser depends on the update rate, not on the token rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_RATE = 20.0  # updates per second per stream, the brief's ceiling


class Throttle:
    """Decides when a repaint is due: not before ``1/rate`` seconds since the last one."""

    def __init__(self, rate: float = DEFAULT_RATE, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 updates per second, got {rate!r}")
        self.interval = 1.0 / rate
        self._clock = clock
        self._last: float | None = None
        self.updates = 0

    def due(self) -> bool:
        return self._last is None or self._clock() - self._last >= self.interval

    def wait_time(self) -> float:
        """Seconds until the next repaint may happen (0 when due now)."""
        if self._last is None:
            return 0.0
        return max(0.0, self.interval - (self._clock() - self._last))

    def mark(self, *, borrow: bool = False) -> None:
        """Record that a repaint just happened. ``borrow``: it came before it was due, so the
        next one waits a whole interval more (bursts stay within the rate over any span)."""
        now = self._clock()
        self._last = self._last + self.interval if borrow and self._last is not None else now
        self.updates += 1
