"""The panel's pure logic (export, stop strings, presets, chat history) and its behaviour over
an engine that is starting or failed (a stand-in host: no engine needed)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from vstream.engine import EngineStatus
from vstream.errors import EngineStartError, SamplingError
from vstream.panel_chat import ChatHistory
from vstream.panel_export import (
    essential,
    format_stop,
    magic_cell,
    magic_unsupported,
    number,
    parse_stop,
    python_call,
)
from vstream.panel_presets import BUILTIN, PresetStore

# --- stop strings -------------------------------------------------------------------------------


def test_stop_field_splits_on_commas_and_decodes_escapes():
    assert parse_stop(r"\n\n, END ,\s, a\,b, back\\slash") == [
        "\n\n",
        "END",
        " ",
        "a,b",
        "back\\slash",
    ]
    assert parse_stop("  ,  ") == []


@pytest.mark.parametrize("stops", [["\n"], [" ", "\t"], ["a,b", "x\\y "], ["<|im_end|>", "END"]])
def test_stop_strings_round_trip_through_the_field(stops):
    assert parse_stop(format_stop(stops)) == stops


def test_unknown_escape_is_an_error_naming_the_escapes():
    with pytest.raises(ValueError, match=r"unknown escape \\q"):
        parse_stop(r"\q")


# --- export -------------------------------------------------------------------------------------


def test_numbers_are_written_as_a_person_would_type_them():
    assert [number(0.0), number(0.7000000000000001), number(1.0), number(42), number(-0.0)] == [
        "0",
        "0.7",
        "1",
        "42",
        "0",
    ]


def test_export_leaves_out_neutral_values_but_keeps_what_ran():
    sampling = {
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": -1,
        "min_p": 0.0,
        "max_tokens": 64,
        "repetition_penalty": 1.0,
        "stop": [],
    }
    assert essential(sampling) == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64}


def test_magic_cell_options_parse_back_with_the_magics_own_parser():
    from IPython.core.magic_arguments import parse_argstring

    from vstream.magics import VStreamMagics, _decoded

    sampling = {
        "temperature": 0.3, "top_p": 0.9, "max_tokens": 99, "seed": 7,
        "stop": ["\n\n", "it's", 'say "x"'], "top_k": 40, "logprobs": 5,
    }  # fmt: skip
    cell = magic_cell("Say <b>hi</b>\nplease", sampling, chat=True, system="Be 'brief'\nnow")
    first, body = cell.split("\n", 1)
    assert body == "Say <b>hi</b>\nplease"
    assert first.startswith("%%vstream ")
    args = parse_argstring(VStreamMagics.vstream_cell, first[len("%%vstream ") :])
    assert args.chat and _decoded(args.system) == "Be 'brief'\nnow"  # one line, decoded back
    assert (args.temperature, args.top_p, args.top_k, args.max_tokens) == (0.3, 0.9, 40, 99)
    assert (args.seed, args.logprobs) == (7, 5)
    assert [_decoded(s) for s in args.stop] == ["\n\n", "it's", 'say "x"']


def test_settings_the_magic_lacks_are_reported():
    # Every option has a flag now (min_tokens and ignore_eos included); what a cell still cannot
    # carry is a value holding both kinds of quote.
    assert magic_unsupported({"temperature": 1.0, "ignore_eos": True, "min_tokens": 3}) == []
    cell = magic_cell("hi", {"temperature": 1.0, "ignore_eos": True, "min_tokens": 3})
    assert "--ignore-eos" in cell and "--min-tokens 3" in cell
    assert magic_unsupported({"stop": ["it's \"x\""]}) == ["stop"]
    assert "--stop" not in magic_cell("hi", {"stop": ["it's \"x\""]})


def test_python_export_is_valid_code_with_one_call_per_column():
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ]
    code = python_call(
        messages,
        [{"temperature": 0.0, "max_tokens": 5}, {"temperature": 1.1, "stop": ["\n"]}],
        chat=True,
        system="sys",
    )
    compile(code, "<export>", "exec")
    assert code.count("host.stream(") == 2 and "chat=True" in code and "system='sys'" in code
    assert "'content': 'bye'" in code and "stop=['\\n']" in code


# --- presets ------------------------------------------------------------------------------------


def test_builtin_presets_are_valid_and_distinct():
    from vstream.config import validate_sampling

    for settings in BUILTIN.values():
        validate_sampling(settings)
    assert (
        BUILTIN["greedy"]["temperature"]
        == 0.0
        < BUILTIN["balanced"]["temperature"]
        < BUILTIN["creative"]["temperature"]
    )


def test_user_presets_persist_and_bad_ones_are_refused(tmp_path):
    path = tmp_path / "p" / "presets.json"
    store = PresetStore(path)
    store.save("mine", {"temperature": 0.2, "top_p": 0.5, "logprobs": 3, "ignore_eos": True})
    assert PresetStore(path).get("mine") == {
        "temperature": 0.2,
        "top_p": 0.5,
        "ignore_eos": True,
    }  # only a column's control values kept: the logprob view is the whole panel's
    with pytest.raises(SamplingError, match="top_p"):
        store.save("bad", {"top_p": 0.0})
    with pytest.raises(SamplingError, match="built-in"):
        store.save("greedy", {"temperature": 0.1})
    with pytest.raises(SamplingError, match="name"):
        store.save("  ", {"temperature": 0.1})
    store.delete("mine")
    assert PresetStore(path).names() == ["greedy", "balanced", "creative"]


def test_a_corrupt_presets_file_does_not_break_the_panel(tmp_path):
    path = tmp_path / "presets.json"
    path.write_text("{not json")
    store = PresetStore(path)
    assert store.names() == ["greedy", "balanced", "creative"] and "could not read" in (
        store.load_error or ""
    )
    path.write_text('{"presets": {"ok": {"temperature": 0.5}, "bad": {"top_p": 7}}}')
    assert PresetStore(path).names() == ["greedy", "balanced", "creative", "ok"]


# --- chat history -------------------------------------------------------------------------------


def test_chat_history_escapes_user_prompts_and_answers():
    history = ChatHistory()
    assert history.request("<script>alert(1)</script>") == [
        {"role": "user", "content": "<script>alert(1)</script>"}
    ]
    history.commit('<img src=x onerror="x()">')
    html = history.html()
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        and "&lt;img src=x onerror=&quot;x()&quot;&gt;" in html
    )
    assert "<script" not in html and "<img" not in html
    assert len(history.request("next")) == 3 and history.drop() == "next" and history.turns == 1


# --- the panel over an engine that is starting or failed -----------------------------------------


class StandInHost:
    """Just enough of EngineHost for the panel: a state, listeners, and wait_ready."""

    info = None  # what a host that is not ready has

    def __init__(self, state: str, error: str | None = None) -> None:
        self._state, self.error = state, error
        self.listeners: list[Any] = []
        self.started = time.perf_counter()
        self.streamed = 0

    def status(self) -> EngineStatus:
        return EngineStatus(
            self._state, time.perf_counter() - self.started, "loading weights", None, self.error
        )

    @property
    def state(self) -> str:
        return self._state

    def add_listener(self, callback: Any) -> Any:
        self.listeners.append(callback)
        return lambda: self.listeners.remove(callback)

    def wait_ready(self, timeout: float | None = None) -> None:
        if self._state == "failed":
            raise EngineStartError(self.error or "failed")
        time.sleep(timeout or 0)
        raise TimeoutError("still starting")

    def stream(self, *args: Any, **kwargs: Any) -> None:
        self.streamed += 1
        raise AssertionError("the panel must not submit before the engine is ready")

    def stream_many(self, requests: Any) -> None:  # what the panel calls: counted too
        self.streamed += len(requests)
        raise AssertionError("the panel must not submit before the engine is ready")


@pytest.fixture
def panel_over():
    pytest.importorskip("ipywidgets")
    from vstream.panel import Panel

    made = []

    def make(host: StandInHost, **kwargs: Any) -> Panel:
        panel = Panel("hello", host=host, presets=PresetStore(None), **kwargs)  # type: ignore[arg-type]
        made.append(panel)
        return panel

    yield make
    for panel in made:
        panel.close()


def test_a_failed_engine_shows_its_reason_and_generate_says_why(panel_over):
    host = StandInHost("failed", "model 'nope' not found: <check the name>")
    panel = panel_over(host)
    assert (
        "engine failed: model &#x27;nope&#x27; not found: &lt;check the name&gt;"
        in panel.status.value
    )
    panel.generate.click()
    panel.wait(5)
    assert "not found" in panel.error.value
    assert not panel.running and not panel.generate.disabled and panel.stop.disabled


def test_while_the_engine_starts_the_panel_waits_counts_seconds_and_can_be_stopped(panel_over):
    host = StandInHost("starting")
    panel = panel_over(host)
    first = panel.status.value
    assert "engine starting (loading weights, 0 s)" in first
    time.sleep(1.3)
    assert panel.status.value != first  # the elapsed time ticks without any engine event

    panel.generate.click()
    deadline = time.monotonic() + 5
    while "waiting for the engine" not in panel.columns[0].output.value:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert panel.generate.disabled and not panel.stop.disabled
    panel.stop.click()
    panel.wait(5)
    assert "stopped before the engine was ready" in panel.columns[0].output.value
    assert not panel.generate.disabled and host.streamed == 0


def test_engine_events_from_another_thread_update_the_status(panel_over):
    host = StandInHost("starting")
    panel = panel_over(host)
    host._state, host.error = "failed", "boom"
    thread = threading.Thread(target=lambda: [cb(host.status()) for cb in host.listeners])
    thread.start()
    thread.join()
    assert "engine failed: boom" in panel.status.value


def test_bad_constructor_values_are_refused_at_once(panel_over):
    with pytest.raises(SamplingError, match="temperature"):
        panel_over(StandInHost("starting"), temperature=-1)
    with pytest.raises(ValueError, match="columns"):
        panel_over(StandInHost("starting"), columns=5)


def test_compare_columns_can_be_added_and_removed(panel_over):
    panel = panel_over(StandInHost("starting"), temperature=0.4)
    panel.column_count.value = 3
    assert [c.controls.preset.value for c in panel.columns] == ["(custom)", "greedy", "creative"]
    assert panel.columns[0].controls.temperature.value == 0.4
    panel.column_count.value = 1
    assert len(panel.columns) == 1 and len(panel.columns_box.children) == 1
    panel.columns[0].controls.temperature.value = 0.0
    assert "--temperature 0 " in panel.exported("%%vstream") and "temperature=0," in panel.exported(
        "Python"
    )
