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


class Column:
    """One compare column: its controls and the HTML its stream is painted into."""

    def __init__(self, index: int, store: PresetStore, initial: dict[str, Any], preset: str | None) -> None:
        self.index = index
        self.controls = SamplingControls(store, initial, preset=preset)
        self.output = w.HTML(layout=w.Layout(width="100%", min_height="2em"))
        self.output.add_class("vstream-output")
        self.settings = w.Accordion(children=[self.controls.box], titles=("sampling",), selected_index=0)
        self.box = w.VBox([self.settings, self.output], layout=w.Layout(flex="1 1 0", min_width="0"))
        self.box.add_class("vstream-column")
        self.stream: Stream | None = None
        self.painted = -1

    def paint(self, *, title: str | None, logprobs: bool, final: bool = False) -> None:
        stream = self.stream
        if stream is not None and (final or stream.version != self.painted):
            self.painted = stream.version
            self.output.value = render.stream_card(stream, title=title, logprobs=logprobs)

    def note(self, text: str) -> None:
        self.output.value = f'<div class="vstream-note" style="{MUTED}">{render.escape(text)}</div>'

    def close(self) -> None:
        self.controls.close()
        for widget in (self.output, self.settings, self.box):
            widget.close()


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
        dot, colour, text = "●", "var(--jp-success-color1,#2a2)", f"engine ready: {status.info.describe()}"
    elif status.state == STARTING:
        dot, colour, text = "◌", "var(--jp-warn-color1,#c80)", f"engine starting ({status.phase}, {status.elapsed_s:.0f} s)"
    elif status.state == "failed":
        dot, colour, text = "✖", "var(--jp-error-color1,#c00)", f"engine failed: {status.error}"
    else:
        dot, colour, text = "○", "var(--jp-ui-font-color2,#666)", "engine stopped: vstream.engine() starts it"
    return f'<div style="font-size:0.9em"><span style="color:{colour}">{dot}</span> <span style="{MUTED}">{render.escape(text)}</span></div>'


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
