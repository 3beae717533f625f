"""The panel's views: one compare column (controls + streamed output), the engine's status line,
and small widget factories. Everything shown as HTML passes through ``render``.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from . import render
from .engine import STARTING, EngineStatus
from .panel_controls import SamplingControls
from .panel_presets import PresetStore
from .streaming import Stream

if TYPE_CHECKING:
    from .panel import Panel

MUTED = "color:var(--jp-ui-font-color2,#666)"
_COLUMN_PRESETS = (None, "greedy", "creative", "balanced")  # what new compare columns start from


class Column:
    """One compare column: its controls and the HTML its stream is painted into."""

    def __init__(
        self, index: int, store: PresetStore, initial: dict[str, Any], preset: str | None
    ) -> None:
        self.index = index
        self.controls = SamplingControls(store, initial, preset=preset)
        self.output = w.HTML(layout=w.Layout(width="100%", min_height="2em"))
        self.output.add_class("vstream-output")
        self.settings = w.Accordion(
            children=[self.controls.box], titles=("sampling",), selected_index=0
        )
        self.box = w.Box(
            [self.output, self.settings], layout=w.Layout(flex="1 1 0", min_width="0", gap="12px")
        )
        self.box.add_class("vstream-column")
        self.stream: Stream | None = None
        self.painted = -1

    def arrange(self, alone: bool) -> None:
        """Alone: output beside its controls; in compare mode: output above them, aligned."""
        self.box.layout.flex_flow = "row" if alone else "column"
        self.output.layout.flex = "1 1 0" if alone else None
        self.output.layout.min_width = "0"
        self.settings.layout.width = "470px" if alone else "100%"
        self.settings.layout.flex = "0 0 auto" if alone else None

    def paint(self, *, title: str | None, final: bool = False, **view: Any) -> None:
        """Repaint if the stream changed; ``view``: render.stream_card's logprobs, chat_hint,
        hide_thinking."""
        stream = self.stream
        self._view = {"title": title, **view}
        if stream is not None and (final or stream.version != self.painted):
            self.painted = stream.version
            self.output.value = render.stream_card(stream, title=title, **view)

    def repaint(self, **changes: Any) -> None:
        """Paint the stream again as last painted, with ``changes`` to the view (a toggle)."""
        view = {**getattr(self, "_view", {"title": None}), **changes}
        if self.stream is not None:
            self.paint(final=True, **view)

    def note(self, text: str) -> None:
        self.output.value = f'<div class="vstream-note" style="{MUTED}">{render.escape(text)}</div>'

    def close(self) -> None:
        self.controls.close()
        for widget in (self.output, self.settings, self.box):
            widget.close()


class PanelLayout:
    """The panel's widgets and their arrangement; ``Panel`` adds what the buttons do."""

    store: PresetStore
    _initial: dict[str, Any]

    def _build(
        self, prompt: str, chat: bool, system: str | None, columns: int, logprobs: int | None
    ) -> None:
        self.status = html_widget("vstream-engine-status")
        self.prompt = w.Textarea(
            value=prompt, placeholder="Prompt…", rows=3, layout=w.Layout(width="100%")
        )
        self.prompt.add_class("vstream-prompt")
        self.chat = w.Checkbox(
            value=chat, description="chat", indent=False, layout=w.Layout(width="70px")
        )
        self.system = w.Textarea(
            value=system or "",
            placeholder="system prompt (optional)",
            rows=1,
            layout=w.Layout(width="100%"),
        )
        self.column_count = w.Dropdown(
            options=[1, 2, 3, 4],
            value=columns,
            description="columns",
            layout=w.Layout(width="150px"),
            style={"description_width": "60px"},
        )
        # Reasoning models: the <think> block shows above the answer unless this is off.
        self.show_thinking = w.Checkbox(
            value=True, description="show thinking", indent=False, layout=w.Layout(width="130px")
        )
        self.show_thinking.add_class("vstream-show-thinking")
        self.logprob_view = w.Checkbox(
            value=logprobs is not None,
            description="colour by probability",
            indent=False,
            layout=w.Layout(width="170px"),
        )
        self.logprob_k = w.BoundedIntText(
            value=5 if logprobs is None else logprobs,
            min=0,
            max=20,
            description="top",
            layout=w.Layout(width="110px"),
            style={"description_width": "30px"},
        )
        self.generate = button("Generate", "play", "vstream-generate", button_style="primary")
        self.stop = button("Stop", "stop", "vstream-stop", disabled=True)
        self.clear = button("Clear", "eraser", "vstream-clear")
        self.show_prompt = w.ToggleButton(
            value=False, description="rendered prompt", icon="eye", layout=w.Layout(width="150px")
        )
        self.export_kind = w.ToggleButtons(
            options=["%%vstream", "Python"], value="%%vstream", style={"button_width": "110px"}
        )
        self.export = button("Export", "code", "vstream-export")
        self.error = html_widget("vstream-error")
        self.history_view = html_widget("vstream-history-view")
        self.rendered = html_widget("vstream-rendered")
        self.code = w.Textarea(rows=8, layout=w.Layout(width="100%", display="none"))
        self.code.add_class("vstream-code")
        self.columns: list[Column] = []
        self.columns_box = w.HBox(
            layout=w.Layout(width="100%", gap="12px", align_items="flex-start")
        )

        toolbar = w.HBox(
            [self.generate, self.stop, self.clear, self.show_prompt, self.export_kind, self.export],
            layout=w.Layout(flex_flow="row wrap"),
        )
        options = w.HBox(
            [self.chat, self.column_count, self.show_thinking, self.logprob_view, self.logprob_k],
            layout=w.Layout(flex_flow="row wrap", align_items="center"),
        )
        self.root = w.VBox(
            [self.status, self.prompt, self.system, options, toolbar, self.error, self.rendered,
             self.code, self.history_view, self.columns_box],
            layout=w.Layout(width="100%"),
        )  # fmt: skip
        self.root.add_class("vstream-panel")

    def _resize(self, count: int) -> None:
        first = self.columns[0].controls.settings() if self.columns else {}
        while len(self.columns) > count:
            self.columns.pop().close()
        while len(self.columns) < count:
            index = len(self.columns)
            initial = {**self._initial, **first} if index else dict(self._initial)
            self.columns.append(Column(index, self.store, initial, _COLUMN_PRESETS[index]))
        for column in self.columns:
            column.arrange(alone=count == 1)
        self.columns_box.children = [column.box for column in self.columns]

    def _sync_chat(self) -> None:
        self.system.layout.display = None if self.chat.value else "none"
        self.history_view.layout.display = None if self.chat.value else "none"


def html_widget(css_class: str) -> w.HTML:
    widget = w.HTML(layout=w.Layout(width="100%"))
    widget.add_class(css_class)
    return widget


def button(description: str, icon: str, css_class: str, **kwargs: Any) -> w.Button:
    button = w.Button(description=description, icon=icon, layout=w.Layout(width="auto"), **kwargs)
    button.add_class(css_class)
    return button


def status_html(status: EngineStatus) -> str:
    if status.state == "ready" and status.info is not None:
        dot, colour, text = (
            "●",
            "var(--jp-success-color1,#2a2)",
            f"engine ready: {status.info.describe()}",
        )
    elif status.state == "asleep" and status.info is not None:
        dot, colour, text = (
            "☾",
            "var(--jp-ui-font-color2,#666)",
            f"engine asleep, its GPU memory freed (Generate wakes it): {status.info.describe()}",
        )
    elif status.state == STARTING:
        dot, colour, text = (
            "◌",
            "var(--jp-warn-color1,#c80)",
            f"engine starting ({status.phase}, {status.elapsed_s:.0f} s)",
        )
    elif status.state == "failed":
        dot, colour, text = "✖", "var(--jp-error-color1,#c00)", f"engine failed: {status.error}"
    else:
        dot, colour, text = (
            "○",
            "var(--jp-ui-font-color2,#666)",
            "engine stopped: vstream.engine() starts it",
        )
    return (
        f'<div style="font-size:0.9em"><span style="color:{colour}">{dot}</span> '
        f'<span style="{MUTED}">{render.escape(text)}</span></div>'
    )


def on_status(ref: weakref.ref[Panel], status: EngineStatus) -> None:
    # Called on the engine's loop thread: the panel is held weakly, so it can be collected.
    panel = ref()
    if panel is not None and not panel._closed:
        panel._show_status(status)


def tick(ref: weakref.ref[Panel]) -> None:
    """Refresh "starting (…, N s)" once a second until the engine is ready or failed."""
    while True:
        time.sleep(1.0)
        panel = ref()
        if panel is None:
            return
        status = panel.host.status()
        if panel._closed or status.state != STARTING:
            panel._ticking = False
            if not panel._closed:
                panel.status.value = status_html(status)
            return
        panel.status.value = status_html(status)
        del panel
