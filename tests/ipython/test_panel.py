"""vstream.Panel on the real engine: what a user sees after clicking its buttons.

Buttons are pressed with ``button.click()`` (what a click in the browser ends up calling);
widget messages are counted with a recording comm (the idea of ipywidgets' own DummyComm).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from schemas import PERSON

pytest.importorskip("ipywidgets")

from vstream.panel import Panel
from vstream.panel_presets import PresetStore
from vstream.render import escape
from vstream.testing import MessageLog, record_widget_messages

FRANCE = "What is the capital of France?"
LONG = {"ignore_eos": True, "max_tokens": 200}


@pytest.fixture
def comm_log() -> Iterator[MessageLog]:
    with record_widget_messages() as log:
        yield log


@pytest.fixture
def make_panel(idle_host, tmp_path):
    panels: list[Panel] = []
    store = PresetStore(tmp_path / "presets.json")

    def make(prompt: str = FRANCE, **kwargs: Any) -> Panel:
        panel = Panel(prompt, host=idle_host, presets=kwargs.pop("presets", store), **kwargs)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()
        panel.wait(10)


def generate(panel: Panel, timeout: float = 120) -> Panel:
    panel.generate.click()
    return panel.wait(timeout)


def test_generate_streams_into_the_output_and_ends_with_the_engines_text(make_panel):
    panel = make_panel(chat=True, temperature=0.0, max_tokens=40)
    seen: list[str] = []
    panel.columns[0].output.observe(lambda change: seen.append(change["new"]), "value")
    generate(panel)

    stream = panel.streams[0]
    assert stream.finish_reason == "stop"
    assert "Paris" in stream.text
    final = panel.columns[0].output.value
    assert final == seen[-1]
    assert f">{escape(stream.text)}<" in final  # the engine's text, whole, as the last paint
    assert "finish: stop" in final and "TTFT" in final and "tok/s" in final
    assert not panel.running and not panel.generate.disabled and panel.stop.disabled
    assert panel.error.value == ""


def test_widget_messages_stay_within_the_rate_bound(comm_log, make_panel):
    panel = make_panel("Count from one to one hundred:", temperature=0.0, **LONG)
    output_id = panel.columns[0].output.comm.comm_id
    start = time.perf_counter()
    generate(panel)
    duration = time.perf_counter() - start
    stream = panel.streams[0]
    assert stream.metrics.tokens == 200 and stream.finish_reason == "length"

    sent = [m for m in comm_log.messages if m.t >= start]
    updates = [m for m in sent if m.comm_id == output_id]
    bound = 20 * duration + 10
    print(
        f"\n200 tokens in {duration:.2f} s: {len(sent)} comm messages in all, "
        f"{len(updates)} to the output (bound {bound:.0f})"
    )
    assert len(sent) <= bound
    assert (
        3 <= len(updates) <= 20 * duration + 2
    )  # it streamed, at ≤ 20 paints/s, plus the final one
    assert escape(stream.text) in updates[-1].state["value"]


def test_stop_aborts_the_request_in_the_engine_and_keeps_the_partial_text(idle_host, make_panel):
    panel = make_panel("Tell me a long story about a dragon.", ignore_eos=True, max_tokens=2000)
    panel.generate.click()
    deadline = time.monotonic() + 120
    while not (panel.streams and panel.streams[0].metrics.tokens >= 10):
        assert time.monotonic() < deadline, "no tokens arrived"
        time.sleep(0.02)

    panel.stop.click()
    stopped = time.monotonic()
    while idle_host.unfinished_requests() != 0:
        assert time.monotonic() - stopped < 1.0, "the engine still holds the request 1 s after Stop"
        time.sleep(0.02)
    panel.wait(10)

    stream = panel.streams[0]
    assert stream.finish_reason == "cancelled"
    assert 10 <= stream.metrics.tokens < 2000
    assert stream.text and escape(stream.text) in panel.columns[0].output.value
    assert "finish: cancelled" in panel.columns[0].output.value
    assert not panel.generate.disabled and panel.stop.disabled


def test_generate_twice_starts_one_request(idle_host, make_panel):
    panel = make_panel(temperature=0.0, max_tokens=30)
    panel.generate.click()
    panel.generate.click()  # a double click, or a click while it runs
    panel.wait(120)
    assert len(panel.streams) == 1
    assert panel.streams[0].finish_reason in ("stop", "length")
    assert idle_host.unfinished_requests() == 0


def test_compare_mode_streams_its_columns_concurrently(make_panel):
    panel = make_panel("Write a haiku about the sea.", columns=3, ignore_eos=True, max_tokens=40)
    assert [c.controls.preset.value for c in panel.columns] == ["(custom)", "greedy", "creative"]
    generate(panel)

    streams = panel.streams
    assert len(streams) == 3 and all(s.metrics.tokens == 40 for s in streams)
    intervals = [(s.metrics.submitted_at, s.metrics.finished_at) for s in streams]
    # Every pair of [submitted, finished] intervals overlaps: all ran at the same time.
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)
    assert max(s.metrics.first_token_at for s in streams) < min(end for _, end in intervals)
    assert streams[1].sampling["temperature"] == 0.0  # column 2 used its own (greedy) settings
    for column, stream in zip(panel.columns, streams, strict=True):
        assert escape(stream.text) in column.output.value


def test_a_click_starts_no_thread_so_panels_clicked_together_stream_together(make_panel, idle_host):
    # Starting a thread per click blocked the click until the new thread got the GIL: with an
    # engine busy beside it, the second of two panels sent its requests 6-180 ms after the first.
    panels = [make_panel("Write a haiku about the sea.", ignore_eos=True, max_tokens=30) for _ in range(2)]
    threads = threading.active_count()
    for panel in panels:
        panel.generate.click()
    assert threading.active_count() == threads  # each panel's worker was waiting already
    first, second = (panel.wait(120).streams[0] for panel in panels)
    assert first.metrics.tokens == second.metrics.tokens == 30
    assert second.metrics.submitted_at < first.metrics.finished_at  # they ran side by side
    closed = threading.active_count()
    for panel in panels:
        panel.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > closed - 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == closed - 2  # close() ends the panel's worker


def test_an_idle_panel_lets_its_worker_go_and_the_next_click_starts_one(make_panel, monkeypatch):
    import vstream.panel

    monkeypatch.setattr(vstream.panel, "WORKER_IDLE_S", 0.2)
    threads = threading.active_count()
    panel = make_panel("Hello", max_tokens=3)  # its worker waits with the patched timeout
    deadline = time.monotonic() + 5
    while threading.active_count() >= threads + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads  # a panel left open keeps no thread
    generate(panel)
    assert panel.streams[0].metrics.tokens == 3
    assert escape(panel.streams[0].text) in panel.columns[0].output.value


@pytest.mark.parametrize(
    ("control", "value", "message"),
    [
        ("top_p", 0.0, "top_p must be"),
        ("max_tokens", 0, "max_tokens must be"),
        ("top_k", -5, "top_k must be"),
    ],
)
def test_a_bad_value_shows_an_error_and_the_engine_still_serves(
    idle_host, make_panel, control, value, message
):
    panel = make_panel(chat=True, temperature=0.0, max_tokens=20)
    getattr(panel.columns[0].controls, control).value = value
    panel.generate.click()
    assert message in panel.error.value
    assert panel.streams == [] and not panel.running and not panel.generate.disabled

    getattr(panel.columns[0].controls, control).value = {
        "top_p": 0.9,
        "max_tokens": 20,
        "top_k": -1,
    }[control]
    panel.prompt.value = FRANCE  # chat mode gave the prompt back after the error... or kept it
    generate(panel)
    assert panel.error.value == ""
    assert panel.streams[0].finish_reason in ("stop", "length") and panel.streams[0].text


def test_an_error_from_the_engine_side_shows_in_the_panel(make_panel):
    panel = make_panel(max_tokens=10**6)  # passes the local check, exceeds the model's context
    generate(panel)
    assert "max_tokens must be ≤" in panel.error.value
    assert not panel.running and not panel.generate.disabled


def test_chat_keeps_history_escaped_and_sends_it_with_the_next_turn(make_panel):
    panel = make_panel(
        '<img src=x onerror="alert(1)"> say hi', chat=True, temperature=0.0, max_tokens=20
    )
    generate(panel)
    history = panel.history_view.value
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; say hi" in history
    assert "<img" not in history
    assert panel.prompt.value == "" and panel.history.turns == 1

    first_answer = panel.streams[0].text
    panel.prompt.value = FRANCE
    generate(panel)
    assert panel.history.turns == 2
    sent = panel.streams[0].prompt
    assert "say hi" in sent and first_answer.strip() in sent and FRANCE in sent

    panel.show_prompt.value = True
    assert "&lt;|im_start|&gt;" in panel.rendered.value  # the chat template, shown literally
    assert "<|im_start|>" not in panel.rendered.value

    panel.clear.click()
    assert (
        panel.history.turns == 0
        and panel.history_view.value == ""
        and panel.columns[0].output.value == ""
    )


def test_logprob_view_colours_tokens_and_lists_alternatives(make_panel):
    panel = make_panel(chat=True, temperature=0.0, max_tokens=8, ignore_eos=True, logprobs=3)
    generate(panel)
    html = panel.columns[0].output.value
    assert html.count('class="vstream-token"') == 8
    assert "title=" in html and "%" in html
    assert len(panel.streams[0].logprobs[0].top) >= 3


def test_the_python_export_reproduces_the_panels_answer(make_panel):
    panel = make_panel("The three primary colours are", max_tokens=25)
    panel.columns[0].controls.seed_mode.value = "fixed"
    panel.columns[0].controls.seed.value = 1234
    generate(panel)
    code = panel.exported("Python")
    assert "seed=1234" in code and "temperature=0.8" in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<export>", "exec"), {})
    assert out.getvalue() == panel.streams[0].text + "\n"

    cell = panel.exported("%%vstream")
    assert cell.startswith("%%vstream --temperature 0.8 --top-p 0.95 --max-tokens 25 --seed 1234\n")


def test_random_seed_mode_records_the_seed_it_drew(make_panel):
    panel = make_panel(max_tokens=10)
    generate(panel)
    drawn = panel.streams[0].sampling["seed"]
    assert panel.columns[0].controls.seed.value == drawn
    assert f"seed={drawn}" in panel.exported("Python")


def test_the_kernel_thread_stays_free_while_a_panel_streams(make_panel):
    panel = make_panel("Count from one to one hundred:", temperature=0.0, **LONG)
    paints: list[float] = []
    panel.columns[0].output.observe(lambda change: paints.append(time.perf_counter()), "value")
    t0 = time.perf_counter()
    panel.generate.click()
    click_s = time.perf_counter() - t0
    assert click_s < 0.5  # the click handler returns at once
    assert threading.current_thread() is threading.main_thread()
    blocked_from = time.perf_counter()
    time.sleep(2.0)  # a cell that blocks the main thread
    during = [t for t in paints if blocked_from <= t <= blocked_from + 2.0]
    panel.wait(120)
    print(
        f"\nclick returned in {click_s * 1000:.0f} ms; "
        f"{len(during)} paints while the main thread slept 2 s"
    )
    assert len(during) >= 5  # a frozen panel would paint none


def test_status_line_shows_the_ready_engine(idle_host, make_panel):
    panel = make_panel()
    assert "engine ready" in panel.status.value
    assert idle_host.info.model.split("/")[-1] in panel.status.value
    assert repr(panel).startswith("<vstream.Panel 1 column(s), idle")
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_presets_apply_and_user_presets_are_shared_between_panels(make_panel, tmp_path):
    first, second = make_panel(), make_panel()
    controls = first.columns[0].controls
    controls.preset.value = "greedy"
    assert controls.temperature.value == 0.0 and controls.top_p.value == 1.0
    controls.temperature.value = 0.3
    assert controls.preset.value == "(custom)"  # edited values no longer match the name
    controls.preset_name.value = "mine"
    controls.save.click()
    assert "mine" in second.columns[0].controls.preset.options
    second.columns[0].controls.preset.value = "mine"
    assert second.columns[0].controls.temperature.value == 0.3
    assert PresetStore(tmp_path / "presets.json").get("mine")["temperature"] == 0.3


def test_an_instruction_without_chat_that_ends_at_once_says_so_and_suggests_chat(make_panel):
    panel = make_panel("Write a short poem about the sea.", temperature=0.0, max_tokens=20)
    generate(panel)
    stream = panel.streams[0]
    assert stream.text == "" and stream.metrics.tokens == 1
    shown = panel.columns[0].output.value
    assert "vstream-empty-answer" in shown and "try chat mode (tick the chat box)" in shown
    panel.chat.value = True
    generate(panel)
    assert panel.streams[0].text.strip()
    assert "vstream-empty-answer" not in panel.columns[0].output.value



def test_the_output_format_control_gives_json_that_fits_the_schema_in_every_column(make_panel):
    jsonschema = pytest.importorskip("jsonschema")
    import json

    panel = make_panel("Describe a person.", chat=True, columns=4, temperature=0.7, max_tokens=120)
    for column in panel.columns:
        column.controls.apply({"temperature": 0.7})
        column.controls.output_format.value = "json_schema"
        column.controls.format_spec.value = json.dumps(PERSON)
    answers = []
    # Fixed seeds: with vLLM's default (any whitespace in JSON) the model loops on newlines until
    # max_tokens in ~6 % of answers (4 of 64 measured); an engine with
    # engine_args={"structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True}}
    # gave 64 of 64.
    for seeds in ((1, 2, 3, 4), (5, 6, 7, 8)):
        for column, seed in zip(panel.columns, seeds, strict=True):
            column.controls.apply({"seed": seed})
        generate(panel)
        answers += [stream.json() for stream in panel.streams]
    for answer in answers:
        jsonschema.validate(answer, PERSON)
    print(f"\n{len(answers)}/8 panel JSON answers validated")
    # Exported, presets: the constraint goes along.
    assert "json_schema={" in panel.exported("Python") and "--json-schema '{" in panel.exported("%%vstream")
    controls = panel.columns[0].controls
    controls.preset_name.value = "person-json"
    controls.save.click()
    assert panel.store.get("person-json")["json_schema"]
    other = make_panel("Describe a person.", chat=True)
    other.columns[0].controls.preset.value = "person-json"
    assert other.columns[0].controls.output_format.value == "json_schema"
    assert json.loads(other.columns[0].controls.format_spec.value) == PERSON


def test_regex_and_choice_formats_in_the_panel(make_panel):
    panel = make_panel("Pick one.", chat=True, columns=2, temperature=0.7)
    first, second = (column.controls for column in panel.columns)
    first.output_format.value, first.format_spec.value = "regex", r"[A-Z][a-z]{2,8}!"
    second.output_format.value, second.format_spec.value = "choice", r"red, green, dark\, blue"
    generate(panel)
    import re

    assert re.fullmatch(r"[A-Z][a-z]{2,8}!", panel.streams[0].text)
    assert panel.streams[1].text in ("red", "green", "dark, blue")


def test_a_bad_schema_in_the_panel_is_an_error_naming_it_and_nothing_runs(make_panel, idle_host):
    panel = make_panel("Describe a person.", chat=True)
    panel.columns[0].controls.output_format.value = "json_schema"
    panel.columns[0].controls.format_spec.value = '{"type": "objekt"}'
    generate(panel)
    assert "json_schema is not a valid JSON schema" in panel.error.value
    assert idle_host.unfinished_requests() == 0 and not panel.streams


def test_reasoning_in_the_panel_shows_a_collapsible_thinking_block(make_panel):
    panel = make_panel("Think about the sea, then name a colour.", chat=True, temperature=0.7, max_tokens=80)
    controls = panel.columns[0].controls
    controls.reasoning.value = True
    controls.output_format.value = "regex"
    controls.format_spec.value = r"<think>[a-z ]{8,60}</think>[A-Za-z ]{3,40}"
    generate(panel)
    stream = panel.streams[0]
    shown = panel.columns[0].output.value
    assert stream.reasoning and '<details class="vstream-thinking"' in shown and "Thought for" in shown
    assert escape(stream.reasoning.strip()) in shown
    panel.show_thinking.value = False  # repaints at once
    hidden = panel.columns[0].output.value
    assert "Thought for" in hidden and escape(stream.reasoning.strip()) not in hidden
    assert panel.history.messages[-1]["content"] == stream.text  # the chat keeps the answer, not the thinking
    assert "reasoning=True" in panel.exported("Python") and "--reasoning on" in panel.exported("%%vstream")
