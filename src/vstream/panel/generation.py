"""One press of Generate, run on the panel's worker thread: wait for the engine, submit every
column's request together, and stream each column's deltas to the view until all have ended.

It talks to the panel only through what it is given (the host, ``send`` for the view's messages,
``note`` for a line in every column), and leaves its outcome in its own fields (``streams``,
``results``, ``problem``) for the panel to show.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from ..engine import EngineHost
from ..refresher import follow
from ..streaming import ERROR, Stream
from .feed import ColumnFeed, send_changes, start_message

Send = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class Generation:
    """``request`` holds the prompt, chat, system, one sampling dict and title per column, and
    whether the logprob view is on (``Panel._request`` builds it)."""

    number: int
    request: dict[str, Any]
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    submitted: threading.Event = dataclasses.field(default_factory=threading.Event)
    streams: list[Stream] = dataclasses.field(default_factory=list)
    results: list[dict[str, Any]] | None = None  # each column's final state, once all ended
    problem: BaseException | None = None  # what to show as the panel's error

    def cancel(self) -> None:
        """Stop: abort the requests in the engine (the text so far is kept), or never send them."""
        self.stop.set()
        for stream in list(self.streams):
            stream.cancel(wait=False)  # the worker paints the partial text when the engine confirms

    def run(self, host: EngineHost, send: Send, note: Callable[[str], None], *, rate: float,
            current: Callable[[], bool]) -> None:  # fmt: skip
        """Stream it; ``current()`` turns False when the panel was cleared (then nothing is shown)."""
        request = self.request
        try:
            self._wait_engine(host, note)
            if not self.stop.is_set():
                # Submitted together, so the columns batch from their first token.
                base = {"prompt": request["prompt"], "chat": request["chat"], "system": request["system"]}
                self.streams = host.stream_many([{**base, **sampling} for sampling in request["samplings"]])
            self.submitted.set()
            if self.stop.is_set():
                for stream in self.streams:
                    stream.cancel(wait=False)
            if not self.streams:
                if current():
                    note("stopped before the engine was ready")
                return
            chat_hint = None if request["chat"] else "tick the chat box"  # what an empty answer suggests
            feeds = [ColumnFeed(s, i, logprobs=request["logprobs"], chat_hint=chat_hint)
                     for i, s in enumerate(self.streams)]  # fmt: skip
            if current():
                send(start_message(feeds, request["titles"], logprobs=request["logprobs"]))

            def paint(final: bool) -> None:
                if current():
                    send_changes(send, feeds, final)

            follow(self.streams, paint, rate=rate)
            self.results = [feed.result(title) for feed, title in zip(feeds, request["titles"], strict=True)]
            failed = [s.error for s in self.streams if s.finish_reason == ERROR and s.error is not None]
            self.problem = failed[0] if failed else None
        except Exception as exc:
            for stream in self.streams:
                stream.cancel(wait=False)
            self.problem = exc
        finally:
            self.submitted.set()

    def _wait_engine(self, host: EngineHost, note: Callable[[str], None]) -> None:
        waiting = False
        while not self.stop.is_set():
            try:
                host.wait_ready(timeout=0.25)
                break
            except TimeoutError:
                if not waiting:
                    waiting = True
                    note("waiting for the engine to start…")
        if waiting:
            note("")
