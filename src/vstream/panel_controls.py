"""One column's sampling controls: sliders, inputs, seed (random or fixed), stop strings, presets.

Sliders use ``continuous_update=False`` (a value is sent when the handle is released, not per
pixel). Values are read when Generate is pressed and checked by ``validate_sampling``, so a bad
typed value becomes an error message in the panel naming the parameter and its range.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from . import render
from .config import DEFAULT_SAMPLING, validate_sampling
from .errors import SamplingError
from .panel_export import clean, format_stop, parse_stop
from .panel_presets import PRESET_KEYS, PresetStore

CUSTOM = "(custom)"
_STYLE = {"description_width": "128px"}
_ROW = w.Layout(width="100%", max_width="520px")


# The controls that hold one number each, read and written by name.
_NUMERIC_CONTROLS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "max_tokens",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
)


def _slider(
    kind: type,
    description: str,
    value: float,
    low: float,
    high: float,
    step: float,
    fmt: str,
    tip: str,
) -> Any:
    return kind(
        value=value, min=low, max=high, step=step, description=description, readout_format=fmt,
        continuous_update=False, style=_STYLE, layout=_ROW, description_tooltip=tip,
    )  # fmt: skip


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
        known = set(PRESET_KEYS)
        # Settings without a control (ignore_eos, min_tokens, ...) pass through unchanged.
        self.extra = {k: v for k, v in initial.items() if k not in known and k != "logprobs"}

        self.preset = w.Dropdown(
            options=[CUSTOM, *store.names()],
            value=CUSTOM,
            description="preset",
            style=_STYLE,
            layout=_ROW,
        )
        self.temperature = _slider(
            w.FloatSlider, "temperature", 0.8, 0.0, 2.0, 0.05, ".2f", "0 = greedy"
        )
        self.top_p = _slider(
            w.FloatSlider, "top-p", 0.95, 0.0, 1.0, 0.01, ".2f", "nucleus sampling, in (0, 1]"
        )
        self.top_k = w.IntText(
            value=-1, description="top-k", style=_STYLE, layout=_ROW, description_tooltip="-1 = off"
        )
        self.min_p = _slider(w.FloatSlider, "min-p", 0.0, 0.0, 1.0, 0.01, ".2f", "0 = off")
        self.max_tokens = w.IntText(value=256, description="max tokens", style=_STYLE, layout=_ROW)
        self.repetition_penalty = _slider(
            w.FloatSlider, "repetition pen.", 1.0, 0.5, 2.0, 0.05, ".2f", "1 = off"
        )
        self.presence_penalty = _slider(
            w.FloatSlider, "presence pen.", 0.0, -2.0, 2.0, 0.1, ".1f", "0 = off"
        )
        self.frequency_penalty = _slider(
            w.FloatSlider, "frequency pen.", 0.0, -2.0, 2.0, 0.1, ".1f", "0 = off"
        )
        self.seed_mode = w.ToggleButtons(
            options=["random", "fixed"], value="random", style={"button_width": "80px"}
        )
        self.seed = w.IntText(
            value=0,
            layout=w.Layout(width="120px"),
            description_tooltip="used when the seed is fixed; shows the last random seed",
        )
        self.stop = w.Text(
            value="",
            description="stop",
            placeholder=r"comma-separated; \n newline, \, comma",
            style=_STYLE,
            layout=_ROW,
        )
        self.preset_name = w.Text(placeholder="name", layout=w.Layout(width="130px"))
        self.save = w.Button(description="save preset", icon="save", layout=w.Layout(width="120px"))
        self.message = w.HTML()

        for name in ("preset", *PRESET_KEYS, "seed_mode"):
            getattr(self, name).add_class(
                f"vstream-ctl-{name.replace('_', '-')}"
            )  # stable browser-test hooks
        self.apply(initial)
        if preset is not None:
            self.preset.value = preset
            self._apply_preset(preset)
        self.preset.observe(self._on_preset, "value")
        for control in self._controls():
            control.observe(self._on_edit, "value")
        self.save.on_click(self._on_save)
        store.on_change(self._refresh_presets)

        self.box = w.VBox(
            [
                self.preset,
                self.temperature,
                self.top_p,
                self.top_k,
                self.min_p,
                self.max_tokens,
                self.repetition_penalty,
                self.presence_penalty,
                self.frequency_penalty,
                w.HBox(
                    [
                        w.Label(
                            "seed",
                            layout=w.Layout(
                                width="132px", justify_content="flex-end", padding="0 8px 0 0"
                            ),
                        ),
                        self.seed_mode,
                        self.seed,
                    ]
                ),
                self.stop,
                w.HBox([self.preset_name, self.save]),
                self.message,
            ],
            layout=w.Layout(width="100%"),
        )

    def _controls(self) -> list[Any]:
        return [
            self.temperature, self.top_p, self.top_k, self.min_p, self.max_tokens,
            self.repetition_penalty,
            self.presence_penalty, self.frequency_penalty, self.seed_mode, self.seed, self.stop,
        ]  # fmt: skip

    # --- reading --------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The controls' values as sampling settings (seed only when fixed); not yet checked."""
        try:
            stop = parse_stop(self.stop.value)
        except ValueError as exc:
            raise SamplingError(str(exc)) from None
        values: dict[str, Any] = {
            name: clean(getattr(self, name).value)
            for name in _NUMERIC_CONTROLS
        }
        if stop:
            values["stop"] = stop
        if self.seed_mode.value == "fixed":
            values["seed"] = self.seed.value
        return {**values, **self.extra}

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
            self._applying = True
            try:
                self.seed.value = self.last_seed  # shows which seed made this answer
            finally:
                self._applying = False
        return checked

    # --- writing --------------------------------------------------------------------------------

    def apply(self, settings: Mapping[str, Any]) -> None:
        """Set the controls named in ``settings`` (a preset or keyword arguments)."""
        self._applying = True
        try:
            for name in _NUMERIC_CONTROLS:
                if name in settings and settings[name] is not None:
                    getattr(self, name).value = settings[name]
            if "stop" in settings:
                stop = settings["stop"] or []
                self.stop.value = format_stop([stop] if isinstance(stop, str) else stop)
            if settings.get("seed") is not None:
                self.seed.value, self.seed_mode.value = int(settings["seed"]), "fixed"
        finally:
            self._applying = False

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
            self._applying = True
            try:
                self.preset.value = CUSTOM  # the values no longer match the preset's name
            finally:
                self._applying = False

    def _on_save(self, _button: Any = None) -> None:
        try:
            name = self.preset_name.value
            self.store.save(name, self.settings())
            self._applying = True
            try:
                self.preset.value = name.strip()
            finally:
                self._applying = False
            self.preset_name.value = ""
            self.message.value = (
                '<span style="color:var(--jp-ui-font-color2,#666)">'
                f"saved preset {render.escape(name.strip())}</span>"
            )
        except Exception as exc:
            self.message.value = _error(exc)

    def _refresh_presets(self) -> None:
        current = self.preset.value
        self._applying = True
        try:
            self.preset.options = [CUSTOM, *self.store.names()]
            self.preset.value = current if current in self.preset.options else CUSTOM
        finally:
            self._applying = False

    @property
    def label(self) -> str:
        return self.preset.value if self.preset.value != CUSTOM else ""

    def close(self) -> None:
        self.box.close()
        for widget in (*self._controls(), self.preset, self.preset_name, self.save, self.message):
            widget.close()


def _error(exc: BaseException) -> str:
    message = str(exc) if isinstance(exc, SamplingError) else f"{type(exc).__name__}: {exc}"
    return f'<span style="color:var(--jp-error-color1,#c00)">{render.escape(message)}</span>'
