"""How many requests were in the engine at once: the evidence that streams ran together.

The streams' own first-token times cannot show it. When the test process falls behind on a
loaded machine, vLLM merges a stream's pending deltas, and a whole short answer can arrive as its
first delta, after another stream has already finished (CI saw it once with eight panels).
"""

from __future__ import annotations

import threading
from typing import Any


class InFlight:
    """``with InFlight(host) as seen: ...`` samples the host's running streams every 5 ms on a
    thread while the block runs; ``seen.peak`` is the most it saw at once."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="in-flight-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, len(self.host.running_streams()))

    def __enter__(self) -> InFlight:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
