"""The option table is the one list of request options: every row reaches every place that
needs it (validation, the magic's help, the panel's controls, presets, both exports, the
server's request body, vLLM's SamplingParams), so a new row cannot be forgotten in one of them.
A row that cannot appear somewhere says why in its ``absent``."""

from __future__ import annotations

import math
from typing import Any

import pytest

from vstream import options
from vstream.config import validate_sampling
from vstream.errors import SamplingError
from vstream.options import OPTIONS

from .test_panel_logic import StandInHost

ROWS = [pytest.param(o, id=o.name) for o in OPTIONS]


def good_and_bad(option: options.Option) -> tuple[Any, Any]:
    """A value the option accepts (not its neutral one) and one it refuses."""
    kind = option.kind
    if kind == options.REAL:
        high = option.high if math.isfinite(option.high) else option.low + 10
        control = option.control
        # Inside the slider's range where it is narrower than the engine's.
        low_ui = control.low if control is not None and control.low is not None else option.low
        high_ui = control.high if control is not None and control.high is not None else high
        return round(low_ui + (high_ui - low_ui) * 0.3, 2), high + 1
    if kind in (options.INT, options.OPTIONAL_INT):
        return int(option.low) + 3, int(option.low) - 1
    if kind in (options.FLAG, options.TRISTATE):
        return True, "yes"
    if kind == options.STOP:
        return ["END"], 42
    if kind == options.SCHEMA:
        return {"type": "object", "properties": {"n": {"type": "integer"}}}, {"type": "objekt"}
    if kind == options.REGEX:
        return "[a-z]+", "("
    if kind == options.CHOICE:
        return ["yes", "no"], []
    if kind == options.GRAMMAR:
        return 'root ::= "yes" | "no"', ""
    raise AssertionError(f"the test has no sample for kind {kind!r}: add one")


def present(option: options.Option, surface: str) -> bool:
    assert surface in options.SURFACES
    return surface not in option.absent


@pytest.mark.parametrize("option", ROWS)
def test_validation_checks_every_row(option):
    good, bad = good_and_bad(option)
    assert validate_sampling({option.name: good})[option.name] is not None
    with pytest.raises(SamplingError) as info:
        validate_sampling({option.name: bad})
    assert option.name in str(info.value)


@pytest.mark.parametrize("option", ROWS)
def test_the_magic_has_every_row_with_its_help_and_parses_it(option):
    from IPython.core.magic_arguments import parse_argstring

    from vstream.magics import VStreamMagics
    from vstream.panel.export import magic_cell

    if not present(option, "magic"):
        return
    doc = VStreamMagics.vstream_cell.__doc__
    assert option.flag in doc and option.help.split("(")[0].split(";")[0].strip()[:30] in " ".join(doc.split())
    good, _ = good_and_bad(option)
    line = magic_cell("x", {option.name: good}).split("\n", 1)[0][len("%%vstream ") :]
    assert option.flag in line
    args = parse_argstring(VStreamMagics.vstream_cell, line)
    assert getattr(args, option.name) is not None


def test_the_magic_help_is_headed_by_the_magics_own_name():
    from vstream.magics import VStreamMagics

    doc = VStreamMagics.vstream_cell.__doc__
    assert "%%vstream [--temperature" in doc
    assert "vstream_cell" not in doc


@pytest.mark.parametrize("option", ROWS)
def test_the_panel_has_a_control_for_every_row(option):
    pytest.importorskip("anywidget")
    from vstream.panel import Panel
    from vstream.panel.controls import control_specs
    from vstream.panel.presets import PresetStore

    assert option.control is not None or not present(option, "panel")
    good, _ = good_and_bad(option)
    panel = Panel("x", host=StandInHost("starting"), presets=PresetStore(None))
    try:
        if option.control.kind == "panel":  # the whole panel's control, not a column's
            panel.close()
            panel = Panel("x", host=StandInHost("starting"), presets=PresetStore(None), **{option.name: good})
            assert f"{option.name}={good!r}" in panel.exported("Python")
            return
        # The front end builds one control per spec; the structured-output rows share one.
        specs = control_specs()
        formats = [f["name"] for spec in specs if spec["kind"] == "format" for f in spec["formats"]]
        assert option.name in [spec["name"] for spec in specs] + formats
        panel.columns[0].settings[option.name] = good
        wanted = validate_sampling({option.name: good})[option.name]
        assert validate_sampling(dict(panel.columns[0].settings))[option.name] == wanted
    finally:
        panel.close()


@pytest.mark.parametrize("option", ROWS)
def test_presets_carry_every_row(option):
    from vstream.panel.presets import BUILTIN, PRESET_KEYS, PresetStore

    good, _ = good_and_bad(option)
    store = PresetStore(None)
    if not present(option, "preset"):
        assert option.name not in PRESET_KEYS
        return
    assert store.save("mine", {option.name: good}) == {option.name: good}
    assert store.get("mine")[option.name] == good
    for name, preset in BUILTIN.items():
        if option.style:
            assert preset[option.name] is not None, name


@pytest.mark.parametrize("option", ROWS)
def test_both_exports_write_every_row(option):
    from vstream.panel.export import essential, magic_cell, python_call

    good, _ = good_and_bad(option)
    assert option.name in essential({option.name: good})
    assert f"{option.name}=" in python_call("x", [{option.name: good}])
    if present(option, "magic"):
        assert option.flag in magic_cell("x", {option.name: good})
    if option.neutral is not None and not option.always:
        assert option.name not in essential({option.name: option.neutral})


@pytest.mark.parametrize("option", ROWS)
def test_the_server_request_carries_every_row(option):
    from vstream.backends.base import RenderedPrompt
    from vstream.backends.remote import RemoteBackend
    from vstream.config import EngineConfig

    good, _ = good_and_bad(option)
    checked = validate_sampling({option.name: good})
    backend = RemoteBackend(EngineConfig(base_url="http://127.0.0.1:9"))
    body = backend._body(RenderedPrompt("x", [1]), checked)
    if not present(option, "server"):
        assert option.server is None
        return
    node: Any = body
    for part in option.server.split("."):
        node = node[part]
    assert node == checked[option.name]


@pytest.mark.parametrize("option", ROWS)
def test_vllm_takes_every_row_and_its_bounds(option):
    """Each row's engine keyword exists in vLLM's SamplingParams, and a value at each of the
    row's bounds is one vLLM accepts: vstream never lets through what the engine refuses."""
    sampling_params = pytest.importorskip("vllm.sampling_params")
    if not present(option, "engine"):
        assert option.engine is None
        return
    assert option.engine.split(".")[0] in sampling_params.SamplingParams.__struct_fields__
    if option.kind != options.REAL or option.engine != option.name:
        return
    edges = [option.high] if math.isfinite(option.high) else []
    edges += [] if option.low_open else [option.low]
    for value in edges:
        sampling_params.SamplingParams(**{option.engine: value})  # accepted by vLLM too
        validate_sampling({option.name: value})


def test_temperature_above_two_is_refused_by_vstream_as_by_vllm():
    sampling_params = pytest.importorskip("vllm.sampling_params")
    with pytest.raises(Exception, match=r"temperature must be in \[0, 2\]"):  # vLLM's own class
        sampling_params.SamplingParams(temperature=5.0)
    with pytest.raises(SamplingError, match=r"temperature must be a number in \[0, 2\], got 5.0"):
        validate_sampling({"temperature": 5.0})


def test_every_row_is_complete():
    for option in OPTIONS:
        assert option.help and option.help.endswith("."), option.name
        assert set(option.absent) <= set(options.SURFACES), option.name
        for surface, field in (("magic", option.flags), ("server", option.server), ("engine", option.engine)):
            assert bool(field) == present(option, surface), f"{option.name}: {surface} missing without a reason"
        assert (option.control is not None) == present(option, "panel"), option.name
