"""%%vstream and %vstream on a real IPython shell with the real engine."""

from __future__ import annotations

import html
import re

import pytest
from IPython.core.error import UsageError

from in_flight import InFlight
from schemas import PERSON
from vstream.testing import record_widget_messages, shown_texts

pytestmark = pytest.mark.engine


def _last_display(shell):
    streamed = [m for m in shell.recorder.messages if "text/html" in m["data"]]
    assert streamed, "nothing was displayed"
    display_id = streamed[-1]["transient"]["display_id"]
    return shell.recorder.for_display(display_id)


def test_displayed_text_equals_the_engines_final_text(shell):
    shell.run_cell_magic("vstream", "--seed 1 --max-tokens 40 --out result", "The key to happiness is")
    result = shell.user_ns["result"]
    messages = _last_display(shell)
    final = messages[-1]["data"]
    assert messages[-1]["update"] is True
    assert final["text/plain"].startswith(result.text)
    assert shown_texts(final["text/html"])[0] == result.text
    assert "finish: " in final["text/plain"] and "TTFT" in final["text/plain"]


def test_without_a_widget_front_end_the_cell_shows_one_line_then_the_answer(shell):
    # A terminal's comm has no kernel: nothing is repainted (each repaint would print the answer).
    shell.run_cell_magic("vstream", "--max-tokens 30 --ignore-eos --out r", "Write a long story:")
    messages = _last_display(shell)
    assert [m["update"] for m in messages] == [False, True]
    assert messages[0]["data"] == {"text/plain": "vstream: streaming…"}
    assert messages[1]["data"]["text/plain"].startswith(shell.user_ns["r"].text)


def test_the_live_view_gets_deltas_at_a_bounded_rate_then_a_static_display(shell):
    with record_widget_messages() as log:
        shell.run_cell_magic("vstream", "--max-tokens 200 --ignore-eos --out r", "Write a long story:")
    result = shell.user_ns["r"]
    assert len(result.token_ids) == 200
    deltas = log.custom("delta")
    duration = result.metrics.duration_s
    print(f"\n200 tokens in {duration:.2f} s → {len(deltas)} deltas ({len(deltas) / duration:.1f}/s)")
    # 20 paints a second over the stream's duration, plus what falls outside that cadence: the
    # first paint, the first token's paint (at once, not on the tick), the final paint, and one
    # for where the ticks fall against the measured duration. Far below one message per token.
    assert 3 <= len(deltas) <= 20 * duration + 5
    assert "".join(d["text"] for d in deltas) == result.text  # each delta only the new text
    assert [d["type"] for d in log.custom()][-1] == "done"
    messages = _last_display(shell)
    assert len(messages) == 2  # the live widget, then the static answer in its place
    assert "application/vnd.jupyter.widget-view+json" in messages[0]["data"]
    assert messages[1]["update"] and 'class="vstream-card"' in messages[1]["data"]["text/html"]


def test_samples_stream_concurrently_side_by_side(shell, host):
    with InFlight(host) as seen:
        shell.run_cell_magic("vstream", "-n 3 --seed 5 --max-tokens 30 --ignore-eos --out samples", "Name a colour:")
    samples = shell.user_ns["samples"]
    assert len(samples) == 3
    assert len({s.request_id for s in samples}) == 3
    assert max(s.metrics.submitted_at for s in samples) < min(s.metrics.finished_at for s in samples)
    assert seen.peak == 3
    html_out = _last_display(shell)[-1]["data"]["text/html"]
    assert html_out.count('class="vstream-card"') == 3


def test_placeholders_are_filled_from_the_namespace_unless_turned_off(shell):
    shell.user_ns["topic"] = "dragons"
    shell.run_cell_magic("vstream", "--max-tokens 3 --out a", "Tell me about {topic}.")
    shell.run_cell_magic("vstream", "--max-tokens 3 --out b --no-interpolate", "Tell me about {topic}.")
    assert "Tell me about dragons." in shell.user_ns["a"].prompt
    assert "Tell me about {topic}." in shell.user_ns["b"].prompt


def test_chat_with_system_prompt_uses_the_template(shell):
    line = '--system "You answer briefly." -t 0 -m 20 --out c'
    shell.run_cell_magic("vstream", line, "What is the capital of France?")
    stream = shell.user_ns["c"]
    assert stream.prompt.startswith("<|im_start|>system\nYou answer briefly.<|im_end|>")
    assert stream.prompt.endswith("<|im_start|>assistant\n")
    assert stream.token_ids


def test_logprobs_colour_each_token(shell):
    shell.run_cell_magic("vstream", "--logprobs 3 -t 0 -m 6 --out lp", "The capital of France is")
    final = _last_display(shell)[-1]["data"]["text/html"]
    assert final.count('class="vstream-token"') == 6
    assert final.count("title=") == 6


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--top-p 0", "--top-p must be a number in (0, 1], got 0"),
        ("--temperature -1", "--temperature must be a number in [0, 2]"),
        ("--temperature 5", "--temperature must be a number in [0, 2]"),
        ("--max-tokens 0", "--max-tokens must be an integer ≥ 1"),
        ("--max-tokens 100000", "--max-tokens must be ≤"),
        ("--samples 99", "--samples must be an integer in [1, 8]"),
        ("--logprobs 99", "--logprobs must be an integer [0, 20]"),
        ("--presence-penalty 5", "--presence-penalty must be a number in [-2, 2]"),
        ("--out 1bad", "--out must be a Python variable name"),
        ("--top-k abc", "argument --top-k: invalid int value"),
        ("--json-schema nosuchvar", "--json-schema takes a variable of this notebook or a JSON literal"),
        ('--json-schema \'{"type": "objekt"}\'', "--json-schema is not a valid JSON schema"),
        ("--regex '(a'", "--regex does not compile"),
        ("--choice a --regex b", "--regex and --choice cannot be used together"),
        ("--grammar '\\n'", "--grammar is empty"),
    ],
)
def test_bad_options_are_usage_errors_and_the_engine_keeps_serving(shell, host, line, message):
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("vstream", line, "Hello")
    assert message in str(info.value)
    assert host.unfinished_requests() == 0
    shell.run_cell_magic("vstream", "-m 3 --out ok", "Hello")
    assert shell.user_ns["ok"].token_ids


def test_empty_cell_is_a_usage_error(shell):
    with pytest.raises(UsageError, match="the cell is empty"):
        shell.run_cell_magic("vstream", "", "   \n")


def test_line_commands(shell, capsys):
    shell.run_line_magic("vstream", "status")
    assert "vstream: engine ready: smollm2-135m-instruct" in capsys.readouterr().out
    shell.run_line_magic("vstream", "config temperature=0.0 max_tokens=5")
    assert "'temperature': 0.0" in capsys.readouterr().out
    shell.run_cell_magic("vstream", "--out d", "The capital of France is")
    assert len(shell.user_ns["d"].token_ids) <= 5 and shell.user_ns["d"].sampling["temperature"] == 0.0
    with pytest.raises(UsageError, match=r"top_p|--top-p"):
        shell.run_line_magic("vstream", "config top_p=2")
    shell.run_line_magic("vstream", "config --reset")
    shell.run_line_magic("vstream", "logs 5")
    assert capsys.readouterr().out.strip()
    with pytest.raises(UsageError, match="unknown %vstream command 'frobnicate'"):
        shell.run_line_magic("vstream", "frobnicate")


def test_magic_help_documents_the_options(shell):
    doc = shell.find_cell_magic("vstream").__doc__
    for option in ("--temperature", "--top-p", "--samples", "--logprobs", "--out", "--no-interpolate"):
        assert option in doc


def test_stop_and_system_values_decode_escapes(shell):
    shell.run_cell_magic("vstream", r"--stop '\n\n' --stop ' END' --system 'Line one\nline two' -m 3 --out e", "Hello")
    stream = shell.user_ns["e"]
    assert stream.sampling["stop"] == ["\n\n", " END"]
    assert "Line one\nline two<|im_end|>" in stream.prompt


def test_an_instruction_without_chat_that_ends_at_once_says_so_and_suggests_chat(shell):
    # The instruct model ends a bare instruction with end-of-sequence as its first token.
    shell.run_cell_magic("vstream", "-t 0 -m 20 --out empty", "Write a short poem about the sea.")
    stream = shell.user_ns["empty"]
    assert stream.text == "" and stream.metrics.tokens == 1 and stream.finish_reason == "stop"
    final = _last_display(shell)[-1]["data"]
    assert "the model stopped immediately" in html.unescape(final["text/html"])
    assert "try chat mode (add --chat)" in final["text/plain"]
    shell.run_cell_magic("vstream", "--chat -t 0 -m 20 --out answered", "Write a short poem about the sea.")
    assert shell.user_ns["answered"].text.strip()
    assert "stopped immediately" not in _last_display(shell)[-1]["data"]["text/plain"]


def test_json_schema_from_a_variable_or_a_literal_gives_valid_json(shell):
    jsonschema = pytest.importorskip("jsonschema")
    shell.user_ns["person"] = PERSON
    # Greedy: sampled at 0.7, vLLM's default JSON grammar (any whitespace) let one of these five
    # answers loop on newlines until max_tokens on an H200 (vLLM 0.26); the engine-level tests
    # sample 20 answers at 0.7 with seeds that end well on both vLLM lines.
    shell.run_cell_magic("vstream", "--chat --json-schema person -t 0 -m 120 --out person_json", "Describe someone.")
    jsonschema.validate(shell.user_ns["person_json"].json(), PERSON)
    literal = '\'{"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}\''
    shell.run_cell_magic("vstream", f"--chat --json-schema {literal} -t 0 -m 40 --out ok", "Is it ok?")
    assert isinstance(shell.user_ns["ok"].json()["ok"], bool)


def test_regex_and_choice_options_constrain_the_answer(shell):
    shell.run_cell_magic(
        "vstream", r"--chat --regex '[0-9]{3}-[0-9]{4}' -t 0.7 --seed 2 -m 20 --out phone", "Give me a phone number."
    )
    assert re.fullmatch(r"[0-9]{3}-[0-9]{4}", shell.user_ns["phone"].text)
    shell.run_cell_magic(
        "vstream", "--chat --choice yes --choice no --choice 'it depends' -t 0.7 -n 4 --seed 3 --out picks", "Tea?"
    )
    assert {s.text for s in shell.user_ns["picks"]} <= {"yes", "no", "it depends"}


FORCED_THINKING = r"'<think>[a-z ]{8,60}</think>[A-Za-z ]{3,40}'"


def test_reasoning_shows_a_thinking_block_then_thought_for(shell):
    line = f"--chat --reasoning on --regex {FORCED_THINKING} -t 0.7 --seed 4 -m 80 --out r"
    with record_widget_messages() as log:
        shell.run_cell_magic("vstream", line, "Think about the sea, then name a colour.")
    stream = shell.user_ns["r"]
    assert stream.reasoning and "<think>" not in stream.text
    messages = _last_display(shell)
    assert any((d.get("thinking") or "").startswith("Thinking…") for d in log.custom("delta"))  # live
    final = messages[-1]["data"]["text/html"]
    assert '<details class="vstream-thinking"' in final and "Thought for" in final
    assert html.escape(stream.reasoning.strip()) in final
    assert shown_texts(final)[0] == stream.text


def test_hide_thinking_keeps_only_the_line_saying_how_long(shell):
    line = f"--chat --reasoning on --regex {FORCED_THINKING} -t 0.7 --seed 4 -m 80 --hide-thinking --out h"
    shell.run_cell_magic("vstream", line, "Think about the sea, then name a colour.")
    stream = shell.user_ns["h"]
    final = _last_display(shell)[-1]["data"]
    assert "Thought for" in final["text/html"] and stream.reasoning.strip() not in final["text/html"]
    assert stream.reasoning.strip() not in final["text/plain"]
