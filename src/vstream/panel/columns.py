"""One compare column, as Python sees it: its settings (read and set from code) and its result.

The column's state lives in the panel's synced traits (``forms`` and ``results``, one entry per
column); a ``Column`` is a handle on entry ``index``, so what code sets shows in the browser and
what the browser sets is what code reads::

    column = panel.columns[0]
    column.settings["temperature"] = 0.2      # or: column.temperature = 0.2
    column.settings.update(top_p=0.9, stop=["\\n\\n"])
    column.preset = "greedy"                  # apply a preset (the names in panel.presets)
    column.sampling()                         # the checked settings the next Generate sends
"""

from __future__ import annotations

import random
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from ..config import validate_sampling
from .controls import COLUMN_NAMES, form_settings, form_value, form_with

if TYPE_CHECKING:
    from .widget import Panel


class ColumnSettings(MutableMapping[str, Any]):
    """A column's sampling settings by option name (``temperature``, ``stop``, ``json_schema``,
    ...), read from and written to the widget's state. ``None`` means not set: a random seed,
    no stop strings, no output format, the engine's default."""

    def __init__(self, column: Column) -> None:
        self._column = column

    def __getitem__(self, name: str) -> Any:
        return form_value(self._column.form, name)

    def __setitem__(self, name: str, value: Any) -> None:
        self._column.edit({name: value})

    def __delitem__(self, name: str) -> None:
        self._column.edit({name: None})

    def __iter__(self) -> Iterator[str]:
        return iter(COLUMN_NAMES)

    def __len__(self) -> int:
        return len(COLUMN_NAMES)

    def update(self, *args: Any, **kwargs: Any) -> None:  # one state change, not one per key
        self._column.edit(dict(*args, **kwargs))

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class Column:
    """Handle on column ``index`` of ``panel``."""

    def __init__(self, panel: Panel, index: int) -> None:
        # Set through object.__setattr__: this class's __setattr__ writes settings.
        object.__setattr__(self, "_panel", panel)
        object.__setattr__(self, "index", index)

    @property
    def form(self) -> dict[str, Any]:
        """What this column's controls show (see ``controls``)."""
        return dict(self._panel.forms[self.index])

    @property
    def settings(self) -> ColumnSettings:
        return ColumnSettings(self)

    def edit(self, settings: dict[str, Any], *, preset: str = "") -> None:
        """Write ``settings`` into the form; a change by hand leaves the preset's name."""
        form = form_with(self.form, settings)
        form["preset"] = preset
        self._panel._set_form(self.index, form)

    @property
    def preset(self) -> str:
        """The preset the settings came from ("" once changed by hand)."""
        return str(self.form.get("preset") or "")

    @preset.setter
    def preset(self, name: str) -> None:
        self.edit(self._panel.store.get(name), preset=name)

    @property
    def label(self) -> str:
        return self.preset

    @property
    def result(self) -> dict[str, Any] | None:
        """The final text, tokens and status of this column's last stream (None before one ended)."""
        results = self._panel.results
        return dict(results[self.index]) if self.index < len(results) and results[self.index] else None

    def sampling(self, *, logprobs: int | None = None, draw_seed: bool = False) -> dict[str, Any]:
        """The checked settings of one request. ``draw_seed``: a random-seed column draws one and
        shows it (so a good sample can be kept by fixing it); otherwise the last drawn is used."""
        form = self.form
        values = form_settings(form)
        if logprobs is not None:
            values["logprobs"] = logprobs
        if "seed" not in values:
            if draw_seed:
                drawn = random.randrange(2**31)
                values["seed"] = drawn
                self._panel._set_form(self.index, {**form, "last_seed": drawn})
            elif form.get("last_seed") is not None:
                values["seed"] = form["last_seed"]
        return validate_sampling(values)

    def __getattr__(self, name: str) -> Any:
        if name in COLUMN_NAMES:
            return self.settings[name]
        raise AttributeError(f"'Column' has no attribute {name!r}; settings: {', '.join(COLUMN_NAMES)}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in COLUMN_NAMES:
            self.settings[name] = value
        elif name == "preset":
            object.__setattr__(self, name, value)  # the property
        else:
            raise AttributeError(f"'Column' has no setting {name!r}; settings: {', '.join(COLUMN_NAMES)}")

    def __repr__(self) -> str:
        return f"<vstream.panel.Column {self.index + 1}{f' ({self.preset})' if self.preset else ''}>"
