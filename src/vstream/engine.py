"""EngineHost: the one engine of this kernel, on its own event-loop thread.

::

    cell / widget click (kernel main thread, never blocked unless a cell asks to wait)
        │ host.stream(prompt, **sampling)  → validates, tokenizes, returns a Stream at once
        ▼
    EngineHost ── run_coroutine_threadsafe ──►  loop thread: Backend (AsyncLLM) feeds the Stream
        ▲                                                         │
        └──────── readers: for / async for / refreshers ◄─────────┘

Why a thread: AsyncLLM binds its output handler to the loop that first uses it, and the
kernel's own loop is busy and re-entered by cells. One dedicated loop avoids nest-asyncio.

``vstream.engine(**config)`` returns the host; the same config gives the same host, another
config restarts it. The engine stops on ``shutdown()``, at ``%unload_ext`` and at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import functools
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from . import logs
from .backends.base import Backend, EngineInfo, Messages, PromptSpec, RenderedPrompt
from .config import EngineConfig, detect_device, validate_prompt, validate_sampling
from .errors import (
    EngineDeadError,
    EngineNotRunningError,
    EngineStartError,
    NotEnoughMemoryError,
    SamplingError,
    SleepUnavailableError,
    VStreamError,
)
from .streaming import CANCELLED, ERROR, Stream

STARTING, READY, ASLEEP, FAILED, STOPPED = "starting", "ready", "asleep", "failed", "stopped"

# An idle GPU engine sleeps after this long (weights to host memory, KV cache dropped), so that a
# class's kernels that are not generating leave the GPU to those that are. Waking costs the next
# request ~10 ms on an H200 (see README, "Memory"), far below the pause between two prompts.
DEFAULT_SLEEP_AFTER_S = 60.0


@dataclasses.dataclass(frozen=True)
class EngineStatus:
    state: str
    elapsed_s: float
    phase: str
    info: EngineInfo | None
    error: str | None

    def __str__(self) -> str:
        if self.state == READY and self.info is not None:
            return f"ready: {self.info.describe()} (started in {self.elapsed_s:.1f} s)"
        if self.state == ASLEEP and self.info is not None:
            return f"asleep (GPU memory freed; the next request wakes it): {self.info.describe()}"
        if self.state == STARTING:
            return f"starting ({self.phase}, {self.elapsed_s:.0f} s)"
        if self.state == FAILED:
            return f"failed: {self.error}"
        return "stopped"


class EngineHost:
    """Owns the loop thread and the backend; all engine state lives here."""

    def __init__(self, config: EngineConfig, *, device: str | None = None, verbose: bool = False) -> None:
        self.config = config
        self.device = device or detect_device()
        self.verbose = verbose
        self._backend: Backend | None = None
        self._state = STOPPED
        self._phase = ""
        self._error: str | None = None
        self._started_at = 0.0
        self._ready_at: float | None = None
        self._ready = threading.Event()
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._requests: dict[str, Stream] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}  # touched only on the loop thread
        self._cancel_before_start: set[str] = set()
        self._counter = itertools.count(1)
        self._id_suffix = uuid.uuid4().hex[:8]  # ids stay unique across hosts sharing a server
        self._listeners: list[Callable[[EngineStatus], None]] = []
        # Kept out of EngineConfig so that it never shows in a repr, a status line or a notebook.
        self.api_key: str | None = None
        # Sleep: the flag and the lock are touched on the loop thread only (the lock is made there).
        self._asleep = False
        self._sleep_lock: asyncio.Lock | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._sleep_after_s: float | None = DEFAULT_SLEEP_AFTER_S if self.device == "cuda" else None
        # The last start was refused for memory: engine() without settings drops the budget asked for.
        self.memory_refused = False

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, wait: bool = False, timeout: float | None = None) -> EngineHost:
        """Start the engine (in the background unless ``wait``); a no-op if already started."""
        with self._lock:
            if self._state == FAILED:
                self.shutdown()  # the failed attempt's loop thread and processes go first
            if self._state == STOPPED:
                self._launch()
        if wait:
            self.wait_ready(timeout)
        return self

    def _launch(self) -> None:
        self._state, self._phase, self._error = STARTING, "preparing", None
        self._started_at, self._ready_at = time.perf_counter(), None
        self._ready.clear()
        self._backend = self._make_backend()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="vstream-engine-loop", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._boot(self._backend), self._loop)
        self._notify()

    def _make_backend(self) -> Backend:
        """The one place that decides where tokens come from."""
        if self.config.base_url:
            from .backends.remote import RemoteBackend

            return RemoteBackend(self.config, api_key=self.api_key)
        from .backends.local import LocalBackend

        return LocalBackend(self.config, self.device, self.verbose)

    async def _boot(self, backend: Backend) -> None:
        try:
            await backend.start(self._set_phase)
        except BaseException as exc:  # every failure becomes a status, never a dead loop thread
            message = str(exc) if isinstance(exc, (VStreamError, LookupError)) else f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._state, self._error = FAILED, message
                self._ready_at = time.perf_counter()
                self.memory_refused = isinstance(exc, NotEnoughMemoryError)
            self._ready.set()
            self._notify()
            try:
                await backend.shutdown()
            except Exception:
                pass
            return
        _put_exit_handler_first()
        self._asleep, self._sleep_lock = False, asyncio.Lock()
        with self._lock:
            self._state, self._phase = READY, "ready"
            self._ready_at = time.perf_counter()
        self._ready.set()
        self._notify()
        self._arm_idle_timer()

    def _set_phase(self, phase: str) -> None:
        self._phase = phase
        self._notify()

    def wait_ready(self, timeout: float | None = None) -> EngineInfo:
        """Block until the engine is ready; raise ``EngineStartError`` with the cause if it failed."""
        if self._state == STOPPED:
            raise EngineNotRunningError("the engine is stopped: call vstream.engine() or %vstream start")
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the engine is still starting after {timeout} s ({self._phase})")
        if self._state == FAILED:
            raise EngineStartError(self._error or "the engine failed to start")
        if self._state != READY or self._backend is None or self._backend.info is None:
            raise EngineNotRunningError(f"the engine is {self._state}")
        return self._backend.info

    def restart(self, **changes: Any) -> EngineHost:
        """Stop the engine and start it again, with ``changes`` applied to its config."""
        config = EngineConfig.from_kwargs(self.config, **changes)
        self.shutdown()
        self.config = config
        return self.start()

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop the engine and its processes, cancelling running requests. Idempotent."""
        with self._lock:
            loop, thread, backend = self._loop, self._thread, self._backend
            if loop is None:
                self._state = STOPPED
                return
            self._loop = self._thread = None
            self._backend = None
            for stream in list(self._requests.values()):
                stream._canceller = None
                stream._finish(CANCELLED)
            self._requests.clear()
        if backend is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._stop_backend(backend), loop)
            try:
                future.result(timeout)
            except Exception:
                pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
        with self._lock:
            self._state, self._phase = STOPPED, "stopped"
            self._ready.set()
        self._notify()

    async def _stop_backend(self, backend: Backend) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await backend.shutdown()

    # --- requests -------------------------------------------------------------------------------

    def render(self, prompt: str | Messages, *, chat: bool = False, system: str | None = None) -> RenderedPrompt:
        """The prompt as the model will see it (chat template applied), waiting for readiness."""
        self.wait_ready()
        return self._render([PromptSpec(prompt, chat, system)])[0]

    def _render(self, specs: Sequence[PromptSpec]) -> list[RenderedPrompt]:
        backend = self._backend
        if backend is None:
            raise EngineNotRunningError(f"the engine is {self._state}")
        for spec in specs:
            validate_prompt(spec.prompt)
        return backend.render_many(specs)

    def stream(
        self,
        prompt: str | Messages,
        *,
        chat: bool = False,
        system: str | None = None,
        request_id: str | None = None,
        **sampling: Any,
    ) -> Stream:
        """Submit a prompt (text, or chat messages) and return its Stream at once.

        Sampling settings are checked before anything reaches the engine; waits for the engine
        if it is still starting.
        """
        return self._submit(self._prepare([(PromptSpec(prompt, chat, system), request_id, sampling)]))[0]

    def stream_many(self, requests: Sequence[Mapping[str, Any]]) -> list[Stream]:
        """Submit several requests together (each a dict of ``stream``'s arguments).

        All are checked before any is sent, and they reach the engine in one loop step, so they
        are batched from their first token (submitting them one by one can miss a step).
        """
        batch = []
        for request in requests:
            options = dict(request)
            spec = PromptSpec(options.pop("prompt"), options.pop("chat", False), options.pop("system", None))
            batch.append((spec, options.pop("request_id", None), options))
        return self._submit(self._prepare(batch))

    def _prepare(
        self, batch: Sequence[tuple[PromptSpec, str | None, dict[str, Any]]]
    ) -> list[tuple[Stream, RenderedPrompt]]:
        """Check and tokenize every request (in one tokenizer call) before any is sent."""
        info = self.wait_ready()
        checked = _check_all([sampling for _, _, sampling in batch], info.max_model_len)
        rendered = self._render([spec for spec, _, _ in batch])
        prepared = []
        for (_, request_id, _), sampling, prompt in zip(batch, checked, rendered, strict=True):
            _check_room(prompt, sampling["max_tokens"], info.max_model_len)
            request_id = request_id or f"vs-{next(self._counter)}-{self._id_suffix}"
            prepared.append((Stream(request_id, prompt.text, list(prompt.token_ids), sampling), prompt))
        return prepared

    def _submit(self, prepared: list[tuple[Stream, RenderedPrompt]]) -> list[Stream]:
        with self._lock:
            loop, backend = self._loop, self._backend
            if loop is None or backend is None or self._state != READY:
                raise EngineNotRunningError(f"the engine is {self._state}")
            dead = backend.dead_reason()
            if dead:
                self._mark_dead(dead)
                raise EngineDeadError(f"the engine is dead ({dead}); run vstream.engine().restart()")
            ids = [stream.request_id for stream, _ in prepared]
            clash = [rid for rid in ids if rid in self._requests] or [rid for rid in ids if ids.count(rid) > 1]
            if clash:
                # vLLM aborts every request that shares an id: refuse rather than lose both.
                raise SamplingError(f"request_id {clash[0]!r} is already in use by a running request")
            for stream, _ in prepared:
                self._requests[stream.request_id] = stream
        runs = [self._run(backend, stream, rendered, stream.sampling) for stream, rendered in prepared]
        asyncio.run_coroutine_threadsafe(runs[0] if len(runs) == 1 else _start_together(runs), loop)
        streams = [stream for stream, _ in prepared]
        for stream in streams:
            stream._canceller = functools.partial(_call_soon, loop, self._cancel_on_loop, stream)
        return streams

    def _cancel_on_loop(self, stream: Stream) -> None:
        # Runs on the loop thread, so it cannot race with _run registering its task. A task
        # cancelled before its first step would never run its body (nor finish the stream):
        # such a request is marked instead, and _run ends it as cancelled when it starts.
        if stream.done:
            return
        task = self._tasks.get(stream.request_id)
        if task is not None:
            task.cancel()
        else:
            self._cancel_before_start.add(stream.request_id)

    async def _run(self, backend: Backend, stream: Stream, rendered: RenderedPrompt, sampling: dict[str, Any]) -> None:
        request_id = stream.request_id
        self._tasks[request_id] = asyncio.current_task()  # type: ignore[assignment]
        self._disarm_idle_timer()
        try:
            if request_id in self._cancel_before_start:
                stream._finish(CANCELLED)
            else:
                if self._asleep or (self._sleep_lock is not None and self._sleep_lock.locked()):
                    await self._wake_on_loop(backend)
                await backend.run(stream, rendered, sampling)
        except asyncio.CancelledError:
            stream._finish(CANCELLED)
        except Exception as exc:  # a request that fails to start must still end for its readers
            stream._finish(ERROR, error=exc)
        finally:
            if not stream.done:
                stream._finish(ERROR, error=EngineDeadError("the request ended without finishing its stream"))
            self._tasks.pop(request_id, None)
            self._cancel_before_start.discard(request_id)
            self._requests.pop(request_id, None)
            if stream.error is not None and isinstance(stream.error, EngineDeadError):
                self._mark_dead(backend.dead_reason() or str(stream.error))
            self._arm_idle_timer()

    # --- sleep (GPU) -----------------------------------------------------------------------------

    def sleep(self, timeout: float = 60.0) -> None:
        """Free the engine's GPU memory (weights to host memory, KV cache dropped) until the next
        request or ``wake()``; raises ``SleepUnavailableError`` where there is no sleep mode."""
        loop, backend = self._awake_backend()
        if self._requests:
            raise SleepUnavailableError(
                f"{len(self._requests)} request(s) are running: the engine sleeps once they finish "
                "(cancel them first to sleep now)"
            )
        asyncio.run_coroutine_threadsafe(self._sleep_on_loop(backend), loop).result(timeout)

    def wake(self, timeout: float = 60.0) -> None:
        """Bring a sleeping engine back (a request does this by itself); a no-op when awake."""
        loop, backend = self._awake_backend()
        asyncio.run_coroutine_threadsafe(self._wake_on_loop(backend), loop).result(timeout)

    @property
    def asleep(self) -> bool:
        return self._asleep

    @property
    def sleep_after_s(self) -> float | None:
        """Idle seconds before the engine sleeps by itself (None: never). GPU only."""
        return self._sleep_after_s

    @sleep_after_s.setter
    def sleep_after_s(self, seconds: float | None) -> None:
        number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
        if seconds is not None and not (number and seconds > 0):
            raise VStreamError(f"sleep_after must be a number of seconds > 0, or None for never; got {seconds!r}")
        self._sleep_after_s = None if seconds is None else float(seconds)
        loop = self._loop
        if loop is not None:
            _call_soon(loop, self._arm_idle_timer)

    def _awake_backend(self) -> tuple[asyncio.AbstractEventLoop, Backend]:
        self.wait_ready()
        loop, backend = self._loop, self._backend
        if loop is None or backend is None:
            raise EngineNotRunningError(f"the engine is {self._state}")
        reason = _sleep_unavailable(backend)
        if reason:
            raise SleepUnavailableError(reason)
        return loop, backend

    async def _sleep_on_loop(self, backend: Backend) -> None:
        assert self._sleep_lock is not None
        async with self._sleep_lock:
            if self._asleep or self._tasks:  # a request came in meanwhile: stay awake for it
                return
            await backend.sleep()  # type: ignore[attr-defined]
            self._asleep = True
        self._notify()

    async def _wake_on_loop(self, backend: Backend) -> None:
        assert self._sleep_lock is not None
        async with self._sleep_lock:
            if not self._asleep:
                return
            await backend.wake()  # type: ignore[attr-defined]
            self._asleep = False
        self._notify()

    def _arm_idle_timer(self) -> None:
        """(Re)start the idle countdown; loop thread only. Nothing to do without sleep mode."""
        self._disarm_idle_timer()
        after, backend, loop = self._sleep_after_s, self._backend, self._loop
        if after is None or backend is None or loop is None or self._tasks or self._asleep:
            return
        if self._state != READY or _sleep_unavailable(backend):
            return
        self._idle_timer = loop.call_later(after, self._on_idle, backend)

    def _disarm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle(self, backend: Backend) -> None:
        self._idle_timer = None
        if not self._tasks and not self._asleep and backend is self._backend:
            task = asyncio.ensure_future(self._sleep_on_loop(backend))
            task.add_done_callback(_log_idle_sleep_failure)

    def generate(self, prompt: str | Messages, **kwargs: Any) -> Stream:
        """Like ``stream`` but waits for the end (Ctrl-C cancels)."""
        return self.stream(prompt, **kwargs).wait()

    def _mark_dead(self, reason: str) -> None:
        with self._lock:
            if self._state == READY:
                self._state, self._error = FAILED, f"the engine died: {reason}. Run restart() to bring it back."
        self._notify()

    # --- introspection --------------------------------------------------------------------------

    def status(self) -> EngineStatus:
        backend = self._backend
        if self._state == READY and backend is not None:
            dead = backend.dead_reason()
            if dead:
                self._mark_dead(dead)
        end = self._ready_at if self._ready_at is not None else time.perf_counter()
        elapsed = end - self._started_at if self._started_at else 0.0
        state = ASLEEP if self._state == READY and self._asleep else self._state
        return EngineStatus(state, elapsed, self._phase, backend.info if backend else None, self._error)

    @property
    def state(self) -> str:
        return self.status().state

    @property
    def info(self) -> EngineInfo | None:
        return self._backend.info if self._backend is not None else None

    @property
    def async_llm(self) -> Any:
        """vLLM's ``AsyncLLM`` behind an in-process engine (waits until it is ready), for driving
        vLLM directly as notebook 05 and the benchmark do. Use it only on ``engine_loop``
        (``asyncio.run_coroutine_threadsafe``): AsyncLLM is bound to the loop it was built on.

        Requests sent to it directly are invisible to vstream's idle timer, so handing it out
        wakes the engine and turns the timer off (``sleep()`` still works when asked for)."""
        self.wait_ready()
        engine = getattr(self._backend, "async_llm", None)
        if engine is None:
            raise EngineNotRunningError("this host streams from a server: there is no in-process AsyncLLM")
        self.sleep_after_s = None
        if self._asleep:
            self.wake()
        return engine

    @property
    def engine_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop, on its own thread, that the engine lives on (waits until it is ready)."""
        self.wait_ready()
        loop = self._loop
        if loop is None:
            raise EngineNotRunningError(f"the engine is {self._state}")
        return loop

    def unfinished_requests(self) -> int:
        """Requests the engine still holds, read on the engine's own loop."""
        loop, backend = self._loop, self._backend
        if loop is None or backend is None or self._state != READY:
            return 0
        future = asyncio.run_coroutine_threadsafe(_call(backend.unfinished_requests), loop)
        return future.result(10)

    def running_streams(self) -> list[Stream]:
        return list(self._requests.values())

    def process_ids(self) -> list[int]:
        backend = self._backend
        return backend.process_ids() if backend is not None else []

    def logs(self, lines: int = 40) -> list[str]:
        return logs.tail(lines)

    def add_listener(self, callback: Callable[[EngineStatus], None]) -> Callable[[], None]:
        """Call ``callback(status)`` on every state or phase change; returns an unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self) -> None:
        status = self.status() if self._listeners else None
        for callback in list(self._listeners):
            try:
                callback(status)  # type: ignore[arg-type]
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"<EngineHost {self.status()}>"


def _check_all(samplings: Sequence[dict[str, Any]], max_model_len: int) -> list[dict[str, Any]]:
    """``validate_sampling`` for a batch, once per distinct settings (``-n 8`` sends 8 identical)."""
    seen: dict[Any, dict[str, Any]] = {}
    out = []
    for sampling in samplings:
        try:
            # Types in the key: True == 1 == 1.0, but only some of them are valid for a setting.
            key: Any = tuple((name, type(value), value) for name, value in sampling.items())
            hash(key)
        except TypeError:  # a list (stop strings): check it on its own
            key = None
        if key is None or key not in seen:
            checked = validate_sampling(sampling, max_model_len=max_model_len)
            if key is None:
                out.append(checked)
                continue
            seen[key] = checked
        out.append(dict(seen[key]))  # each Stream owns its settings
    return out


def _check_room(prompt: RenderedPrompt, max_tokens: int, max_model_len: int) -> None:
    room = max_model_len - len(prompt.token_ids)
    if room < 1:
        raise SamplingError(
            f"the prompt is {len(prompt.token_ids)} tokens, which fills the model's context of "
            f"{max_model_len}: shorten it"
        )
    if max_tokens > room:
        raise SamplingError(
            f"max_tokens must be ≤ {room} for this prompt ({len(prompt.token_ids)} prompt tokens, "
            f"context {max_model_len}), got {max_tokens}"
        )


async def _start_together(runs: list[Coroutine[Any, Any, None]]) -> None:
    for run in runs:
        # Each run keeps its own task in EngineHost._tasks from its first step on.
        asyncio.ensure_future(run)  # noqa: RUF006


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: the engine is gone and shutdown finished the stream
        pass


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def _sleep_unavailable(backend: Backend) -> str | None:
    check = getattr(backend, "sleep_unavailable", None)
    if check is None:
        return "this host streams from a server: a server's engine sleeps, if at all, on the server"
    return check()


def _log_idle_sleep_failure(task: asyncio.Future[None]) -> None:
    # An idle sleep that fails leaves the engine awake and serving: worth a log line, not a crash.
    if not task.cancelled() and task.exception() is not None:
        logs.note(f"vstream: the idle engine could not sleep: {task.exception()!r}")


# --- the one host of this process ---------------------------------------------------------------

_host: EngineHost | None = None
_host_lock = threading.Lock()


_UNSET: Any = object()
_MEMORY_DEFAULTS = {"kv_cache_memory": None, "kv_cache_tokens": None, "gpu_memory_utilization": None}


def engine(
    *, wait: bool = False, verbose: bool | None = None, sleep_after: float | None = _UNSET, **config: Any
) -> EngineHost:
    """The kernel's engine host, started in the background if needed.

    Called again with the same (or no) settings it returns the same host; with different engine
    settings it restarts the engine with them and says so. ``sleep_after`` (seconds, or None for
    never) is how long an idle GPU engine waits before it sleeps; changing it restarts nothing.
    """
    global _host
    with _host_lock:
        if _host is None:
            _host = EngineHost(EngineConfig.from_kwargs(**config), verbose=bool(verbose))
            atexit.register(_shutdown_at_exit)
        else:
            base = _host.config
            if not config and _host.memory_refused and _host.state == FAILED:
                # What did not fit is not kept: a bare engine() after "not enough memory" is the
                # default budget, not the same refusal again.
                base = dataclasses.replace(base, **_MEMORY_DEFAULTS)
            wanted = EngineConfig.from_kwargs(base, **config)
            if verbose is not None:
                _host.verbose = verbose
            if wanted != _host.config and _host.state != STOPPED:
                print(f"vstream: restarting the engine ({_host.config.describe_changes(wanted)})")
                _host.restart(**{f.name: getattr(wanted, f.name) for f in dataclasses.fields(wanted)})
            else:
                _host.config = wanted
        host = _host
    if sleep_after is not _UNSET:
        host.sleep_after_s = sleep_after
    host.start(wait=wait)
    return host


def current() -> EngineHost | None:
    """The host if one was created, without starting anything."""
    return _host


def shutdown() -> None:
    """Stop the kernel's engine if there is one."""
    if _host is not None:
        _host.shutdown()


def _put_exit_handler_first() -> None:
    """Exit handlers run last-registered first. Starting an engine imports multiprocessing, whose
    handler joins the EngineCore process, so ours must come after it to stop the engine first."""
    atexit.unregister(_shutdown_at_exit)
    atexit.register(_shutdown_at_exit)


def _shutdown_at_exit() -> None:
    # In a kernel, jupyter_client SIGTERMs the process 2.5 s after asking it to shut down, and
    # vLLM's orderly shutdown takes longer than that here (4.3 s on the CPU). Waiting it out would
    # make every kernel restart slower; cut short, the EngineCore still finishes on its own.
    try:
        shutdown()
    except Exception:
        pass

