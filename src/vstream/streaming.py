"""The Stream handle: one request's text as it grows, readable from any thread or event loop.

The engine's loop thread appends deltas; readers (a ``for`` loop in a cell, an ``async for`` on
the kernel's loop, a widget refresher thread) each keep their own position, so several readers
can follow one stream. Appending costs a lock per output: nothing is rendered on the engine's
thread, and readers on other threads are woken once per engine-loop step (at most every
WAKE_EVERY_S), not once per stream (64 streams would otherwise cost 64 cross-thread wake-ups per
token).

A reader that waits does so on a gate of its own (a lock it holds, which the feeding thread
releases), not on a ``threading.Condition``: the reader wakes after an engine step of idleness,
when its caches are cold, and every Python frame on that path costs; a gate's wake is one C call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .metrics import Metrics
from .reasoning import ANSWER, REASONING, ThinkSplitter, TokenSplitter, starts_inside

CANCELLED = "cancelled"
ERROR = "error"
FINISH = "finish"

Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]  # an `async for` waiting for text
Gate = Any  # a threading.Lock held by a waiting thread; a feed releases it (lock types have no public name)
PARK_S = 0.25  # the longest a waiting thread sleeps before it looks again: keeps it interruptible


@dataclasses.dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the engine's top alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclasses.dataclass(frozen=True)
class Event:
    """One step of a stream, from ``stream.events()``: a reasoning delta, an answer delta, or the
    finish (``kind`` is ``"reasoning"``, ``"answer"`` or ``"finish"``)."""

    kind: str
    text: str = ""
    finish_reason: str | None = None
    error: BaseException | None = None


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
        self._deltas: list[str] = []  # the answer's deltas (all the text, without reasoning)
        self._reasoning: list[str] = []
        # Events as they arrive; an answer delta with no reasoning split is kept as its bare text
        # (Events turns it into an Event for the reader): this runs for every delta of every stream.
        self._events: list[Event | str] = []
        self._splitter: ThinkSplitter | TokenSplitter | None = None
        self._undecided_tokens = 0  # counted before the splitter knew whether they are thinking
        self._undecided_at: float | None = None
        if sampling.get("reasoning"):
            self._splitter = ThinkSplitter(inside=starts_inside(prompt))
        self._token_ids: list[int] = []
        self._logprobs: list[TokenLogprob] | None = [] if sampling.get("logprobs") is not None else None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._async_waiters: list[Waiter] = []
        self._gates: list[Gate] = []  # threads waiting for a change (plain ``for`` readers, refreshers)
        self._canceller: Callable[[], None] | None = None
        self.version = 0  # bumps on every change; refreshers compare it to skip idle repaints

    # --- written by the engine's loop thread ---------------------------------------------------

    def _think(self, *, inside: bool = False, parser: Any = None) -> None:
        """Split ``<think>…</think>`` off the answer, from the first delta on: by vLLM's reasoning
        ``parser`` (marker token ids) when the backend has one, else by text. Backends call it
        for ``reasoning=None`` on a thinking model, and to give ``reasoning=True`` the parser."""
        if not self._token_ids:
            self._splitter = ThinkSplitter(inside=inside) if parser is None else TokenSplitter(parser, inside=inside)

    def _feed(self, text: str, token_ids: list[int], logprobs: list[TokenLogprob] | None) -> None:
        now = time.perf_counter()
        with self._lock:
            if token_ids:
                if self.metrics.first_token_at is None:
                    self.metrics.first_token_at = now
                self.metrics.last_token_at = now
                self.metrics.tokens += len(token_ids)
                self._token_ids.extend(token_ids)
            if self._splitter is None:
                if text:
                    self._deltas.append(text)
                    self._events.append(text)
                    if self.metrics.first_answer_at is None:
                        self.metrics.first_answer_at = now
            else:
                self._split(self._splitter.feed(text, token_ids), len(token_ids), now)
            if logprobs and self._logprobs is not None:
                self._logprobs.extend(logprobs)
            first = self.version == 0
            self.version += 1
            waiting = bool(self._async_waiters or self._gates)
        if waiting:
            _wake_soon(self, urgent=first)

    def _split(self, pieces: list[tuple[str, str]], tokens: int, now: float) -> None:
        """Route split text to the reasoning or the answer, and count its tokens (held: lock)."""
        for kind, piece in pieces:
            (self._reasoning if kind == REASONING else self._deltas).append(piece)
            self._events.append(Event(kind, piece))
        state = self._splitter.state if self._splitter is not None else ANSWER
        metrics = self.metrics
        if state == "before":
            self._undecided_tokens += tokens
            self._undecided_at = self._undecided_at or now
            return
        tokens, self._undecided_tokens = tokens + self._undecided_tokens, 0
        since, self._undecided_at = self._undecided_at or now, None
        if any(kind == ANSWER for kind, _ in pieces):
            if metrics.first_answer_at is None:
                metrics.first_answer_at = now
        elif state == REASONING and tokens:
            metrics.reasoning_tokens += tokens
            metrics.first_reasoning_at = metrics.first_reasoning_at or since
            metrics.last_reasoning_at = now

    def _finish(self, reason: str, *, stop_reason: str | int | None = None, error: BaseException | None = None) -> None:
        with self._lock:
            if self._done.is_set():
                return
            if self._splitter is not None:
                self._split(self._splitter.flush(), 0, time.perf_counter())
            self._events.append(Event(FINISH, finish_reason=reason, error=error))
            self.finish_reason = reason
            self.stop_reason = stop_reason
            self.error = error
            self.metrics.finished_at = time.perf_counter()
            self.version += 1
            self._done.set()
        _wake_soon(self, urgent=True)

    def _take_waiting(self) -> tuple[list[Gate], list[Waiter]]:
        with self._lock:
            gates, self._gates = self._gates, []
            waiters, self._async_waiters = self._async_waiters, []
        return gates, waiters

    # --- read by anyone ------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The answer so far (without the reasoning, when it is split off)."""
        return "".join(self._deltas)

    @property
    def reasoning(self) -> str:
        """The model's thinking (``<think>…</think>``), when reasoning is on; else empty."""
        return "".join(self._reasoning)

    @property
    def reasoning_on(self) -> bool:
        return self._splitter is not None

    @property
    def thinking(self) -> bool:
        """Still inside its thinking block (the answer has not started)."""
        splitter = self._splitter
        return splitter is not None and splitter.state != ANSWER and not self.done

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
        deadline = None if timeout is None else time.monotonic() + timeout
        gate = _held_gate()
        while self.version == since:
            left = PARK_S if deadline is None else min(PARK_S, deadline - time.monotonic())
            if left <= 0:
                return False
            self._park(gate, lambda: self.version == since, left)
        return True

    def _park(self, gate: Gate, idle: Callable[[], bool], timeout: float) -> None:
        """Sleep on ``gate`` (held by this thread) until a change releases it, if ``idle()``
        still holds once registered; a spurious or timed-out wake is fine: callers look again."""
        with self._lock:
            if not idle():
                return
            if gate not in self._gates:
                self._gates.append(gate)
        gate.acquire(True, timeout)

    def cancel(self, wait: bool = True, timeout: float = 5.0) -> None:
        """Abort the request in the engine; the text so far is kept."""
        if self._canceller is not None and not self.done:
            self._canceller()
        if wait:
            self._done.wait(timeout)

    def __iter__(self) -> Iterator[str]:
        """Answer deltas as they arrive. Ctrl-C (KeyboardInterrupt) aborts the request."""
        return self._follow(self._deltas, raise_error=True)

    def __aiter__(self) -> AsyncIterator[str]:
        # The follower itself, not a generator around it: one generator step per delta, not two.
        return self._afollow(self._deltas, raise_error=True)

    def events(self) -> Events:
        """Typed events as they arrive: ``Event("reasoning", text)``, ``Event("answer", text)``,
        then one ``Event("finish", finish_reason=..., error=...)``; for ``for`` and ``async for``."""
        return Events(self)

    def _follow(self, items: list[Any], raise_error: bool = False) -> Iterator[Any]:
        index, done, gate = 0, self._done, _held_gate()
        idle = lambda: index >= len(items) and not done.is_set()  # noqa: E731 (read at each wake)
        try:
            while True:
                while idle():
                    self._park(gate, idle, PARK_S)
                # The finish is set after the last item is appended, under the lock: read it first.
                finished = done.is_set()
                pending = items[index:]
                index += len(pending)
                yield from pending
                if finished and index >= len(items):
                    break
        except (KeyboardInterrupt, GeneratorExit):
            self.cancel()
            raise
        if raise_error and self.error is not None:
            raise self.error

    async def _afollow(self, items: list[Any], raise_error: bool = False) -> AsyncIterator[Any]:
        index = 0
        loop = asyncio.get_running_loop()
        try:
            while True:
                while index < len(items):
                    index += 1
                    yield items[index - 1]
                if self._done.is_set() and index >= len(items):
                    break
                future: asyncio.Future[None] = loop.create_future()
                with self._lock:
                    if index >= len(items) and not self._done.is_set():
                        self._async_waiters.append((loop, future))
                    else:
                        future.set_result(None)
                await future
        except (asyncio.CancelledError, GeneratorExit):
            self.cancel(wait=False)
            raise
        if raise_error and self.error is not None:
            raise self.error

    def read_from(self, answer: int, reasoning: int, logprobs: int) -> tuple[list[str], list[str], list[TokenLogprob]]:
        """The answer deltas, reasoning deltas and token logprobs after these counts of each,
        read together: a view that follows the stream pays for what is new, not the whole answer."""
        with self._lock:
            return self._deltas[answer:], self._reasoning[reasoning:], (self._logprobs or [])[logprobs:]

    def snapshot(self) -> tuple[int, str, bool]:
        """(version, text, done) read consistently, for refreshers."""
        with self._lock:
            return self.version, "".join(self._deltas), self._done.is_set()

    def __repr__(self) -> str:
        state = self.finish_reason or "running"
        return f"<Stream {self.request_id} {state}: {self.metrics.summary()}>"


class Events:
    """``stream.events()``: iterate with ``for`` or ``async for``; ends after the finish event."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[Event]:
        return map(_as_event, self._stream._follow(self._stream._events))

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for item in self._stream._afollow(self._stream._events):
            yield _as_event(item)


def _as_event(item: Event | str) -> Event:
    return Event(ANSWER, item) if isinstance(item, str) else item


WAKE_EVERY_S = 0.01  # readers on other threads are woken at most this often, but see _wake_soon
_feeding = threading.local()  # the feeding thread's readers to wake (a _Wakes)


def _wake_soon(stream: Stream, *, urgent: bool) -> None:
    """Wake the readers waiting on ``stream``: soon, together with every other stream's readers,
    one hand-off per reader loop and one release per waiting thread.

    All streams of one engine step are fed in one iteration of the engine's loop, and the wake
    waits for the next iteration, when the engine's thread is about to wait for the next step and
    lets go of the GIL (woken at once, a reader thread fought it for the GIL: 48-79 us per step
    over raw against 37-39 deferred). Each wake costs the reader a thread switch with cold caches
    (here: 50-58 us for a bare lock; its 8 tasks at 8 streams: ~100 us a step on an H200 host),
    so on a GPU, whose steps take 2-3 ms, readers are woken at most every WAKE_EVERY_S, taking
    the deltas of several steps at once, which a person watching cannot tell apart. A stream's
    first delta and its end wake at once (time to first token, and the last paint). Outside an
    event loop (a shutdown from another thread) the stream's readers are woken at once.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _wake_now(stream._take_waiting())
        return
    wakes = getattr(_feeding, "wakes", None)
    if wakes is None or wakes.loop is not loop:
        if wakes is not None:  # this thread's previous loop: wake its readers now
            wakes.flush()
        _feeding.wakes = wakes = _Wakes(loop)
    wakes.add(stream, urgent)


class _Wakes:
    """The streams fed on one loop whose readers are still to be woken. Their waiters stay
    registered on each stream until the flush takes them, so a stream's end wakes them even if
    this loop stops with a flush pending."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.streams: dict[int, Stream] = {}
        self.last = -WAKE_EVERY_S  # loop time of the last flush
        self.soon = False  # a flush is queued for the next iteration
        self.timer: asyncio.TimerHandle | None = None  # the latest a held wake waits

    def add(self, stream: Stream, urgent: bool) -> None:
        self.streams[id(stream)] = stream
        if self.soon:
            return
        if urgent or self.loop.time() - self.last >= WAKE_EVERY_S:
            self.soon = True
            self.loop.call_soon(self.flush)
        elif self.timer is None:
            # Held: a feed after WAKE_EVERY_S flushes it (usually the next step's); this timer
            # only bounds the wait when no feed comes (a stall, a long prefill beside it).
            self.timer = self.loop.call_at(self.last + 2 * WAKE_EVERY_S, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.soon = False
        self.last = self.loop.time()
        streams, self.streams = self.streams, {}
        gates: list[Gate] = []
        waiters: list[Waiter] = []
        for stream in streams.values():
            more_gates, more_waiters = stream._take_waiting()
            gates += more_gates
            waiters += more_waiters
        _wake_now((gates, waiters))


def _wake_now(waiting: tuple[list[Gate], list[Waiter]]) -> None:
    gates, waiters = waiting
    _open(gates)
    _wake(waiters)


def _held_gate() -> Gate:
    gate = threading.Lock()
    gate.acquire()
    return gate


def _open(gates: list[Gate]) -> None:
    for gate in gates:
        try:
            gate.release()
        except RuntimeError:  # already open: a wake that came after its thread timed out and went on
            pass


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
