"""A column's sampling controls, derived from the option table: their spec, and the form they fill.

Each row of ``options.OPTIONS`` names its control (slider, number, checkbox, seed, stop strings,
output format); ``control_specs()`` hands those rows to the front end, which builds one control
per spec (panel.js: ``buildControl``), as ipywidgets' ``widget_from_tuple`` builds a widget from
an abbreviation. There is no second list of options.

A column's *form* is what its controls show, synced as part of the widget's state::

    {"temperature": 0.8, ..., "max_tokens": 256, "thinking_token_budget": None,
     "seed": None (random) | 7 (fixed), "last_seed": 1234 (the last drawn one, shown),
     "stop": "\\n\\n, END" (the field's text), "output_format": "" | "json_schema" | ...,
     "format_spec": "...", "preset": "" (custom) | "greedy" | ...}

``form_settings`` reads a form as sampling settings (checked later by ``validate_sampling``,
so a bad typed value is an error naming the parameter and its range); ``form_with`` writes
settings into a form. Pure functions: no widgets, no engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .. import options
from ..config import DEFAULT_SAMPLING
from ..errors import SamplingError
from .export import clean, format_stop, parse_stop

VALUE_KINDS = ("slider", "number", "check", "tristate")  # a control that holds the option's value as is
FORMAT_ROWS = tuple(o for o in options.OPTIONS if o.control is not None and o.control.kind == "format")
FORMAT_HINTS = {
    "json_schema": '{"type": "object", "properties": {...}}',
    "regex": r"e.g. [A-Z][a-z]+ \d{4}",
    "choice": r"comma-separated: yes, no, maybe (\, for a comma)",
    "grammar": 'an EBNF/GBNF grammar, e.g. root ::= "yes" | "no"',
}


def _kind(option: options.Option) -> str | None:
    return option.control.kind if option.control is not None else None


def column_options() -> tuple[options.Option, ...]:
    """The rows a column has a control for (the logprob view is the whole panel's)."""
    return tuple(o for o in options.OPTIONS if _kind(o) not in (None, "panel"))


COLUMN_NAMES = tuple(o.name for o in column_options())


def control_specs() -> list[dict[str, Any]]:
    """One spec per column control, in the table's order, for the front end to build."""
    specs: list[dict[str, Any]] = []
    for option in column_options():
        control = option.control
        assert control is not None
        kind = control.kind
        if kind == "format":
            if option is FORMAT_ROWS[0]:  # one control serves every structured-output row
                formats = [{"name": o.name, "label": o.control.label or o.name, "hint": FORMAT_HINTS.get(o.name, "")}
                           for o in FORMAT_ROWS if o.control is not None]  # fmt: skip
                specs.append({"name": "output_format", "kind": "format", "label": "output format",
                              "tip": "constrain the answer: JSON fitting a schema, a regex, one of a few choices, "
                                     "a grammar", "formats": formats})  # fmt: skip
            continue
        spec: dict[str, Any] = {"name": option.name, "kind": kind, "label": control.label or option.name,
                                "tip": control.tip or option.help}  # fmt: skip
        if kind == "slider":
            spec.update(
                low=option.low if control.low is None else control.low,
                high=option.high if control.high is None else control.high,
                step=control.step,
                decimals=int(control.fmt.strip(".f") or 2),
            )
        specs.append(spec)
    return specs


def start_form(initial: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A new column's form: the table's defaults (or neutral values), then ``initial``."""
    form: dict[str, Any] = {"seed": None, "last_seed": None, "stop": "", "output_format": "", "format_spec": "",
                            "preset": ""}  # fmt: skip
    for option in column_options():
        if _kind(option) in VALUE_KINDS:
            form[option.name] = _start_value(option)
    return form_with(form, {**DEFAULT_SAMPLING, **(initial or {})})


def _start_value(option: options.Option) -> Any:
    if option.kind in (options.TRISTATE, options.OPTIONAL_INT):
        return option.default  # None: not set (auto, no budget)
    return next(v for v in (option.default, option.neutral, option.low) if v is not None)


def form_with(form: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``form`` with the sampling settings named in ``settings`` written in (a preset, keyword
    arguments, ``column.settings[name] = value``). Names without a column control are refused."""
    out = dict(form)
    for name, value in settings.items():
        option = options.BY_NAME.get(name)
        if option is None or name not in COLUMN_NAMES:
            known = ", ".join(COLUMN_NAMES)
            raise KeyError(f"{name!r} is not a setting of a panel column; known: {known}")
        kind = _kind(option)
        if kind in VALUE_KINDS:
            if value is not None or option.kind in (options.TRISTATE, options.OPTIONAL_INT):
                out[name] = value
        elif kind == "seed":
            out["seed"] = None if value is None else value
        elif kind == "stop":
            out["stop"] = format_stop([value] if isinstance(value, str) else list(value or []))
        elif kind == "format":
            if value is not None:
                out["output_format"], out["format_spec"] = name, _spec_text(option, value)
            elif out.get("output_format") == name:
                out["output_format"], out["format_spec"] = "", ""
    return out


def form_settings(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form as sampling settings (seed only when fixed; stop and choice parsed); not yet
    checked. A stop field with an unknown escape is a ``SamplingError`` naming it."""
    values: dict[str, Any] = {}
    for option in column_options():
        kind = _kind(option)
        if kind in VALUE_KINDS:
            value = form.get(option.name)
            if value is not None:
                values[option.name] = clean(value)
        elif kind == "seed" and form.get("seed") is not None:
            values["seed"] = form["seed"]
        elif kind == "stop":
            try:
                stop = parse_stop(form.get("stop") or "")
            except ValueError as exc:
                raise SamplingError(str(exc)) from None
            if stop:
                values["stop"] = stop
    values.update(_format_setting(form))
    return values


def form_value(form: Mapping[str, Any], name: str) -> Any:
    """One setting of the form, as ``form_settings`` reads it (None where not set)."""
    if name not in COLUMN_NAMES:
        raise KeyError(f"{name!r} is not a setting of a panel column; known: {', '.join(COLUMN_NAMES)}")
    option = options.BY_NAME[name]
    if _kind(option) == "stop":
        return parse_stop(form.get("stop") or "")
    return form_settings(form).get(name)


def _format_setting(form: Mapping[str, Any]) -> dict[str, Any]:
    kind = form.get("output_format") or ""
    if not kind:
        return {}
    if kind not in options.BY_NAME or options.BY_NAME[kind] not in FORMAT_ROWS:
        raise SamplingError(f"output format must be one of {', '.join(o.name for o in FORMAT_ROWS)}, got {kind!r}")
    text = form.get("format_spec") or ""
    if options.BY_NAME[kind].kind == options.CHOICE:
        try:
            return {kind: parse_stop(text)}
        except ValueError as exc:
            raise SamplingError(str(exc).replace("stop:", "choice:")) from None
    return {kind: text}


def _spec_text(option: options.Option, value: Any) -> str:
    """A structured-output value as the spec field shows it."""
    if option.kind == options.CHOICE:
        return format_stop(list(value))
    if option.kind == options.SCHEMA and not isinstance(value, str):
        schema = value.model_json_schema() if hasattr(value, "model_json_schema") else value
        return json.dumps(schema, indent=1, ensure_ascii=False)
    return str(value)
