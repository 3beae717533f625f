"""The panel's pure logic (export, stop strings, presets, chat history, the column settings, the
delta feed) and its behaviour over an engine that is starting, failed or ready (a stand-in host:
no engine needed)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from vstream.engine import EngineStatus
from vstream.errors import EngineStartError, SamplingError
from vstream.panel.chat import ChatHistory
from vstream.panel.export import (
    essential,
    format_stop,
    magic_cell,
    magic_unsupported,
    number,
    parse_stop,
    python_call,
)
from vstream.panel.presets import BUILTIN, PresetStore
from vstream.streaming import Stream, TokenLogprob

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
    assert magic_unsupported({"stop": ['it\'s "x"']}) == ["stop"]
    assert "--stop" not in magic_cell("hi", {"stop": ['it\'s "x"']})


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
    assert store.names() == ["greedy", "balanced", "creative"] and "could not read" in (store.load_error or "")
    path.write_text('{"presets": {"ok": {"temperature": 0.5}, "bad": {"top_p": 7}}}')
    assert PresetStore(path).names() == ["greedy", "balanced", "creative", "ok"]


# --- chat history -------------------------------------------------------------------------------


def test_chat_history_escapes_user_prompts_and_answers():
    history = ChatHistory()
    assert history.shown() == []
    assert history.request("<script>alert(1)</script>") == [{"role": "user", "content": "<script>alert(1)</script>"}]
    history.commit('<img src=x onerror="x()">')
    html = history.html()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=&quot;x()&quot;&gt;" in html
    assert "<script" not in html and "<img" not in html
    assert history.shown(hide_last_answer=True) == [{"role": "user", "content": "<script>alert(1)</script>"}]
    assert len(history.request("next")) == 3 and history.drop() == "next" and history.turns == 1


# --- the delta feed ---------------------------------------------------------------------------------


def _stream(logprobs: bool = False) -> Stream:
    return Stream("req-1", "Tell me", [1], {"logprobs": 2} if logprobs else {})


def test_each_delta_holds_only_what_is_new_and_ends_with_done():
    from vstream.panel.feed import ColumnFeed

    stream = _stream(logprobs=True)
    feed = ColumnFeed(stream, 1, logprobs=True)
    stream._feed("Once", [7], [TokenLogprob("Once", -0.25, (("Once", -0.25), ("In", -1.5)))])
    first = feed.delta()
    assert first["type"] == "delta" and first["column"] == 1 and first["text"] == "Once"
    assert first["tokens"] == [["Once", -0.25, [["Once", -0.25], ["In", -1.5]]]] and "1 tokens" in first["status"]
    assert feed.delta() is None  # nothing changed: nothing to send
    stream._feed(" upon", [8], [TokenLogprob(" upon", -0.125)])
    assert feed.delta()["text"] == " upon"
    stream._finish("length")
    last = feed.delta()
    assert last["text"] == "" and "finish: length" in last["status"]
    done = feed.done()
    assert done == {**done, "type": "done", "column": 1, "finish": "length", "error": False, "note": None}
    result = feed.result("greedy")
    assert result["text"] == "Once upon" and result["title"] == "greedy" and len(result["tokens"]) == 2


def test_a_repaint_costs_the_same_early_and_late_in_a_long_answer():
    # Kernel CPU per repaint must not grow with the answer: the feed reads only the new pieces.
    from vstream.panel.feed import ColumnFeed

    def cost_of_a_repaint_after(tokens: int) -> float:
        stream = _stream(logprobs=True)
        feed = ColumnFeed(stream, 0, logprobs=True)
        alternatives = tuple((f"alt{i}", -1.0 - i) for i in range(5))
        for i in range(tokens):
            stream._feed(f" word{i}", [i], [TokenLogprob(f" word{i}", -0.5, alternatives)])
        feed.delta()
        best = float("inf")
        for i in range(200):  # the best of many: the machine is shared
            stream._feed(" more", [i], [TokenLogprob(" more", -0.5, alternatives)])
            start = time.perf_counter()
            message = feed.delta()
            best = min(best, time.perf_counter() - start)
            assert message["text"] == " more" and len(message["tokens"]) == 1
        return best

    early, late = cost_of_a_repaint_after(100), cost_of_a_repaint_after(20_000)
    print(f"\nrepaint after 100 tokens: {early * 1e6:.1f} µs; after 20,000: {late * 1e6:.1f} µs")
    assert late < 3 * early + 20e-6  # whole-answer work would be ~200x


def test_a_thinking_stream_sends_its_reasoning_and_the_title_as_it_changes():
    from vstream.panel.feed import ColumnFeed

    stream = Stream("req-1", "Think.", [1], {"reasoning": True})
    feed = ColumnFeed(stream, 0, logprobs=False)
    stream._feed("<think>hmm", [1, 2], None)
    first = feed.delta()
    assert first["reasoning"] == "hmm" and first["thinking"].startswith("Thinking…") and first["text"] == ""
    stream._feed(" the sea", [3], None)
    assert feed.delta()["reasoning"] == " the sea"
    stream._feed("</think>Blue.", [4], None)
    stream._finish("stop")
    last = feed.delta()
    assert last["text"] == "Blue." and last["thinking"].startswith("Thought for")


# --- the column settings, from code ------------------------------------------------------------------


def test_column_forms_round_trip_settings_from_the_option_table():
    from vstream.panel.controls import COLUMN_NAMES, control_specs, form_settings, form_value, form_with, start_form

    form = start_form({"temperature": 0.3, "stop": ["\n\n", "a,b"], "seed": 7, "choice": ["yes", "no"]})
    assert form["stop"] == "\\n\\n, a\\,b" and form["seed"] == 7 and form["output_format"] == "choice"
    settings = form_settings(form)
    assert settings["stop"] == ["\n\n", "a,b"] and settings["choice"] == ["yes", "no"] and settings["seed"] == 7
    assert form_value(form, "regex") is None and form_value(form, "temperature") == 0.3
    assert form_settings(form_with(form, {"choice": None, "seed": None})).keys().isdisjoint({"choice", "seed"})
    with pytest.raises(KeyError, match="'logprobs' is not a setting of a panel column; known: temperature"):
        form_with(form, {"logprobs": 3})
    names = [spec["name"] for spec in control_specs()]
    assert names[: len(names) - 1] == [
        n for n in COLUMN_NAMES if n not in ("json_schema", "regex", "choice", "grammar")
    ]
    assert names[-1] == "output_format"  # one control for every structured-output row


# --- the panel over an engine that is starting, failed or ready --------------------------------------


class StandInHost:
    """Just enough of EngineHost for the panel: a state, listeners, wait_ready, and submissions
    recorded (a request it gets ends at once with no text), so a test can count them."""

    info = None  # what a host that is not ready has

    def __init__(self, state: str, error: str | None = None) -> None:
        self._state, self.error = state, error
        self.listeners: list[Any] = []
        self.started = time.perf_counter()
        self.submitted: list[dict[str, Any]] = []

    def status(self) -> EngineStatus:
        return EngineStatus(self._state, time.perf_counter() - self.started, "loading weights", None, self.error)

    @property
    def state(self) -> str:
        return self._state

    def add_listener(self, callback: Any) -> Any:
        self.listeners.append(callback)
        return lambda: self.listeners.remove(callback)

    def wait_ready(self, timeout: float | None = None) -> None:
        if self._state == "failed":
            raise EngineStartError(self.error or "failed")
        if self._state == "ready":
            return
        time.sleep(timeout or 0)
        raise TimeoutError("still starting")

    def stream_many(self, requests: Any) -> list[Stream]:  # what the panel calls
        self.submitted += list(requests)
        streams = [Stream(f"req-{len(self.submitted)}-{i}", "p", [1], dict(r)) for i, r in enumerate(requests)]
        for stream in streams:
            stream._finish("length")
        return streams


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


def _press(panel: Any, action: str, **content: Any) -> None:
    panel._handle_custom_msg({"action": action, **content}, [])


def test_a_failed_engine_shows_its_reason_and_generate_says_why(panel_over):
    host = StandInHost("failed", "model 'nope' not found: <check the name>")
    panel = panel_over(host)
    assert panel.engine_status["text"] == "engine failed: model 'nope' not found: <check the name>"  # shown as text
    _press(panel, "generate")
    panel.wait(5)
    assert "not found" in panel.error
    assert not panel.running and host.submitted == []


def test_while_the_engine_starts_the_panel_waits_counts_seconds_and_can_be_stopped(panel_over):
    host = StandInHost("starting")
    panel = panel_over(host)
    first = panel.engine_status["text"]
    assert "engine starting (loading weights, 0 s)" in first
    time.sleep(1.3)
    assert panel.engine_status["text"] != first  # the elapsed time ticks without any engine event

    _press(panel, "generate")
    deadline = time.monotonic() + 5
    while "waiting for the engine to start…" not in panel.notes:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert panel.running
    _press(panel, "stop")
    panel.wait(5)
    assert panel.notes == ["stopped before the engine was ready"]
    assert not panel.running and host.submitted == []  # stream_many was never called

    # The same host once ready: the same click submits, which the count above would have shown.
    host._state = "ready"
    _press(panel, "generate")
    panel.wait(5)
    assert len(host.submitted) == 1 and host.submitted[0]["prompt"] == "hello" and panel.notes == [""]
    assert panel.results[0]["request_id"] == panel.streams[0].request_id


def test_engine_events_from_another_thread_update_the_status(panel_over):
    host = StandInHost("starting")
    panel = panel_over(host)
    host._state, host.error = "failed", "boom"
    thread = threading.Thread(target=lambda: [cb(host.status()) for cb in host.listeners])
    thread.start()
    thread.join()
    assert panel.engine_status["text"] == "engine failed: boom" and panel.engine_status["tone"] == "error"


def test_bad_constructor_values_are_refused_at_once(panel_over):
    with pytest.raises(SamplingError, match="temperature"):
        panel_over(StandInHost("starting"), temperature=-1)
    with pytest.raises(ValueError, match="columns"):
        panel_over(StandInHost("starting"), columns=5)
    with pytest.raises(ValueError, match=r"logprobs must be an integer in \[0, 20\]"):
        panel_over(StandInHost("starting"), logprobs=99)


def test_compare_columns_can_be_added_and_removed(panel_over):
    panel = panel_over(StandInHost("starting"), temperature=0.4)
    panel.column_count = 3  # what the columns menu in the front end sets
    assert [c.preset for c in panel.columns] == ["", "greedy", "creative"]
    assert panel.columns[0].temperature == 0.4 and panel.columns[1].temperature == 0.0
    panel.column_count = 1
    assert len(panel.columns) == 1 and len(panel.forms) == 1 and len(panel.results) == 1
    panel.columns[0].temperature = 0.0
    assert "--temperature 0 " in panel.exported("%%vstream") and "temperature=0," in panel.exported("Python")


def test_column_settings_read_and_set_from_code_name_what_is_wrong(panel_over):
    panel = panel_over(StandInHost("starting"), columns=2)
    column = panel.columns[0]
    column.settings["temperature"] = 0.2
    column.settings.update(top_p=0.9, stop=["\n\n"], regex="[a-z]+")
    assert (column.temperature, column.top_p, column.stop, column.regex) == (0.2, 0.9, ["\n\n"], "[a-z]+")
    assert dict(column.settings)["temperature"] == 0.2 and panel.forms[0]["stop"] == "\\n\\n"
    del column.settings["regex"]
    assert column.regex is None
    column.preset = "greedy"
    assert column.temperature == 0.0 and column.preset == "greedy"
    with pytest.raises(KeyError, match="not a setting of a panel column"):
        column.settings["temprature"] = 1.0
    with pytest.raises(AttributeError, match="no setting 'temprature'"):
        column.temprature = 1.0
    with pytest.raises(KeyError, match="no preset named 'nope'"):
        column.preset = "nope"
    column.top_p = 0.0  # accepted as typed, refused with its range when it would be sent
    with pytest.raises(SamplingError, match=r"top_p must be a number in \(0, 1\]"):
        column.sampling()


def test_the_front_end_ships_inside_the_package():
    # No build step: anywidget reads panel.js and panel.css beside the module, and the wheel
    # (hatch's packages = ["src/vstream"]) carries every file under the package folder.
    from pathlib import Path

    from vstream.panel.widget import HERE, Panel

    for name in ("panel.js", "panel.css"):
        assert (HERE / name).is_file()
    assert str(Panel._esm) == (HERE / "panel.js").read_text() and "export default" in str(Panel._esm)
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '[tool.hatch.build.targets.wheel]\npackages = ["src/vstream"]' in pyproject
