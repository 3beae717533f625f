"""The Stream handle: one request's text as it grows, readable from any thread or event loop.

The engine's loop thread appends deltas; readers (a ``for`` loop in a cell, an ``async for`` on
the kernel's loop, a widget refresher thread) each keep their own position, so several readers
can follow one stream. Appending costs a lock and a notify per output: nothing is rendered on
the engine's thread, and readers on other event loops are woken once per engine-loop step, not
once per stream (64 streams would otherwise cost 64 cross-thread wake-ups per token).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

CANCELLED = "cancelled"
ERROR = "error"

Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]  # an `async for` waiting for text


@dataclasses.dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the engine's top alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclasses.dataclass
class Metrics:
    """Timing of one request, in ``time.perf_counter()`` seconds."""

    submitted_at: float
    first_token_at: float | None = None
    last_token_at: float | None = None
    finished_at: float | None = None
    tokens: int = 0

    @property
    def ttft_s(self) -> float | None:
        """Time to first token."""
        return None if self.first_token_at is None else self.first_token_at - self.submitted_at

    @property
    def decode_s(self) -> float | None:
        if self.first_token_at is None or self.last_token_at is None:
            return None
        return self.last_token_at - self.first_token_at

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: tokens after the first, over the time since the first."""
        decode = self.decode_s
        if decode is None or decode <= 0 or self.tokens < 2:
            return None
        return (self.tokens - 1) / decode

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.submitted_at

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "ttft_s": self.ttft_s,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "duration_s": self.duration_s,
        }

    def summary(self) -> str:
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s * 1000:.0f} ms")
        parts.append(f"{self.tokens} tokens")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        return " · ".join(parts)


class Stream:
    """A request in flight (or finished). Iterate it for text deltas; read ``.text`` any time.

    ``finish_reason`` is vLLM's (``"stop"``, ``"length"``) or ``"cancelled"`` or ``"error"``.
    """

    def __init__(
        self,
        request_id: str,
        prompt: str,
        prompt_token_ids: list[int],
        sampling: dict[str, Any],
        submitted_at: float | None = None,
    ) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.sampling = sampling
        self.metrics = Metrics(submitted_at if submitted_at is not None else time.perf_counter())
        self.finish_reason: str | None = None
        self.stop_reason: str | int | None = None
        self.error: BaseException | None = None
        self._deltas: list[str] = []
        self._token_ids: list[int] = []
        self._logprobs: list[TokenLogprob] | None = [] if sampling.get("logprobs") is not None else None
        self._changed = threading.Condition()
        self._done = threading.Event()
        self._async_waiters: list[Waiter] = []
        self._canceller: Callable[[], None] | None = None
        self.version = 0  # bumps on every change; refreshers compare it to skip idle repaints

    # --- written by the engine's loop thread ---------------------------------------------------

    def _feed(self, text: str, token_ids: list[int], logprobs: list[TokenLogprob] | None) -> None:
        now = time.perf_counter()
        with self._changed:
            if token_ids:
                if self.metrics.first_token_at is None:
                    self.metrics.first_token_at = now
                self.metrics.last_token_at = now
                self.metrics.tokens += len(token_ids)
                self._token_ids.extend(token_ids)
            if text:
                self._deltas.append(text)
            if logprobs and self._logprobs is not None:
                self._logprobs.extend(logprobs)
            self.version += 1
            self._changed.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        _wake_soon(waiters)

    def _finish(self, reason: str, *, stop_reason: str | int | None = None, error: BaseException | None = None) -> None:
        with self._changed:
            if self._done.is_set():
                return
            self.finish_reason = reason
            self.stop_reason = stop_reason
            self.error = error
            self.metrics.finished_at = time.perf_counter()
            self.version += 1
            self._done.set()
            self._changed.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        _wake_soon(waiters)

    # --- read by anyone ------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self._deltas)

    @property
    def token_ids(self) -> list[int]:
        return list(self._token_ids)

    @property
    def logprobs(self) -> list[TokenLogprob] | None:
        return None if self._logprobs is None else list(self._logprobs)

    @property
    def deltas(self) -> list[str]:
        return list(self._deltas)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        return self.finish_reason == CANCELLED

    def wait(self, timeout: float | None = None) -> Stream:
        """Block until finished (Ctrl-C cancels the request); raise if it ended in an error."""
        try:
            if not self._done.wait(timeout):
                raise TimeoutError(f"request {self.request_id} still running after {timeout} s")
        except KeyboardInterrupt:
            self.cancel()
            raise
        if self.error is not None:
            raise self.error
        return self

    def json(self, timeout: float | None = None) -> Any:
        """The finished answer parsed as JSON (waits for the end), e.g. with ``json_schema=``."""
        text = self.wait(timeout).text
        try:
            return json.loads(text)
        except ValueError as exc:
            why = " (it stopped at max_tokens: raise it)" if self.finish_reason == "length" else ""
            raise ValueError(f"the answer of {self.request_id} is not JSON{why}: {exc}; text: {text[:200]!r}") from None

    def wait_done(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds for the end; True if it ended. Never raises."""
        return self._done.wait(timeout)

    def wait_changed(self, since: int, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds until ``version`` differs from ``since`` (new text, or
        the end); True if it did. Never raises."""
        with self._changed:
            return self._changed.wait_for(lambda: self.version != since, timeout)

    def cancel(self, wait: bool = True, timeout: float = 5.0) -> None:
        """Abort the request in the engine; the text so far is kept."""
        if self._canceller is not None and not self.done:
            self._canceller()
        if wait:
            self._done.wait(timeout)

    def __iter__(self) -> Iterator[str]:
        """Text deltas as they arrive. Ctrl-C (KeyboardInterrupt) aborts the request."""
        index = 0
        try:
            while True:
                with self._changed:
                    while index >= len(self._deltas) and not self._done.is_set():
                        # A timeout keeps the wait interruptible by signals on every platform.
                        self._changed.wait(0.25)
                    pending = self._deltas[index:]
                    finished = self._done.is_set()
                index += len(pending)
                yield from pending
                if finished and index >= len(self._deltas):
                    break
        except (KeyboardInterrupt, GeneratorExit):
            self.cancel()
            raise
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[str]:
        index = 0
        loop = asyncio.get_running_loop()
        try:
            while True:
                while index < len(self._deltas):
                    index += 1
                    yield self._deltas[index - 1]
                if self._done.is_set() and index >= len(self._deltas):
                    break
                future: asyncio.Future[None] = loop.create_future()
                with self._changed:
                    if index >= len(self._deltas) and not self._done.is_set():
                        self._async_waiters.append((loop, future))
                    else:
                        future.set_result(None)
                await future
        except (asyncio.CancelledError, GeneratorExit):
            self.cancel(wait=False)
            raise
        if self.error is not None:
            raise self.error

    def snapshot(self) -> tuple[int, str, bool]:
        """(version, text, done) read consistently, for refreshers."""
        with self._changed:
            return self.version, "".join(self._deltas), self._done.is_set()

    def __repr__(self) -> str:
        state = self.finish_reason or "running"
        return f"<Stream {self.request_id} {state}: {self.metrics.summary()}>"


_feeding = threading.local()  # the waiters gathered during this step of the feeding thread's loop


def _wake_soon(waiters: list[Waiter]) -> None:
    """Wake async readers after the feeding loop's current step, one hand-off per reader loop.

    All streams of one engine step are fed in one iteration of the engine's loop; flushing on
    the next iteration wakes each reader loop once for all of them. Outside an event loop (a
    shutdown from another thread) the readers are woken at once.
    """
    if not waiters:
        return
    try:
        feeding_loop = asyncio.get_running_loop()
    except RuntimeError:
        _wake(waiters)
        return
    pending = getattr(_feeding, "pending", None)
    if pending is None:
        _feeding.pending = pending = []
        feeding_loop.call_soon(_flush)
    pending.extend(waiters)


def _flush() -> None:
    pending, _feeding.pending = _feeding.pending, None
    _wake(pending)


def _wake(waiters: list[Waiter]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for loop, future in waiters:
        by_loop.setdefault(loop, []).append(future)
    for loop, futures in by_loop.items():
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(_resolve, futures)
            except RuntimeError:  # closed between the check and the call: nobody is waiting
                pass


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
