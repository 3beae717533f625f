"""One column's sampling controls, built from the option table: a widget per row, plus presets.

Each row of ``options.OPTIONS`` names its control (slider, number, checkbox, seed, stop
strings, output format); this module turns the spec into a widget, as ipywidgets'
``widget_from_tuple`` does. Sliders use ``continuous_update=False`` (a value is sent when the
handle is released, not per pixel). Values are read when Generate is pressed and checked by
``validate_sampling``, so a bad typed value becomes an error message in the panel naming the
parameter and its range.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

import ipywidgets as w

from . import options, render
from .config import DEFAULT_SAMPLING, validate_sampling
from .errors import SamplingError
from .panel_export import clean, format_stop, parse_stop
from .panel_presets import PresetStore

CUSTOM = "(custom)"
FREE_TEXT = "free text"
_STYLE = {"description_width": "128px"}
_ROW = w.Layout(width="100%", max_width="520px")

# The rows each kind of control serves.
_VALUE_KINDS = ("slider", "number", "check", "tristate")
_FORMAT_ROWS = tuple(o for o in options.OPTIONS if o.control is not None and o.control.kind == "format")
_FORMAT_LABELS = {"json_schema": "JSON schema", "regex": "regex", "choice": "choice", "grammar": "grammar"}
_FORMAT_HINTS = {
    "json_schema": '{"type": "object", "properties": {...}}',
    "regex": r"e.g. [A-Z][a-z]+ \d{4}",
    "choice": r"comma-separated: yes, no, maybe (\, for a comma)",
    "grammar": "an EBNF/GBNF grammar, e.g. root ::= \"yes\" | \"no\"",
}


def _value_widget(option: options.Option, value: Any) -> Any:
    control = option.control
    assert control is not None
    common = {"description": control.label or option.name, "style": _STYLE, "layout": _ROW}
    if control.tip:
        common["description_tooltip"] = control.tip
    if control.kind == "slider":
        low = option.low if control.low is None else control.low
        high = option.high if control.high is None else control.high
        return w.FloatSlider(
            value=value, min=low, max=high, step=control.step, readout_format=control.fmt,
            continuous_update=False, **common,
        )  # fmt: skip
    if control.kind == "number":
        return w.IntText(value=value, **common)
    if control.kind == "tristate":
        return w.Dropdown(options=[("auto", None), ("on", True), ("off", False)], value=value, **common)
    return w.Checkbox(value=bool(value), indent=True, **common)


class SamplingControls:
    """One column's settings widgets; ``sampling()`` reads them as engine keyword arguments."""

    def __init__(
        self,
        store: PresetStore,
        initial: Mapping[str, Any] | None = None,
        *,
        preset: str | None = None,
    ) -> None:
        self.store = store
        self.last_seed: int | None = None
        self._applying = False
        initial = {**DEFAULT_SAMPLING, **(initial or {})}
        # Rows whose control belongs to the whole panel (the logprob view) are not a column's.
        self.extra = {k: v for k, v in initial.items() if k != "logprobs" and not _column_control(k)}

        self.preset = w.Dropdown(
            options=[CUSTOM, *store.names()], value=CUSTOM, description="preset", style=_STYLE, layout=_ROW
        )
        # One widget per value row, named after its option (self.temperature, self.max_tokens, ...).
        self._values: dict[str, Any] = {}
        rows: list[Any] = [self.preset]
        for option in options.OPTIONS:
            kind = option.control.kind if option.control is not None else None
            if kind in _VALUE_KINDS:
                start = _start_value(option)
                widget = _value_widget(option, start)
                self._values[option.name] = widget
                setattr(self, option.name, widget)
                rows.append(widget)
            elif kind == "seed":
                rows.append(self._seed_row())
            elif kind == "stop":
                self.stop = w.Text(
                    value="", description="stop", placeholder=r"comma-separated; \n newline, \, comma",
                    style=_STYLE, layout=_ROW,
                )  # fmt: skip
                rows.append(self.stop)
            elif kind == "format" and option is _FORMAT_ROWS[0]:
                rows.append(self._format_row())
        self.preset_name = w.Text(placeholder="name", layout=w.Layout(width="130px"))
        self.save = w.Button(description="save preset", icon="save", layout=w.Layout(width="120px"))
        self.message = w.HTML()
        rows += [w.HBox([self.preset_name, self.save]), self.message]

        hooks = {"preset": self.preset, **self._values, "seed_mode": self.seed_mode, "stop": self.stop}
        if _FORMAT_ROWS:
            hooks.update(output_format=self.output_format, format_spec=self.format_spec)
        for name, widget in hooks.items():
            widget.add_class(f"vstream-ctl-{name.replace('_', '-')}")  # stable browser-test hooks
        self.apply(initial)
        if preset is not None:
            self.preset.value = preset
            self._apply_preset(preset)
        self.preset.observe(self._on_preset, "value")
        for control in self._controls():
            control.observe(self._on_edit, "value")
        self.save.on_click(self._on_save)
        store.on_change(self._refresh_presets)
        self.box = w.VBox(rows, layout=w.Layout(width="100%"))

    def _seed_row(self) -> w.HBox:
        self.seed_mode = w.ToggleButtons(options=["random", "fixed"], value="random", style={"button_width": "80px"})
        self.seed = w.IntText(
            value=0,
            layout=w.Layout(width="120px"),
            description_tooltip="used when the seed is fixed; shows the last random seed",
        )
        label = w.Label("seed", layout=w.Layout(width="132px", justify_content="flex-end", padding="0 8px 0 0"))
        return w.HBox([label, self.seed_mode, self.seed])

    def _format_row(self) -> w.VBox:
        """The output-format control: free text, or one structured-output constraint and its spec."""
        choices = [(FREE_TEXT, "")] + [(_FORMAT_LABELS.get(o.name, o.name), o.name) for o in _FORMAT_ROWS]
        self.output_format = w.Dropdown(
            options=choices, value="", description="output format", style=_STYLE, layout=_ROW,
            description_tooltip="constrain the answer: JSON fitting a schema, a regex, one of a few choices, a grammar",
        )  # fmt: skip
        self.format_spec = w.Textarea(
            value="", rows=3, continuous_update=False, layout=w.Layout(width="100%", max_width="520px", display="none")
        )
        self.output_format.observe(lambda _c: self._sync_format(), "value")
        return w.VBox([self.output_format, self.format_spec])

    def _sync_format(self) -> None:
        kind = self.output_format.value
        self.format_spec.layout.display = None if kind else "none"
        self.format_spec.placeholder = _FORMAT_HINTS.get(kind, "")

    def _controls(self) -> list[Any]:
        extra = [self.output_format, self.format_spec] if _FORMAT_ROWS else []
        return [*self._values.values(), self.seed_mode, self.seed, self.stop, *extra]

    @contextlib.contextmanager
    def _quietly(self) -> Iterator[None]:
        """Change widgets without the change counting as the user's edit (like ``hold_sync``)."""
        outer, self._applying = self._applying, True
        try:
            yield
        finally:
            self._applying = outer

    # --- reading --------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The controls' values as sampling settings (seed only when fixed); not yet checked."""
        try:
            stop = parse_stop(self.stop.value)
        except ValueError as exc:
            raise SamplingError(str(exc)) from None
        values: dict[str, Any] = {name: _read(name, widget.value) for name, widget in self._values.items()}
        if stop:
            values["stop"] = stop
        if self.seed_mode.value == "fixed":
            values["seed"] = self.seed.value
        values.update(self._format_setting())
        return {**values, **self.extra}

    def _format_setting(self) -> dict[str, Any]:
        kind = self.output_format.value if _FORMAT_ROWS else ""
        if not kind:
            return {}
        text = self.format_spec.value
        if options.BY_NAME[kind].kind == options.CHOICE:
            try:
                return {kind: parse_stop(text)}
            except ValueError as exc:
                raise SamplingError(str(exc).replace("stop:", "choice:")) from None
        return {kind: text}

    def sampling(self, *, logprobs: int | None = None, draw_seed: bool = True) -> dict[str, Any]:
        """Checked settings for one request; random mode draws a seed (shown, so it can be kept)."""
        values = self.settings()
        if logprobs is not None:
            values["logprobs"] = logprobs
        if "seed" not in values and draw_seed:
            self.last_seed = random.randrange(2**31)
            values["seed"] = self.last_seed
        elif "seed" not in values and self.last_seed is not None:
            values["seed"] = self.last_seed
        checked = validate_sampling(values)
        if draw_seed and self.seed_mode.value == "random":
            with self._quietly():
                self.seed.value = self.last_seed  # shows which seed made this answer
        return checked

    # --- writing --------------------------------------------------------------------------------

    def apply(self, settings: Mapping[str, Any]) -> None:
        """Set the controls named in ``settings`` (a preset or keyword arguments)."""
        with self._quietly():
            for name, widget in self._values.items():
                if name in settings and settings[name] is not None:
                    widget.value = settings[name]
            if "stop" in settings:
                stop = settings["stop"] or []
                self.stop.value = format_stop([stop] if isinstance(stop, str) else stop)
            if settings.get("seed") is not None:
                self.seed.value, self.seed_mode.value = int(settings["seed"]), "fixed"
            for option in _FORMAT_ROWS:
                value = settings.get(option.name)
                if value is not None:
                    self.output_format.value = option.name
                    self.format_spec.value = _spec_text(option, value)

    def _apply_preset(self, name: str) -> None:
        self.apply(self.store.get(name))

    def _on_preset(self, change: dict[str, Any]) -> None:
        if change["new"] != CUSTOM and not self._applying:
            try:
                self._apply_preset(change["new"])
                self.message.value = ""
            except Exception as exc:
                self.message.value = _error(exc)

    def _on_edit(self, _change: dict[str, Any]) -> None:
        if not self._applying and self.preset.value != CUSTOM:
            with self._quietly():
                self.preset.value = CUSTOM  # the values no longer match the preset's name

    def _on_save(self, _button: Any = None) -> None:
        try:
            name = self.preset_name.value
            self.store.save(name, self.settings())
            with self._quietly():
                self.preset.value = name.strip()
            self.preset_name.value = ""
            self.message.value = (
                '<span style="color:var(--jp-ui-font-color2,#666)">'
                f"saved preset {render.escape(name.strip())}</span>"
            )
        except Exception as exc:
            self.message.value = _error(exc)

    def _refresh_presets(self) -> None:
        current = self.preset.value
        with self._quietly():
            self.preset.options = [CUSTOM, *self.store.names()]
            self.preset.value = current if current in self.preset.options else CUSTOM

    @property
    def label(self) -> str:
        return self.preset.value if self.preset.value != CUSTOM else ""

    def close(self) -> None:
        self.box.close()
        for widget in (*self._controls(), self.preset, self.preset_name, self.save, self.message):
            widget.close()


def _start_value(option: options.Option) -> Any:
    """What a control shows at first: the default, else the neutral value; an optional number
    starts below its range, which reads as "not set"."""
    if option.kind == options.TRISTATE:
        return option.default
    if option.kind == options.OPTIONAL_INT and option.default is None:
        return int(option.low) - 1
    return next(v for v in (option.default, option.neutral, option.low) if v is not None)


def _read(name: str, value: Any) -> Any:
    option = options.BY_NAME[name]
    if option.kind == options.OPTIONAL_INT and isinstance(value, int) and value < option.low:
        return None  # "-1 = no budget"
    return clean(value)


def _column_control(name: str) -> bool:
    control = options.BY_NAME[name].control if name in options.BY_NAME else None
    return control is not None and control.kind != "panel"


def _spec_text(option: options.Option, value: Any) -> str:
    """A structured-output value as the spec field shows it."""
    if option.kind == options.CHOICE:
        return format_stop(list(value))
    if option.kind == options.SCHEMA and not isinstance(value, str):
        schema = value.model_json_schema() if hasattr(value, "model_json_schema") else value
        return json.dumps(schema, indent=1, ensure_ascii=False)
    return str(value)


def _error(exc: BaseException) -> str:
    message = str(exc) if isinstance(exc, SamplingError) else f"{type(exc).__name__}: {exc}"
    return f'<span style="color:var(--jp-error-color1,#c00)">{render.escape(message)}</span>'
