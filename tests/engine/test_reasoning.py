"""Reasoning split from the answer on the real engine. The embedded model is no thinking model,
so a regex constraint makes it write a think block; its tokenizer spells ``<think>`` as five
tokens, so every marker arrives cut across deltas."""

from __future__ import annotations

import re

import pytest

from loops import run_on_a_fresh_loop
from vstream import SamplingError

pytestmark = pytest.mark.engine

FORCED = r"<think>[a-z ]{8,60}</think>[A-Za-z ]{3,40}"


def thinking(host, **kwargs):
    options = {"chat": True, "regex": FORCED, "temperature": 0.7, "seed": 4, "max_tokens": 80, **kwargs}
    return host.stream("Think about the sea, then name a colour.", **options)


def test_the_markers_are_cut_into_several_tokens_by_this_tokenizer(idle_host):
    tokenizer = idle_host._backend._tokenizer
    assert len(tokenizer("<think>", add_special_tokens=False)["input_ids"]) > 1
    assert len(tokenizer("</think>", add_special_tokens=False)["input_ids"]) > 1


def test_a_think_block_is_split_from_the_answer(idle_host):
    stream = thinking(idle_host, reasoning=True).wait(120)
    assert re.fullmatch(r"[a-z ]{8,60}", stream.reasoning), stream.reasoning
    assert re.fullmatch(r"[A-Za-z ]{0,40}", stream.text) and stream.text.strip(), stream.text
    assert "<" not in stream.text + stream.reasoning  # no marker, nor half of one, leaks
    assert "".join(stream) == stream.text  # iterating yields the answer only
    events = list(stream.events())
    kinds = [e.kind for e in events]
    assert kinds[-1] == "finish" and events[-1].finish_reason == "stop"
    assert kinds.index("answer") > max(i for i, k in enumerate(kinds) if k == "reasoning")
    assert "".join(e.text for e in events if e.kind == "reasoning") == stream.reasoning
    assert "".join(e.text for e in events if e.kind == "answer") == stream.text
    metrics = stream.metrics
    assert metrics.reasoning_tokens >= 8 and metrics.answer_tokens >= 1
    assert metrics.reasoning_tokens + metrics.answer_tokens == metrics.tokens == len(stream.token_ids)
    assert metrics.answer_ttft_s > metrics.ttft_s and metrics.thinking_s > 0
    print(f"\nreasoning {stream.reasoning!r} · answer {stream.text!r} · {metrics.summary()}")
    assert "thinking" in metrics.summary() and "answer" in metrics.summary()


def test_events_in_async_for_as_they_stream(idle_host):
    stream = thinking(idle_host, reasoning=True, seed=7)

    async def main():
        return [event.kind async for event in stream.events()]

    kinds = run_on_a_fresh_loop(main)
    assert kinds[0] == "reasoning" and kinds[-1] == "finish" and "answer" in kinds


def test_reasoning_off_keeps_the_block_in_the_text(idle_host):
    stream = thinking(idle_host, reasoning=False).wait(120)
    assert stream.text.startswith("<think>") and "</think>" in stream.text and stream.reasoning == ""


def test_auto_leaves_a_model_without_think_markers_alone(idle_host):
    backend = idle_host._backend
    assert backend.thinking_model is False and backend.marker_tokens is False  # SmolLM2: no <think> anywhere
    stream = thinking(idle_host).wait(120)  # reasoning=None
    assert stream.text.startswith("<think>") and not stream.reasoning_on


def test_a_bad_reasoning_value_is_refused(idle_host):
    with pytest.raises(SamplingError, match="reasoning must be True, False or None"):
        idle_host.stream("Hello", reasoning="yes")
    with pytest.raises(SamplingError, match="thinking_token_budget must be an integer"):
        idle_host.stream("Hello", thinking_token_budget=-3)


def test_a_thinking_budget_without_a_reasoning_engine_is_the_engines_clear_error(idle_host):
    stream = idle_host.stream("Hello", thinking_token_budget=16, max_tokens=5)
    assert stream.wait_done(60) and stream.finish_reason == "error"
    assert "thinking_token_budget" in str(stream.error) and "reasoning" in str(stream.error)
    assert idle_host.generate("The key to happiness is", max_tokens=5, seed=0).token_ids


BUDGET_SCRIPT = """
import json, vstream
if __name__ == "__main__":
    host = vstream.engine(wait=True, engine_args={"reasoning_config": {
        "reasoning_start_str": "<think>", "reasoning_end_str": "</think>"}})
    # The prompt opens the block: the model starts inside it (as DeepSeek-R1's template does).
    prompt = "<|im_start|>user\\nWhat colour is the sea?<|im_end|>\\n<|im_start|>assistant\\n<think>"
    out = {}
    for budget in (None, 4, 12):
        extra = {} if budget is None else {"thinking_token_budget": budget}
        s = host.stream(prompt, reasoning=True, temperature=0, max_tokens=30, **extra).wait(120)
        out[str(budget)] = [s.reasoning, s.text, s.metrics.reasoning_tokens, s.metrics.answer_tokens]
    print("RESULT " + json.dumps(out))
    vstream.shutdown()
"""


@pytest.mark.slow
def test_a_thinking_budget_ends_the_thinking_after_that_many_tokens(tmp_path):
    """With an engine that has a reasoning config, vLLM forces </think> after the budget (the
    embedded model spells it as 4 tokens, counted as thinking); the answer follows."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "budget.py"
    script.write_text(BUDGET_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(line[len("RESULT ") :])
    unbounded, four, twelve = result["None"], result["4"], result["12"]
    print(f"\nno budget: {unbounded[2]} thinking tokens; budget 4: {four[2]}; budget 12: {twelve[2]}")
    assert unbounded[3] == 0  # without a budget it thinks until max_tokens
    end_marker = 4  # the forced "</think>" is 4 tokens in this tokenizer, counted as thinking
    assert four[2] == 4 + end_marker and four[1].strip()
    assert twelve[2] == 12 + end_marker and twelve[1].strip()
    assert twelve[0].startswith(four[0])  # greedy: the same thinking, cut later
