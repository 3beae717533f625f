"""A panel's worker thread: runs Generate's jobs off the kernel's main thread.

A thread waits for jobs instead of starting one per click: starting a thread blocks the click
until the new thread gets the GIL, and under load (an engine busy beside it) that held a second
panel's requests back by 6-180 ms on this CPU machine. The thread ends after ``idle_s`` without
work (a panel left open must not keep a thread for good) and the next job starts a new one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

Job = Callable[[], None]
_END = object()  # close(): the thread stops


class Worker:
    """Runs submitted jobs one after another on a daemon thread; ``idle`` is set between jobs."""

    def __init__(self, name: str, idle_s: float) -> None:
        self.name = name
        self.idle_s = idle_s
        self.idle = threading.Event()
        self.idle.set()
        self._jobs: queue.Queue[Job | object] = queue.Queue()
        self._lock = threading.Lock()
        self._alive = False
        self._closed = False

    def submit(self, job: Job | None) -> None:
        """Queue ``job`` (None: just make sure the thread is waiting), starting the thread if
        it ended. A job holds what it needs only while it is queued or running."""
        with self._lock:
            if self._closed:
                return
            if job is not None:
                self.idle.clear()
                self._jobs.put(job)
            if not self._alive:
                self._alive = True
                threading.Thread(target=self._serve, name=self.name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._alive = False
                        return
                continue
            if job is _END:
                return
            try:
                job()  # type: ignore[operator]
            finally:
                del job
                if self._jobs.empty():
                    self.idle.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._alive:
                self._jobs.put(_END)
        self.idle.set()
