"""Bad input raises a clear error before reaching the engine, and the engine keeps serving."""

from __future__ import annotations

import pytest

from vstream import SamplingError

pytestmark = pytest.mark.engine

CASES = [
    ("temperature -1", "Hello", {"temperature": -1}, "temperature must be a number in [0, 2]"),
    # vLLM refuses above 2: accepted here, the request once never ended (issue 16).
    ("temperature 5", "Hello", {"temperature": 5.0}, "temperature must be a number in [0, 2], got 5.0"),
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


def test_a_failure_while_preparing_a_request_ends_its_stream_with_that_error(idle_host, monkeypatch):
    """Anything that goes wrong between submit and the engine (here: building SamplingParams)
    finishes the Stream with the error, so wait() raises instead of hanging."""
    backend = idle_host._backend

    def broken(sampling):
        raise RuntimeError("injected: SamplingParams refused the request")

    monkeypatch.setattr(backend, "_params", broken)
    stream = idle_host.stream("Hello", max_tokens=5)
    assert stream.wait_done(30), "the stream never ended"
    assert stream.finish_reason == "error"
    with pytest.raises(RuntimeError, match="injected"):
        stream.wait(1)
    monkeypatch.undo()
    assert idle_host.unfinished_requests() == 0
    assert idle_host.generate("The key to happiness is", max_tokens=5, seed=0).token_ids


def test_a_failure_inside_the_backend_run_ends_the_stream_too(idle_host, monkeypatch):
    """Even an error the backend does not catch (it escapes run()) finishes the Stream."""
    backend = idle_host._backend

    async def escaping(stream, prompt, sampling):
        raise KeyError("injected outside the backend's own try")

    monkeypatch.setattr(backend, "run", escaping)
    stream = idle_host.stream("Hello", max_tokens=5)
    assert stream.wait_done(30), "the stream never ended"
    assert stream.finish_reason == "error" and isinstance(stream.error, KeyError)
    monkeypatch.undo()
    assert idle_host.generate("The key to happiness is", max_tokens=5, seed=0).token_ids
