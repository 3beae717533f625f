"""Bad input raises a clear error before reaching the engine, and the engine keeps serving."""

from __future__ import annotations

import pytest

from vstream import SamplingError

pytestmark = pytest.mark.engine

CASES = [
    ("temperature -1", "Hello", {"temperature": -1}, "temperature must be a number in [0, 100]"),
    ("top_p 0", "Hello", {"top_p": 0}, "top_p must be a number in (0, 1]"),
    ("top_p 1.5", "Hello", {"top_p": 1.5}, "top_p must be a number in (0, 1]"),
    ("max_tokens 0", "Hello", {"max_tokens": 0}, "max_tokens must be an integer ≥ 1"),
    ("max_tokens beyond the context", "Hello", {"max_tokens": 10**6}, "max_tokens must be ≤ the model's context of"),
    ("max_tokens beyond what the prompt leaves", "Hello " * 500, {"max_tokens": "ROOM"}, "max_tokens must be ≤"),
    ("empty prompt", "   ", {}, "prompt is empty"),
    ("prompt longer than the context", "word " * 20000, {}, "fills the model's context"),
    ("lone surrogate", "bad \ud800 text", {}, "lone surrogate"),
    ("wrong prompt type", 42, {}, "prompt must be a string or a non-empty list"),
    ("bad chat role", [{"role": "wizard", "content": "hi"}], {}, "use 'system', 'user' or 'assistant'"),
    ("unknown parameter", "Hello", {"temprature": 1}, "did you mean 'temperature'"),
]


@pytest.mark.parametrize(("name", "prompt", "sampling", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_the_engine_keeps_serving(idle_host, name, prompt, sampling, message):
    if sampling.get("max_tokens") == "ROOM":
        prompt_tokens = len(idle_host.render(prompt).token_ids)
        sampling = {"max_tokens": idle_host.info.max_model_len - prompt_tokens + 1}
    with pytest.raises(SamplingError) as info:
        idle_host.stream(prompt, **sampling)
    assert message in str(info.value)
    assert idle_host.unfinished_requests() == 0
    good = idle_host.generate("The key to happiness is", max_tokens=5, seed=0)
    assert good.finish_reason in {"stop", "length"} and good.token_ids
