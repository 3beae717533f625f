"""``vstream.Panel``: one anywidget, a playground over the kernel's one engine.

::

    Generate (browser click → custom message; or panel.run() in code), on the kernel's thread:
        read + check the settings, hand the job over, return
        │
        ▼  the panel's worker thread (worker.py), Generation.run (generation.py):
    host.stream_many(one per column) ── the engine loop feeds each Stream
    refresher.follow(streams, paint, rate=20)  ──►  widget.send(delta) per column  ──►  panel.js appends

The front end (``panel.js``/``panel.css`` beside this file) owns the controls; their values are
synced traits, so code can set them too (``panel.prompt = ...``, ``panel.columns[0].temperature
= 0.2``). While it streams only deltas cross the comm (``feed.py``); when a generation ends its
final text lands once in ``results``, which is what a saved notebook keeps. The worker keeps the
kernel's main thread free: a cell run during streaming executes at once. The panel holds the
host, not engine state.
"""

from __future__ import annotations

import uuid
import weakref
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..config import validate_sampling
from ..engine import STARTING, EngineHost, EngineStatus
from ..engine import engine as _engine
from ..errors import SamplingError, VStreamError
from ..streaming import ERROR, Stream
from ..throttle import DEFAULT_RATE
from . import static
from .chat import ChatHistory
from .columns import Column
from .controls import control_specs, start_form
from .export import magic_cell, magic_unsupported, python_call
from .generation import Generation
from .presets import PresetStore, default_store
from .status import StatusTicker, status_line
from .worker import Worker

HERE = Path(__file__).parent
MAX_COLUMNS = 4
COLUMN_PRESETS = (None, "greedy", "creative", "balanced")  # what new compare columns start from
WORKER_IDLE_S = 60.0


# The traits a generation reads; Generate's message carries them (panel.js has the same list).
GENERATE_READS = ("prompt", "system", "chat", "column_count", "logprob_view", "logprob_k", "show_thinking", "forms")


class Panel(anywidget.AnyWidget):
    """Prompt, sampling controls, Generate/Stop/Clear and live output over ``vstream.engine()``.

    ``Panel("Tell me a joke", chat=True, columns=2, temperature=0.3)``; keyword arguments are
    sampling settings for every column. From code: ``panel.prompt = "..."``, ``panel.run()``
    (returns the columns' Streams), ``panel.wait()``, ``panel.stop()``, ``panel.columns[i].settings``.
    """

    _esm = HERE / "panel.js"
    _css = HERE / "panel.css"

    view = t.Unicode("panel").tag(sync=True)  # the magic's live view shares the front end ("stream")
    # Every view of this widget shares what the kernel sent it (panel.js keeps it by this id).
    instance_id = t.Unicode().tag(sync=True)
    prompt = t.Unicode("").tag(sync=True)
    system = t.Unicode("").tag(sync=True)
    chat = t.Bool(False).tag(sync=True)
    column_count = t.Int(1).tag(sync=True)
    logprob_view = t.Bool(False).tag(sync=True)  # colour tokens by probability
    logprob_k = t.Int(5).tag(sync=True)  # alternatives per token in that view
    show_thinking = t.Bool(True).tag(sync=True)
    show_prompt = t.Bool(False).tag(sync=True)
    export_kind = t.Unicode("%%vstream").tag(sync=True)
    # What the kernel shows (the front end does not write these).
    engine_status = t.Dict().tag(sync=True)
    running = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    rendered_prompt = t.Dict().tag(sync=True)  # {"text", "tokens"} or {"note"}
    exported_code = t.Unicode("").tag(sync=True)
    chat_turns = t.List().tag(sync=True)  # [{"role", "content"}], shown as text
    controls = t.List().tag(sync=True)  # controls.control_specs(): the option table's rows
    forms = t.List().tag(sync=True)  # one column's control values per entry (controls.start_form)
    preset_names = t.List().tag(sync=True)
    notices = t.List().tag(sync=True)  # per column: {"text", "error"} from saving a preset
    notes = t.List().tag(sync=True)  # per column: "waiting for the engine to start…" and such
    results = t.List().tag(sync=True)  # per column: its final text/tokens/status (feed.result)

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
        if columns not in range(1, MAX_COLUMNS + 1):
            raise ValueError(f"columns must be 1, 2, 3 or 4, got {columns!r}")
        if logprobs is not None and (not isinstance(logprobs, int) or not 0 <= logprobs <= 20):
            raise ValueError(f"logprobs must be an integer in [0, 20] or None, got {logprobs!r}")
        validate_sampling(sampling)  # a bad keyword is the cell's error, said at once
        self.host = host if host is not None else _engine()
        self.store = presets if presets is not None else default_store()
        self.rate = rate
        self.history = ChatHistory()
        self._initial = sampling
        self._generation = 0  # bumped by Clear: a finishing worker then leaves the view alone
        self._current: Generation | None = None
        self._last_prompt: tuple[str, int] | None = None
        self._ticker: StatusTicker | None = None
        self._closed = False
        self._static_id = f"vstream-panel-{uuid.uuid4().hex}"  # the display id of its static card
        self._static_shown = False
        self._worker = Worker("vstream-panel", WORKER_IDLE_S)
        super().__init__(
            prompt=prompt, system=system or "", chat=chat, column_count=columns,
            logprob_view=logprobs is not None, logprob_k=5 if logprobs is None else logprobs,
            controls=control_specs(), preset_names=self.store.names(), instance_id=uuid.uuid4().hex,
        )  # fmt: skip
        self._resize(columns)
        self._sync_chat()
        self.observe(lambda c: self._guard(lambda: self._resize(c["new"])), "column_count")
        self.observe(lambda _c: self._guard(self._update_rendered), "show_prompt")
        self.observe(lambda _c: self._sync_chat(), "chat")
        self.on_msg(_on_message)
        self.store.on_change(self._refresh_presets)
        self._worker.submit(None)  # a worker waits already: a click starts no thread
        ref = weakref.ref(self)
        unsubscribe = self.host.add_listener(lambda status: _on_status(ref, status))
        self._unsubscribe = weakref.finalize(self, unsubscribe)  # once: at close() or collection
        self._show_status(self.host.status())

    # --- the Python API ------------------------------------------------------------------------

    @property
    def columns(self) -> list[Column]:
        """One handle per compare column: ``panel.columns[0].settings["temperature"] = 0.2``."""
        return [Column(self, i) for i in range(len(self.forms))]

    @property
    def streams(self) -> list[Stream]:
        """The streams of the current (or last) generation, one per column."""
        job = self._current
        return list(job.streams) if job is not None else []

    def run(self, timeout: float | None = None) -> list[Stream]:
        """Do what Generate does and return the columns' Streams once they are submitted (the
        engine started); they stream on. Bad settings raise here, naming the setting."""
        job = self._start()
        if not job.submitted.wait(timeout):
            raise TimeoutError(f"the engine was not ready within {timeout} s; the request waits (panel.stop() ends it)")
        if job.problem is not None and not job.streams:
            raise job.problem
        return list(job.streams)

    def stop(self) -> None:
        """What Stop does: abort the running requests in the engine; the text so far is kept."""
        if self._current is not None:
            self._current.cancel()

    def clear(self) -> None:
        """What Clear does: stop, forget the chat, empty the columns."""
        self.stop()
        self._generation += 1
        self.history.clear()
        count = len(self.forms)
        with self.hold_sync():
            self.results, self.notes = [None] * count, [""] * count
            self.error, self.exported_code, self.rendered_prompt, self.chat_turns = "", "", {}, []
        self.send({"type": "clear"})
        self._current = None
        self._guard(self._refresh_static)

    def wait(self, timeout: float | None = None) -> Panel:
        """Block until the running generation has finished and been painted (scripts, tests)."""
        self._worker.idle.wait(timeout)
        return self

    @property
    def presets(self) -> list[str]:
        return self.store.names()

    def exported(self, kind: str = "Python") -> str:
        """The code that repeats what the panel does now: a ``%%vstream`` cell or a Python call."""
        k = self.logprob_k if self.logprob_view else None
        samplings = [column.sampling(logprobs=k) for column in self.columns]
        chat = self.chat
        system = self.system if chat and self.system.strip() else None
        history = self.history
        text = self.prompt or history.pending or (history.messages[-2]["content"] if history.messages else "")
        if kind == "Python":
            prompt: Any = text
            if chat:
                earlier = history.messages if self.prompt else history.messages[:-2]
                prompt = [*earlier, {"role": "user", "content": text}]
            return python_call(prompt, samplings, chat=chat, system=system)
        if kind != "%%vstream":
            raise ValueError(f"kind must be 'Python' or '%%vstream', got {kind!r}")
        cells = [magic_cell(text, sampling, chat=chat, system=system) for sampling in samplings]
        notes = sorted({name for sampling in samplings for name in magic_unsupported(sampling)})
        note = f"# not expressible as %%vstream options (see the Python export): {', '.join(notes)}\n" if notes else ""
        if chat and history.turns:
            note += f"# the {history.turns} earlier chat turn(s) are only in the Python export\n"
        return "\n\n".join(cells) + ("\n\n" + note if note else "")

    def close(self) -> None:
        if getattr(self, "_closed", True):  # closed already, or never built (a bad argument)
            super().close()
            return
        self._closed = True
        self.stop()
        self._unsubscribe()
        if self._ticker is not None:
            self._ticker.stop()
        self._worker.close()
        super().close()

    # --- what the front end asks for (the kernel's thread) -------------------------------------

    def _handle(self, content: dict[str, Any]) -> None:
        action = content.get("action")
        if action == "generate":
            if not self.running:  # a second click while it runs starts nothing
                self._take_settings(content.get("settings"))
                self._start()
        elif action == "stop":
            self.stop()
        elif action == "clear":
            self.clear()
        elif action == "export":
            self.exported_code = self.exported("Python" if self.export_kind == "Python" else "%%vstream")
        elif action == "preset":
            self.columns[int(content["column"])].preset = str(content["name"])
        elif action == "save_preset":
            self._save_preset(int(content["column"]), str(content.get("name", "")))

    def _take_settings(self, settings: Any) -> None:
        """The values the browser showed when Generate was clicked: its state updates may still
        be held back by the widget manager (panel.js says why). Only the traits a generation
        reads; each is validated by its trait."""
        if not isinstance(settings, dict):
            return
        with self.hold_sync():
            for name in GENERATE_READS:
                if name in settings and settings[name] != getattr(self, name):
                    setattr(self, name, settings[name])

    def _save_preset(self, index: int, name: str) -> None:
        column = self.columns[index]
        try:
            self.store.save(name, dict(column.settings))
            column.edit({}, preset=name.strip())
            self._notice(index, f"saved preset {name.strip()}", error=False)
        except Exception as exc:
            self._notice(index, _message(exc), error=True)

    def _notice(self, index: int, text: str, *, error: bool) -> None:
        notices = list(self.notices) + [None] * (len(self.forms) - len(self.notices))
        notices[index] = {"text": text, "error": error}
        self.notices = notices

    def _start(self) -> Generation:
        """Check everything here, on the caller's thread, so errors show before any work starts."""
        if self.running:
            raise VStreamError("the panel is generating already: panel.wait() or panel.stop() first")
        self.error = ""
        request = self._request()
        job = Generation(self._generation, request)
        self._current = job
        with self.hold_sync():
            self.running = True
            self.notes = [""] * len(request["samplings"])
        self._worker.submit(lambda: self._work(job))
        return job

    def _request(self) -> dict[str, Any]:
        text = self.prompt
        if not text.strip():
            raise SamplingError("the prompt is empty: type something for the model to answer or continue")
        k = self.logprob_k if self.logprob_view else None
        # Once the engine is ready its context length is known: a too-large max_tokens is said
        # here, at once, rather than by the worker a moment later.
        info = self.host.info
        columns = self.columns
        samplings = []
        for column in columns:
            try:
                sampling = column.sampling(logprobs=k, draw_seed=True)
                if info is not None:
                    validate_sampling(sampling, max_model_len=info.max_model_len)
                samplings.append(sampling)
            except SamplingError as exc:
                raise SamplingError(f"column {column.index + 1}: {exc}" if len(columns) > 1 else str(exc)) from None
        chat = self.chat
        prompt: Any = text
        if chat:
            prompt = self.history.request(text)
            with self.hold_sync():
                self.prompt = ""  # like a chat box; given back if the request fails
                self.chat_turns = self.history.shown(hide_last_answer=True)
        titles = [(c.label or f"column {c.index + 1}") if len(columns) > 1 else None for c in columns]
        return {
            "prompt": prompt,
            "chat": chat,
            "system": self.system if chat and self.system.strip() else None,
            "samplings": samplings,
            "titles": titles,
            "logprobs": k is not None,
        }

    # --- the worker's thread --------------------------------------------------------------------

    def _work(self, job: Generation) -> None:
        current = lambda: job.number == self._generation  # noqa: E731 - Clear makes a job stale
        count = len(job.request["samplings"])

        def note(text: str) -> None:
            self.notes = [text] * count

        try:
            job.run(self.host, self.send, note, rate=self.rate, current=current)
            if job.problem is not None:
                self._show_error(job.problem)
            if current():
                if job.results is not None:
                    self.results = job.results  # once, at the end: what a saved notebook keeps
                self._settle(job.request, job.streams)
                self._guard(self._refresh_static)
        finally:
            self.running = False

    def _settle(self, request: dict[str, Any], streams: list[Stream]) -> None:
        if request["chat"]:
            first = streams[0] if streams else None
            if first is not None and first.finish_reason != ERROR and first.text:
                self.history.commit(first.text)
            else:
                prompt = self.history.drop()
                if prompt and not self.prompt:
                    self.prompt = prompt
            self.chat_turns = self.history.shown(hide_last_answer=True)
        if streams:
            self._last_prompt = (streams[0].prompt, len(streams[0].prompt_token_ids))
        if self.show_prompt:
            self._update_rendered()

    # --- views ----------------------------------------------------------------------------------

    def _resize(self, count: int) -> None:
        if count not in range(1, MAX_COLUMNS + 1):
            raise ValueError(f"column_count must be 1, 2, 3 or 4, got {count!r}")
        forms = list(self.forms)[:count]
        # New compare columns start from the first column's settings, then their preset.
        base = {**self._initial, **(dict(self.columns[0].settings) if forms else {})}
        while len(forms) < count:
            preset = COLUMN_PRESETS[len(forms)]
            form = start_form({**base, **(self.store.get(preset) if preset else {})})
            forms.append({**form, "preset": preset or ""})
        with self.hold_sync():
            self.forms = forms
            self.notes = (list(self.notes) + [""] * count)[:count]
            self.notices = (list(self.notices) + [None] * count)[:count]
            self.results = (list(self.results) + [None] * count)[:count]
            if self.column_count != count:
                self.column_count = count

    def _set_form(self, index: int, form: dict[str, Any]) -> None:
        forms = list(self.forms)
        forms[index] = form
        self.forms = forms

    def _refresh_presets(self) -> None:
        self.preset_names = self.store.names()

    def _sync_chat(self) -> None:
        self.chat_turns = self.history.shown(hide_last_answer=True) if self.chat else []

    def _update_rendered(self) -> None:
        if not self.show_prompt:
            self.rendered_prompt = {}
            return
        last = self._last_prompt
        if last is None:
            if self.host.state not in ("ready", "asleep") or not self.prompt.strip():
                self.rendered_prompt = {
                    "note": "the rendered prompt shows after a request, or once the engine is ready and a prompt "
                    "is typed"
                }
                return
            chat = self.chat
            prompt: Any = [*self.history.messages, {"role": "user", "content": self.prompt}] if chat else self.prompt
            rendered = self.host.render(prompt, chat=chat, system=(self.system.strip() or None) if chat else None)
            last = (rendered.text, len(rendered.token_ids))
        self.rendered_prompt = {"text": last[0], "tokens": last[1]}

    def _show_error(self, exc: BaseException) -> None:
        self.error = _message(exc)

    def _show_status(self, status: EngineStatus) -> None:
        self.engine_status = status_line(status)
        if status.state == STARTING and (self._ticker is None or not self._ticker.alive) and not self._closed:
            ref = weakref.ref(self)
            self._ticker = StatusTicker(lambda: _tick(ref))

    def _guard(self, action: Any) -> None:
        try:
            action()
        except Exception as exc:
            self._show_error(exc)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, with a static text/html + text/plain beside it for front ends
        that render no widgets (nbconvert, GitHub, a terminal). IPython kernels display the
        panel through ``_ipython_display_`` instead, whose static card follows the answers."""
        data, metadata = super()._repr_mimebundle_(**kwargs)
        return {**data, **self._static_bundle()}, metadata

    def _ipython_display_(self) -> None:
        """Two outputs: the widget view, then the static card under a display id of its own.

        The card is refreshed when a generation ends (and on Clear), so a saved notebook shows
        the final answers without widget state (off by default in JupyterLab and Notebook 7)
        and nbconvert and GitHub show them too. Updating the widget's own output instead would
        make the front end build a new view (ipywidgets' renderer does), dropping a reader's
        selection and focus at every answer's end. Where the panel renders, panel.css hides the
        card; where it cannot (no kernel, no widget state), the card is what shows.
        """
        from IPython.display import display

        data, metadata = super()._repr_mimebundle_()
        display(data, metadata=metadata, raw=True)
        display(self._static_bundle(), raw=True, display_id=self._static_id)
        self._static_shown = True

    def _static_bundle(self) -> dict[str, str]:
        job = self._current
        streams = job.streams if job is not None else []
        return static.panel_bundle(
            str(self.engine_status.get("text", "")), self.prompt, self.history.html(), streams,
            titles=job.request["titles"] if streams and job is not None else [],
            logprobs=self.logprob_view, hide_thinking=not self.show_thinking,
        )  # fmt: skip

    def _refresh_static(self) -> None:
        """Bring the displayed static card up to date (from any thread: the worker's too)."""
        if not self._static_shown:
            return
        from IPython.display import update_display

        update_display(self._static_bundle(), raw=True, display_id=self._static_id)

    def __repr__(self) -> str:
        state = "running" if self.running else "idle"
        return f"<vstream.Panel {len(self.forms)} column(s), {state}>"


def _on_message(widget: Panel, content: Any, buffers: Any) -> None:
    # A failing action becomes the panel's error line, never an exception in the comm handler.
    if isinstance(content, dict):
        widget._guard(lambda: widget._handle(content))


def _on_status(ref: weakref.ref[Panel], status: EngineStatus) -> None:
    # Called on the engine's loop thread: the panel is held weakly, so it can be collected.
    panel = ref()
    if panel is not None and not panel._closed:
        panel._show_status(status)


def _tick(ref: weakref.ref[Panel]) -> bool:
    """Refresh "starting (…, N s)"; False once the engine is no longer starting."""
    panel = ref()
    if panel is None or panel._closed:
        return False
    status = panel.host.status()
    panel.engine_status = status_line(status)
    return status.state == STARTING


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, VStreamError) else f"{type(exc).__name__}: {exc}"
