"""``vstream.Panel``: an ipywidgets playground over the kernel's one engine.

::

    click Generate (kernel main thread: read + check settings, hand the job over, return)
        │
        ▼  the panel's worker thread: host.stream_many(one per column) ── the engine loop feeds each Stream
    refresher.follow(streams, paint, rate=20)  ──►  column HTML.value (one message per paint)

The worker keeps the kernel's main thread free: a cell run during streaming executes at once,
and a cell that blocks does not freeze the stream. Every string shown as HTML passes through
``render`` (model output and user prompts alike). The panel holds the host, not engine state.
"""

from __future__ import annotations

import queue
import threading
import weakref
from typing import Any

from . import render
from .config import validate_sampling
from .engine import STARTING, EngineHost, EngineStatus
from .engine import engine as _engine
from .errors import SamplingError, VStreamError
from .panel_chat import ChatHistory
from .panel_export import magic_cell, magic_unsupported, python_call
from .panel_presets import PresetStore, default_store
from .panel_view import MUTED, Column, PanelLayout, on_status, status_html, tick
from .refresher import follow
from .streaming import ERROR, Stream
from .throttle import DEFAULT_RATE


class Panel(PanelLayout):
    """Prompt, sampling controls, Generate/Stop/Clear and live output over ``vstream.engine()``.

    ``Panel("Tell me a joke", chat=True, columns=2, temperature=0.3)``; keyword arguments are
    sampling settings for every column (``ignore_eos``, ``min_tokens`` pass through as is).
    """

    def __init__(
        self,
        prompt: str = "",
        *,
        chat: bool = False,
        system: str | None = None,
        columns: int = 1,
        logprobs: int | None = None,
        host: EngineHost | None = None,
        presets: PresetStore | None = None,
        rate: float = DEFAULT_RATE,
        **sampling: Any,
    ) -> None:
        if columns not in (1, 2, 3, 4):
            raise ValueError(f"columns must be 1, 2, 3 or 4, got {columns!r}")
        validate_sampling(sampling)  # a bad keyword is the cell's error, said at once
        self.host = host if host is not None else _engine()
        self.store = presets if presets is not None else default_store()
        self.rate = rate
        self.history = ChatHistory()
        self._initial = sampling
        self._busy = False
        self._generation = 0  # bumped by Clear: a finishing worker then leaves the view alone
        self._streams: list[Stream] = []
        self._stop_event = threading.Event()
        # A worker thread waits for Generate's jobs: starting a thread per click blocks the click
        # until the new thread gets the GIL, and under load (an engine busy beside it) that held
        # a second panel's requests back by 6-180 ms on this CPU machine. It ends after
        # WORKER_IDLE_S without work (a panel left open must not keep a thread for good).
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._worker_lock = threading.Lock()
        self._worker_alive = False
        self._idle = threading.Event()
        self._idle.set()
        self._dispatch(None)
        self._ticking = False
        self._closed = False
        self._build(prompt, chat, system, columns, logprobs)
        self._resize(columns)
        self.generate.on_click(self._on_generate)
        self.stop.on_click(self._on_stop)
        self.clear.on_click(self._on_clear)
        self.export.on_click(self._on_export)
        self.show_prompt.observe(lambda _c: self._guard(self._update_rendered), "value")
        self.chat.observe(lambda _c: self._sync_chat(), "value")
        self.show_thinking.observe(
            lambda c: self._guard(lambda: [col.repaint(hide_thinking=not c["new"]) for col in self.columns]), "value"
        )
        self.column_count.observe(lambda c: self._guard(lambda: self._resize(c["new"])), "value")
        self._sync_chat()
        ref = weakref.ref(self)
        unsubscribe = self.host.add_listener(lambda status: on_status(ref, status))
        # Runs once: at close() or when the panel is collected.
        self._unsubscribe = weakref.finalize(self, unsubscribe)
        self._show_status(self.host.status())

    # --- actions (main thread) -------------------------------------------------------------------

    def _on_generate(self, _button: Any = None) -> None:
        if self._busy:
            return  # a second click while running starts nothing
        try:
            self.error.value = ""
            request = self._request()
        except Exception as exc:
            self._show_error(exc)
            return
        self._set_running(True)
        self._stop_event = threading.Event()
        self._streams = []
        self._idle.clear()
        self._dispatch((request, self._stop_event, self._generation))

    def _request(self) -> dict[str, Any]:
        """Read and check everything on the main thread, so errors show before any work starts."""
        text = self.prompt.value
        if not text.strip():
            raise SamplingError(
                "the prompt is empty: type something for the model to answer or continue"
            )
        k = self.logprob_k.value if self.logprob_view.value else None
        # The context length is known once the engine is ready: then a too-large max_tokens is
        # said here, at once, rather than by the worker a moment later.
        info = self.host.info
        samplings = []
        for column in self.columns:
            try:
                sampling = column.controls.sampling(logprobs=k)
                if info is not None:
                    validate_sampling(sampling, max_model_len=info.max_model_len)
                samplings.append(sampling)
            except SamplingError as exc:
                raise SamplingError(
                    f"column {column.index + 1}: {exc}" if len(self.columns) > 1 else str(exc)
                ) from None
        chat = self.chat.value
        prompt: Any = text
        if chat:
            prompt = self.history.request(text)
            self.prompt.value = ""  # like a chat box; given back if the request fails
            self.history_view.value = self.history.html(hide_last_answer=True)
        system = self.system.value if chat and self.system.value.strip() else None
        return {
            "prompt": prompt,
            "chat": chat,
            "system": system,
            "columns": list(self.columns),
            "samplings": samplings,
            "logprobs": k is not None,
        }

    def _on_stop(self, _button: Any = None) -> None:
        try:
            self._stop_event.set()
            for stream in list(self._streams):
                stream.cancel(
                    wait=False
                )  # the worker paints the partial text when the engine confirms
        except Exception as exc:
            self._show_error(exc)

    def _on_clear(self, _button: Any = None) -> None:
        try:
            self._on_stop()
            self._generation += 1
            self.history.clear()
            for column in self.columns:
                column.stream, column.output.value = None, ""
            for widget in (self.history_view, self.error, self.rendered):
                widget.value = ""
            self.code.layout.display = "none"
        except Exception as exc:
            self._show_error(exc)

    def _on_export(self, _button: Any = None) -> None:
        try:
            self.code.value = self.exported(self.export_kind.value)
            self.code.layout.display = None
        except Exception as exc:
            self._show_error(exc)

    def exported(self, kind: str = "Python") -> str:
        """The code that repeats what the panel does now: a ``%%vstream`` cell or a Python call."""
        k = self.logprob_k.value if self.logprob_view.value else None
        samplings = [
            column.controls.sampling(logprobs=k, draw_seed=False) for column in self.columns
        ]
        chat = self.chat.value
        system = self.system.value if chat and self.system.value.strip() else None
        text = (
            self.prompt.value
            or self.history.pending
            or (self.history.messages[-2]["content"] if self.history.messages else "")
        )
        if kind == "Python":
            prompt: Any = text
            if chat:
                earlier = self.history.messages if self.prompt.value else self.history.messages[:-2]
                prompt = [*earlier, {"role": "user", "content": text}]
            return python_call(prompt, samplings, chat=chat, system=system)
        cells = [magic_cell(text, sampling, chat=chat, system=system) for sampling in samplings]
        notes = sorted({name for sampling in samplings for name in magic_unsupported(sampling)})
        note = (
            f"# not expressible as %%vstream options (see the Python export): {', '.join(notes)}\n"
            if notes
            else ""
        )
        if chat and self.history.turns:
            note += (
                f"# the {self.history.turns} earlier chat turn(s) are only in the Python export\n"
            )
        return "\n\n".join(cells) + ("\n\n" + note if note else "")

    # --- the worker ------------------------------------------------------------------------------

    def _work(self, request: dict[str, Any], stop: threading.Event, generation: int) -> None:
        columns: list[Column] = request["columns"]
        streams: list[Stream] = []
        try:
            self._wait_engine(stop, columns)
            if not stop.is_set():
                # Submitted together, so the columns batch from their first token.
                streams = self.host.stream_many(
                    [
                        {"prompt": request["prompt"], "chat": request["chat"], "system": request["system"], **sampling}
                        for sampling in request["samplings"]
                    ]
                )
                self._streams.extend(streams)
                for column, stream in zip(columns, streams, strict=True):
                    column.stream, column.painted = stream, -1
            if stop.is_set():
                for stream in streams:
                    stream.cancel(wait=False)
            titles = [
                (column.controls.label or f"column {column.index + 1}")
                if len(columns) > 1
                else None
                for column in columns
            ]

            # An empty answer suggests chat mode when it was off (render.empty_answer_note).
            chat_hint = None if request["chat"] else "tick the chat box"

            def paint(final: bool) -> None:
                if generation == self._generation:
                    for column, title in zip(columns, titles, strict=True):
                        column.paint(
                            title=title, final=final, logprobs=request["logprobs"], chat_hint=chat_hint,
                            hide_thinking=not self.show_thinking.value,
                        )  # fmt: skip

            if streams:
                follow(streams, paint, rate=self.rate)
            elif stop.is_set() and generation == self._generation:
                for column in columns:
                    column.note("stopped before the engine was ready")
            failed = [s for s in streams if s.finish_reason == ERROR and s.error is not None]
            if failed:
                self._show_error(failed[0].error)  # type: ignore[arg-type]
        except Exception as exc:
            for stream in streams:
                stream.cancel(wait=False)
            self._show_error(exc)
        finally:
            try:
                if generation == self._generation:
                    self._settle(request, streams)
            finally:
                self._set_running(False)

    def _wait_engine(self, stop: threading.Event, columns: list[Column]) -> None:
        waiting = False
        while not stop.is_set():
            try:
                self.host.wait_ready(timeout=0.25)
                return
            except TimeoutError:
                if not waiting:
                    waiting = True
                    for column in columns:
                        column.note("waiting for the engine to start…")

    def _settle(self, request: dict[str, Any], streams: list[Stream]) -> None:
        if request["chat"]:
            first = streams[0] if streams else None
            if first is not None and first.finish_reason != ERROR and first.text:
                self.history.commit(first.text)
            else:
                prompt = self.history.drop()
                if prompt and not self.prompt.value:
                    self.prompt.value = prompt
            self.history_view.value = self.history.html(hide_last_answer=True)
        if streams:
            self._last_prompt = (streams[0].prompt, len(streams[0].prompt_token_ids))
        if self.show_prompt.value:
            self._update_rendered()

    # --- views -----------------------------------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        self._busy = running
        with self.generate.hold_sync():
            self.generate.disabled = running
            self.generate.description = "Generating…" if running else "Generate"
        self.stop.disabled = not running
        self.column_count.disabled = running

    def _update_rendered(self) -> None:
        if not self.show_prompt.value:
            self.rendered.value = ""
            return
        last = getattr(self, "_last_prompt", None)
        if last is None:
            if self.host.state not in ("ready", "asleep") or not self.prompt.value.strip():
                self.rendered.value = (
                    f'<div style="{MUTED}">the rendered prompt shows after a request, '
                    "or once the engine is ready and a prompt is typed</div>"
                )
                return
            chat = self.chat.value
            prompt: Any = (
                [*self.history.messages, {"role": "user", "content": self.prompt.value}]
                if chat
                else self.prompt.value
            )
            rendered = self.host.render(
                prompt, chat=chat, system=self.system.value.strip() or None if chat else None
            )
            last = (rendered.text, len(rendered.token_ids))
        text, count = last
        self.rendered.value = (
            f'<div style="{MUTED}">rendered prompt · {count} tokens</div>{render.text_block(text)}'
        )

    def _show_error(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, VStreamError) else f"{type(exc).__name__}: {exc}"
        self.error.value = (
            '<div class="vstream-error-box" '
            'style="color:var(--jp-error-color1,#c00);padding:2px 0">'
            f"⚠ {render.escape(message)}</div>"
        )

    def _show_status(self, status: EngineStatus) -> None:
        self.status.value = status_html(status)
        if status.state == STARTING and not self._ticking:
            self._ticking = True
            threading.Thread(
                target=tick, args=(weakref.ref(self),), name="vstream-panel-tick", daemon=True
            ).start()

    def _guard(self, action: Any) -> None:
        try:
            action()
        except Exception as exc:
            self._show_error(exc)

    # --- public helpers ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._busy

    @property
    def streams(self) -> list[Stream]:
        """The streams of the current (or last) generation, one per column."""
        return list(self._streams)

    def wait(self, timeout: float | None = None) -> Panel:
        """Block until the running generation has finished and been painted (scripts, tests)."""
        self._idle.wait(timeout)
        return self

    def close(self) -> None:
        self._closed = True
        self._on_stop()
        self._unsubscribe()
        for column in self.columns:
            column.close()
        self.root.close()
        self._jobs.put(_END)

    def _dispatch(self, job: Any) -> None:
        """Queue a job (None: just make sure the worker runs), starting the worker if it ended."""
        with self._worker_lock:
            if job is not None:
                self._jobs.put(job)
            if not self._worker_alive:
                self._worker_alive = True
                worker = threading.Thread(
                    target=_serve, args=(weakref.ref(self), self._jobs), name="vstream-panel", daemon=True
                )
                worker.start()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.root._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        state = "running" if self._busy else "idle"
        return f"<vstream.Panel {len(self.columns)} column(s), {state}>"


WORKER_IDLE_S = 60.0
_END = object()  # close(): the worker stops


def _serve(panel_ref: weakref.ref[Panel], jobs: queue.Queue[Any]) -> None:
    """A panel's worker: run each Generate's job until the panel closes or is collected, or
    nothing comes for WORKER_IDLE_S (the next click starts a new worker). It holds the panel
    only while a job runs."""
    while True:
        try:
            job = jobs.get(timeout=WORKER_IDLE_S)
        except queue.Empty:
            panel = panel_ref()
            if panel is None:
                return
            with panel._worker_lock:
                if jobs.empty():
                    panel._worker_alive = False
                    return
            del panel
            continue
        panel = panel_ref()
        if job is _END or panel is None:
            return
        try:
            panel._work(*job)
        finally:
            panel._idle.set()
            del panel
