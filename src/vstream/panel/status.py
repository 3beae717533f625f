"""The engine's status line: what it says, and a ticker that refreshes "starting (…, N s)".

``status_line`` is plain data (a sign, a tone, the text); the front end shows it as text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..engine import ASLEEP, READY, STARTING, EngineStatus


def status_line(status: EngineStatus) -> dict[str, str]:
    """``{"state", "sign", "tone", "text"}``; tone is one of ok, muted, warn, error."""
    if status.state == READY and status.info is not None:
        sign, tone, text = "●", "ok", f"engine ready: {status.info.describe()}"
    elif status.state == ASLEEP and status.info is not None:
        sign, tone = "☾", "muted"
        text = f"engine asleep, its GPU memory freed (Generate wakes it): {status.info.describe()}"
    elif status.state == STARTING:
        sign, tone, text = "◌", "warn", f"engine starting ({status.phase}, {status.elapsed_s:.0f} s)"
    elif status.state == "failed":
        sign, tone, text = "✖", "error", f"engine failed: {status.error}"
    else:
        sign, tone, text = "○", "muted", "engine stopped: vstream.engine() starts it"
    return {"state": status.state, "sign": sign, "tone": tone, "text": text}


class StatusTicker:
    """Calls ``refresh()`` once a second on a thread of its own until it returns False or
    ``stop()`` is called (rich's ``_RefreshThread``). ``refresh`` must not hold the panel."""

    def __init__(self, refresh: Callable[[], bool], interval: float = 1.0) -> None:
        self._refresh = refresh
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vstream-panel-status", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            if not self._refresh():
                return

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._done.is_set()

    def stop(self) -> None:
        self._done.set()
