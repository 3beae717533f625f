"""vstream.Panel on the real engine: what a user sees after pressing its buttons, and what code can do.

The buttons live in the widget's front end, which sends ``{"action": "generate"}`` and the like
to the kernel; ``press(panel, ...)`` delivers that message as the comm would
(``_handle_custom_msg``). What the front end is sent is recorded by a recording comm (the idea
of ipywidgets' own DummyComm): deltas while it streams, then the final ``results``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from in_flight import InFlight
from schemas import PERSON

pytest.importorskip("anywidget")

from vstream.errors import SamplingError, VStreamError
from vstream.panel import Panel, PresetStore
from vstream.panel.feed import payload_bytes
from vstream.render import escape
from vstream.testing import MessageLog, json_bytes, record_widget_messages

FRANCE = "What is the capital of France?"
LONG = {"ignore_eos": True, "max_tokens": 200}


@pytest.fixture
def comm_log() -> Iterator[MessageLog]:
    with record_widget_messages() as log:
        yield log


@pytest.fixture
def make_panel(idle_host, tmp_path, comm_log):
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


def press(panel: Panel, action: str, **content: Any) -> None:
    """What a click in the browser sends: a custom message, handled as the comm hands it over."""
    panel._handle_custom_msg({"action": action, **content}, [])


def edit_in_browser(panel: Panel, index: int, **changes: Any) -> None:
    """What the front end does when a control of column ``index`` changes: a new forms state."""
    forms = [dict(form) for form in panel.forms]
    forms[index] = {**forms[index], **changes, "preset": ""}
    panel.set_state({"forms": forms})


def generate(panel: Panel, timeout: float = 120) -> Panel:
    press(panel, "generate")
    return panel.wait(timeout)


def shown(log: MessageLog, column: int = 0) -> str:
    """The text the front end was sent for a column since the last generation started."""
    contents = log.custom()
    starts = [i for i, c in enumerate(contents) if c["type"] == "start"]
    since = contents[starts[-1] :] if starts else contents
    return "".join(c["text"] for c in since if c["type"] == "delta" and c["column"] == column)


def test_generate_streams_deltas_into_the_column_and_ends_with_the_engines_text(make_panel, comm_log):
    panel = make_panel(chat=True, temperature=0.0, max_tokens=40)
    generate(panel)

    stream = panel.streams[0]
    assert stream.finish_reason == "stop"
    assert "Paris" in stream.text
    assert shown(comm_log) == stream.text  # the deltas add up to the engine's text, each only what was new
    result = panel.results[0]
    assert result["text"] == stream.text and result["request_id"] == stream.request_id
    assert "finish: stop" in result["status"] and "TTFT" in result["status"] and "tok/s" in result["status"]
    done = comm_log.custom("done")
    assert len(done) == 1 and done[0]["status"] == result["status"]
    assert not panel.running and panel.error == ""


def test_widget_messages_stay_within_the_rate_bound(comm_log, make_panel):
    panel = make_panel("Count from one to one hundred:", temperature=0.0, **LONG)
    comm_id = panel.comm.comm_id
    start = time.perf_counter()
    generate(panel)
    duration = time.perf_counter() - start
    stream = panel.streams[0]
    assert stream.metrics.tokens == 200 and stream.finish_reason == "length"

    sent = [m for m in comm_log.of(comm_id) if m.t >= start]
    deltas = [m.content for m in sent if m.content is not None and m.content["type"] == "delta"]
    bound = 20 * duration + 10
    print(
        f"\n200 tokens in {duration:.2f} s: {len(sent)} comm messages in all, {len(deltas)} deltas (bound {bound:.0f})"
    )
    assert len(sent) <= bound
    # It streamed, at ≤ 20 paints/s, plus what falls outside that cadence (as for the magic): the
    # first paint, the first token's (at once), the final one, and one for where the ticks fall
    # against the measured duration (78 deltas in 3.84 s passed +2 by 0.8). One per token: 200.
    assert 3 <= len(deltas) <= 20 * duration + 5
    assert "".join(d["text"] for d in deltas) == stream.text


def test_final_answers_are_kept_in_the_widget_state_once_at_the_end(comm_log, make_panel):
    panel = make_panel("Count from one to one hundred:", temperature=0.0, ignore_eos=True, max_tokens=60)
    comm_id = panel.comm.comm_id
    comm_log.clear()
    generate(panel)
    updates = [m.state["results"] for m in comm_log.of(comm_id) if "results" in m.state]
    assert len(updates) == 1  # synced once, not per delta
    assert updates[0][0]["text"] == panel.streams[0].text and "finish: length" in updates[0][0]["status"]
    # ... so a saved notebook's widget state holds it, and the static fallback shows it too.
    assert panel.get_state()["results"][0]["text"] == panel.streams[0].text
    html = panel._repr_mimebundle_()[0]["text/html"]
    assert escape(panel.streams[0].text) in html and "finish: length" in html


def test_a_displayed_panel_has_a_static_card_that_ends_with_the_final_answer(shell, make_panel):
    """The card beside the widget is what a saved notebook shows without widget state (and what
    nbconvert and GitHub show): it is brought up to date when an answer ends, and on Clear."""
    from IPython.display import display

    panel = make_panel("Say <b>hi</b> to Paris:", temperature=0.0, ignore_eos=True, max_tokens=24)
    shell.recorder.messages.clear()
    display(panel)
    widget, card = shell.recorder.messages
    assert "application/vnd.jupyter.widget-view+json" in widget["data"] and "text/html" not in widget["data"]
    card_id = card["transient"]["display_id"]
    assert not card["update"] and "vstream-panel-static" in card["data"]["text/html"]
    assert "Say &lt;b&gt;hi&lt;/b&gt; to Paris:" in card["data"]["text/html"]  # the prompt, as text

    generate(panel)
    stream = panel.streams[0]
    updates = [m for m in shell.recorder.for_display(card_id) if m["update"]]
    assert len(updates) == 1  # once, at the end: never per delta
    final = updates[0]["data"]
    assert escape(stream.text) in final["text/html"] and "finish: length" in final["text/html"]
    assert stream.text.strip() in final["text/plain"]
    assert "<b>" not in final["text/html"]  # the prompt's markup stays text

    press(panel, "clear")
    cleared = [m for m in shell.recorder.for_display(card_id) if m["update"]][-1]["data"]
    assert escape(stream.text) not in cleared["text/html"] and "finish:" not in cleared["text/html"]


@pytest.mark.slow
def test_a_1000_token_logprob_answer_costs_under_five_times_its_payload_in_the_panel_and_the_magic(
    shell, comm_log, make_panel
):
    # Before the deltas each repaint re-sent the whole card: 278x the payload for 400 tokens.
    # Both paths at once, in one engine batch: the panel's worker streams while the magic's cell
    # runs (on two cores, one 1,000-token answer takes about a minute).
    comm_log.clear()
    shell.recorder.messages.clear()
    panel = make_panel("Tell me a story:", ignore_eos=True, max_tokens=1000, logprobs=5)
    press(panel, "generate")
    shell.run_cell_magic("vstream", "--logprobs 5 --max-tokens 1000 --ignore-eos --out big", "Tell me a story:")
    panel.wait(600)
    answers = {"panel": panel.streams[0], "magic": shell.user_ns["big"]}
    mine = panel.comm.comm_id
    sent = {
        "panel": comm_log.bytes(mine),
        # the magic: its live view's widget messages, then its display messages (the static answer)
        "magic": sum(m.nbytes for m in comm_log.messages if m.comm_id != mine)
        + sum(json_bytes(m["data"]) for m in shell.recorder.messages),
    }
    deltas = [m.content for m in comm_log.of(mine) if m.content and m.content.get("type") == "delta"]
    assert sum(len(d.get("tokens", [])) for d in deltas) == 1000
    for path, stream in answers.items():
        assert stream.metrics.tokens == 1000 and len(stream.logprobs[0].top) >= 5, path
        payload = payload_bytes(stream)
        print(f"\n{path}, 1,000 tokens with 5 alternatives: payload {payload:,} B; sent {sent[path]:,} B"
              f" → {sent[path] / payload:.2f}x")  # fmt: skip
        assert sent[path] <= 5 * payload, path
    assert answers["panel"].metrics.first_token_at < answers["magic"].metrics.finished_at  # they overlapped


def test_stop_aborts_the_request_in_the_engine_and_keeps_the_partial_text(idle_host, make_panel, comm_log):
    panel = make_panel("Tell me a long story about a dragon.", ignore_eos=True, max_tokens=2000)
    press(panel, "generate")
    deadline = time.monotonic() + 120
    while not (panel.streams and panel.streams[0].metrics.tokens >= 10):
        assert time.monotonic() < deadline, "no tokens arrived"
        time.sleep(0.02)

    press(panel, "stop")
    stopped = time.monotonic()
    while idle_host.unfinished_requests() != 0:
        assert time.monotonic() - stopped < 1.0, "the engine still holds the request 1 s after Stop"
        time.sleep(0.02)
    panel.wait(10)

    stream = panel.streams[0]
    assert stream.finish_reason == "cancelled"
    assert 10 <= stream.metrics.tokens < 2000
    assert stream.text and shown(comm_log) == stream.text == panel.results[0]["text"]
    assert "finish: cancelled" in panel.results[0]["status"]
    assert not panel.running


def test_generate_runs_with_the_settings_its_click_carries(make_panel):
    """The browser may hold a state update back while Generate (a custom message) goes at once:
    seen in Voila as a system prompt typed just before the click that the run did not have."""
    panel = make_panel("stale prompt", chat=True, temperature=0.0, max_tokens=8)
    forms = [dict(form) for form in panel.forms]
    forms[0] = {**forms[0], "max_tokens": 3, "preset": ""}
    settings = {"prompt": "What is the capital of France?", "system": "Answer in one word.", "forms": forms}
    press(panel, "generate", settings=settings)
    panel.wait(120)
    stream = panel.streams[0]
    # The chat template's prompt: the carried system prompt and question, not the kernel's stale one.
    assert "Answer in one word." in stream.prompt and "What is the capital of France?" in stream.prompt
    assert "stale" not in stream.prompt and 1 <= stream.metrics.tokens <= 3
    assert panel.system == "Answer in one word."  # (chat mode empties the prompt box after a turn)


def test_generate_twice_starts_one_request(idle_host, make_panel):
    panel = make_panel(temperature=0.0, max_tokens=30)
    press(panel, "generate")
    press(panel, "generate")  # a double click, or a click while it runs
    with pytest.raises(VStreamError, match="generating already"):
        panel.run()  # code is told
    panel.wait(120)
    assert len(panel.streams) == 1 and panel.error == ""
    assert panel.streams[0].finish_reason in ("stop", "length")
    assert idle_host.unfinished_requests() == 0


def test_run_returns_the_streams_and_code_sets_the_settings(make_panel):
    panel = make_panel("The sky is", columns=2, ignore_eos=True, max_tokens=12)
    panel.prompt = "The sea is"
    panel.columns[0].settings["temperature"] = 0.0
    panel.columns[1].max_tokens = 6
    assert panel.columns[1].preset == ""  # set by hand: no longer the greedy preset
    streams = panel.run()
    assert [s.request_id for s in streams] == [s.request_id for s in panel.streams]
    panel.wait(120)
    assert [s.metrics.tokens for s in streams] == [12, 6]
    assert streams[0].sampling["temperature"] == 0.0 and "The sea is" in streams[0].prompt
    panel.columns[0].settings["top_p"] = 0.0
    with pytest.raises(SamplingError, match=r"column 1: top_p must be a number in \(0, 1\]"):
        panel.run()


def test_compare_mode_streams_its_columns_concurrently(make_panel, comm_log):
    panel = make_panel("Write a haiku about the sea.", columns=3, ignore_eos=True, max_tokens=40)
    assert [c.preset for c in panel.columns] == ["", "greedy", "creative"]
    with InFlight(panel.host) as seen:
        generate(panel)

    streams = panel.streams
    assert len(streams) == 3 and all(s.metrics.tokens == 40 for s in streams)
    intervals = [(s.metrics.submitted_at, s.metrics.finished_at) for s in streams]
    # Every pair of [submitted, finished] intervals overlaps: all ran at the same time.
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)
    assert seen.peak == 3
    assert streams[1].sampling["temperature"] == 0.0  # column 2 used its own (greedy) settings
    for i, stream in enumerate(streams):
        assert shown(comm_log, i) == stream.text == panel.results[i]["text"]
    assert [r["title"] for r in panel.results] == ["column 1", "greedy", "creative"]


def test_a_click_starts_no_thread_so_panels_clicked_together_stream_together(make_panel, idle_host):
    # Starting a thread per click blocked the click until the new thread got the GIL: with an
    # engine busy beside it, the second of two panels sent its requests 6-180 ms after the first.
    panels = [make_panel("Write a haiku about the sea.", ignore_eos=True, max_tokens=30) for _ in range(2)]
    threads = threading.active_count()
    for panel in panels:
        press(panel, "generate")
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


def test_an_idle_panel_lets_its_worker_go_and_the_next_click_starts_one(make_panel, monkeypatch, comm_log):
    import vstream.panel.widget

    monkeypatch.setattr(vstream.panel.widget, "WORKER_IDLE_S", 0.2)
    threads = threading.active_count()
    panel = make_panel("Hello", max_tokens=3)  # its worker waits with the patched timeout
    deadline = time.monotonic() + 5
    while threading.active_count() >= threads + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads  # a panel left open keeps no thread
    generate(panel)
    assert panel.streams[0].metrics.tokens == 3
    assert shown(comm_log) == panel.streams[0].text


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("top_p", 0.0, "top_p must be"),
        ("max_tokens", 0, "max_tokens must be"),
        ("top_k", -5, "top_k must be"),
    ],
)
def test_a_bad_value_shows_an_error_and_the_engine_still_serves(idle_host, make_panel, setting, value, message):
    panel = make_panel(chat=True, temperature=0.0, max_tokens=20)
    edit_in_browser(panel, 0, **{setting: value})
    press(panel, "generate")
    assert message in panel.error
    assert panel.streams == [] and not panel.running

    panel.columns[0].settings[setting] = {"top_p": 0.9, "max_tokens": 20, "top_k": -1}[setting]
    panel.prompt = FRANCE  # chat mode gave the prompt back after the error... or kept it
    generate(panel)
    assert panel.error == ""
    assert panel.streams[0].finish_reason in ("stop", "length") and panel.streams[0].text


def test_an_error_from_the_engine_side_shows_in_the_panel(make_panel):
    panel = make_panel(max_tokens=10**6)  # passes the local check, exceeds the model's context
    generate(panel)
    assert "max_tokens must be ≤" in panel.error
    assert not panel.running


def test_chat_keeps_history_as_text_and_sends_it_with_the_next_turn(make_panel):
    payload = '<img src=x onerror="alert(1)"> say hi'
    panel = make_panel(payload, chat=True, temperature=0.0, max_tokens=20)
    generate(panel)
    assert panel.chat_turns == [{"role": "user", "content": payload}]  # text; the front end inserts it as text
    static = panel._repr_mimebundle_()[0]["text/html"]
    assert escape(payload) in static and "<img" not in static
    assert panel.prompt == "" and panel.history.turns == 1

    first_answer = panel.streams[0].text
    panel.prompt = FRANCE
    generate(panel)
    assert panel.history.turns == 2
    assert [t["role"] for t in panel.chat_turns] == ["user", "assistant", "user"]  # the last answer is in its column
    sent = panel.streams[0].prompt
    assert "say hi" in sent and first_answer.strip() in sent and FRANCE in sent

    panel.show_prompt = True
    assert "<|im_start|>" in panel.rendered_prompt["text"]  # the chat template, as text
    assert panel.rendered_prompt["tokens"] == len(panel.streams[0].prompt_token_ids)

    press(panel, "clear")
    assert panel.history.turns == 0 and panel.chat_turns == [] and panel.results == [None]


def test_logprob_view_colours_tokens_and_lists_alternatives(make_panel, comm_log):
    panel = make_panel(chat=True, temperature=0.0, max_tokens=8, ignore_eos=True, logprobs=3)
    generate(panel)
    sent = [token for d in comm_log.custom("delta") for token in d.get("tokens", [])]
    assert len(sent) == 8 and panel.results[0]["tokens"] == sent
    text, logprob, alternatives = sent[0]
    assert text == panel.streams[0].logprobs[0].token and logprob <= 0 and len(alternatives) >= 3
    html = panel._repr_mimebundle_()[0]["text/html"]  # the static fallback colours them too
    assert html.count('class="vstream-token"') == 8 and "title=" in html and "%" in html


def test_the_python_export_reproduces_the_panels_answer(make_panel):
    panel = make_panel("The three primary colours are", max_tokens=25)
    panel.columns[0].settings["seed"] = 1234
    generate(panel)
    code = panel.exported("Python")
    assert "seed=1234" in code and "temperature=0.8" in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<export>", "exec"), {})
    assert out.getvalue() == panel.streams[0].text + "\n"

    press(panel, "export")  # the Export button: %%vstream by default
    assert panel.exported_code.startswith("%%vstream --temperature 0.8 --top-p 0.95 --max-tokens 25 --seed 1234\n")


def test_random_seed_mode_records_the_seed_it_drew(make_panel):
    panel = make_panel(max_tokens=10)
    generate(panel)
    drawn = panel.streams[0].sampling["seed"]
    assert panel.columns[0].form["last_seed"] == drawn and panel.columns[0].settings["seed"] is None
    assert f"seed={drawn}" in panel.exported("Python")


def test_the_kernel_thread_stays_free_while_a_panel_streams(make_panel, comm_log):
    panel = make_panel("Count from one to one hundred:", temperature=0.0, **LONG)
    t0 = time.perf_counter()
    press(panel, "generate")
    click_s = time.perf_counter() - t0
    assert click_s < 0.5  # the click handler returns at once
    assert threading.current_thread() is threading.main_thread()
    blocked_from = time.perf_counter()
    time.sleep(2.0)  # a cell that blocks the main thread
    panel.wait(120)
    during = [
        m for m in comm_log.messages
        if blocked_from <= m.t <= blocked_from + 2.0 and m.content is not None and m.content["type"] == "delta"
    ]  # fmt: skip
    print(f"\nclick returned in {click_s * 1000:.0f} ms; {len(during)} deltas while the main thread slept 2 s")
    assert len(during) >= 5  # a frozen panel would send none


def test_status_line_shows_the_ready_engine(idle_host, make_panel):
    panel = make_panel()
    assert panel.engine_status["state"] == "ready" and "engine ready" in panel.engine_status["text"]
    assert idle_host.info.model.split("/")[-1] in panel.engine_status["text"]
    assert repr(panel).startswith("<vstream.Panel 1 column(s), idle")
    bundle, _ = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "engine ready" in bundle["text/html"] and "engine ready" in bundle["text/plain"]


def test_presets_apply_and_user_presets_are_shared_between_panels(make_panel, tmp_path):
    first, second = make_panel(), make_panel()
    press(first, "preset", column=0, name="greedy")
    column = first.columns[0]
    assert column.preset == "greedy" and column.temperature == 0.0 and column.top_p == 1.0
    edit_in_browser(first, 0, temperature=0.3)
    assert column.preset == ""  # edited values no longer match the name
    press(first, "save_preset", column=0, name="mine")
    assert first.notices[0] == {"text": "saved preset mine", "error": False}
    assert "mine" in second.preset_names
    second.columns[0].preset = "mine"
    assert second.columns[0].temperature == 0.3
    assert PresetStore(tmp_path / "presets.json").get("mine")["temperature"] == 0.3
    press(first, "save_preset", column=0, name="greedy")
    assert first.notices[0]["error"] and "built-in" in first.notices[0]["text"]


def test_an_instruction_without_chat_that_ends_at_once_says_so_and_suggests_chat(make_panel):
    panel = make_panel("Write a short poem about the sea.", temperature=0.0, max_tokens=20)
    generate(panel)
    stream = panel.streams[0]
    assert stream.text == "" and stream.metrics.tokens == 1
    assert "try chat mode (tick the chat box)" in panel.results[0]["note"]
    panel.chat = True
    generate(panel)
    assert panel.streams[0].text.strip()
    assert panel.results[0]["note"] is None


def test_the_output_format_control_gives_json_that_fits_the_schema_in_every_column(make_panel):
    jsonschema = pytest.importorskip("jsonschema")

    panel = make_panel("Describe a person.", chat=True, columns=4, temperature=0.7, max_tokens=120)
    for i in range(4):
        edit_in_browser(panel, i, temperature=0.7, output_format="json_schema", format_spec=json.dumps(PERSON))
    answers = []
    # Fixed seeds: with vLLM's default (any whitespace in JSON) the model loops on newlines until
    # max_tokens in ~6 % of answers (4 of 64 measured); an engine with
    # engine_args={"structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True}}
    # gave 64 of 64.
    for seeds in ((1, 2, 3, 4), (5, 6, 7, 8)):
        for column, seed in zip(panel.columns, seeds, strict=True):
            column.seed = seed
        generate(panel)
        answers += [stream.json() for stream in panel.streams]
    for answer in answers:
        jsonschema.validate(answer, PERSON)
    print(f"\n{len(answers)}/8 panel JSON answers validated")
    # Exported, presets: the constraint goes along.
    assert "json_schema={" in panel.exported("Python") and "--json-schema '{" in panel.exported("%%vstream")
    press(panel, "save_preset", column=0, name="person-json")
    assert panel.store.get("person-json")["json_schema"]
    other = make_panel("Describe a person.", chat=True)
    press(other, "preset", column=0, name="person-json")
    assert other.columns[0].form["output_format"] == "json_schema"
    assert json.loads(other.columns[0].form["format_spec"]) == PERSON


def test_regex_and_choice_formats_in_the_panel(make_panel):
    panel = make_panel("Pick one.", chat=True, columns=2, temperature=0.7)
    edit_in_browser(panel, 0, output_format="regex", format_spec=r"[A-Z][a-z]{2,8}!")
    edit_in_browser(panel, 1, output_format="choice", format_spec=r"red, green, dark\, blue")
    assert panel.columns[1].settings["choice"] == ["red", "green", "dark, blue"]
    generate(panel)
    assert re.fullmatch(r"[A-Z][a-z]{2,8}!", panel.streams[0].text)
    assert panel.streams[1].text in ("red", "green", "dark, blue")


def test_a_bad_schema_in_the_panel_is_an_error_naming_it_and_nothing_runs(make_panel, idle_host):
    panel = make_panel("Describe a person.", chat=True)
    panel.columns[0].settings["json_schema"] = '{"type": "objekt"}'
    generate(panel)
    assert "json_schema is not a valid JSON schema" in panel.error
    assert idle_host.unfinished_requests() == 0 and not panel.streams


def test_reasoning_in_the_panel_shows_a_collapsible_thinking_block(make_panel, comm_log):
    panel = make_panel("Think about the sea, then name a colour.", chat=True, temperature=0.7, max_tokens=80)
    panel.columns[0].settings.update(reasoning=True, regex=r"<think>[a-z ]{8,60}</think>[A-Za-z ]{3,40}")
    generate(panel)
    stream = panel.streams[0]
    titles = [d["thinking"] for d in comm_log.custom("delta") if d.get("thinking")]
    assert titles[0].startswith("Thinking…") and titles[-1].startswith("Thought for")
    assert "".join(d.get("reasoning", "") for d in comm_log.custom("delta")) == stream.reasoning
    result = panel.results[0]
    assert result["reasoning"] == stream.reasoning and result["thinking"].startswith("Thought for")
    static = panel._repr_mimebundle_()[0]["text/html"]
    assert '<details class="vstream-thinking"' in static and escape(stream.reasoning.strip()) in static
    panel.show_thinking = False  # the front end redraws the block; the static view follows it
    hidden = panel._repr_mimebundle_()[0]["text/html"]
    # Only the title is left; the reasoning's words may still occur in a sampled answer (once,
    # "called ocean hair"), so the check is on the thinking element, and one occurrence fewer.
    (title,) = re.findall(r'<div class="vstream-thinking vstream-thinking-hidden"[^>]*>(.*?)</div>', hidden)
    assert title.startswith("Thought for") and '<details class="vstream-thinking"' not in hidden
    shown = escape(stream.reasoning.strip())
    assert hidden.count(shown) == static.count(shown) - 1
    assert panel.history.messages[-1]["content"] == stream.text  # the chat keeps the answer, not the thinking
    assert "reasoning=True" in panel.exported("Python") and "--reasoning on" in panel.exported("%%vstream")
