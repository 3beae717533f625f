"""The Stream API over a real `vllm serve`: same text, tokens, logprobs, cancel and panel."""

from __future__ import annotations

import time

import httpx
import pytest

from vstream.backends.remote import ServerRequestError
from vstream.errors import EngineNotRunningError
from vstream.panel import Panel, PresetStore

from .conftest import MAX_LOGPROBS, MAX_MODEL_LEN, SERVED_NAME

pytestmark = [pytest.mark.engine, pytest.mark.remote]

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def test_the_host_describes_the_server_and_never_shows_the_key(remote_host, server):
    info = remote_host.wait_ready()
    assert info.mode == "remote" and info.device == "remote"
    assert info.device_name == f"127.0.0.1:{server.port}"
    assert info.model == SERVED_NAME and info.max_model_len == MAX_MODEL_LEN
    assert info.backend == f"OpenAI-compatible server at {server.url}"
    assert info.vllm_version[0].isdigit() and info.kv_cache_tokens is None
    shown = [
        repr(remote_host),
        str(remote_host.status()),
        repr(remote_host.config),
        repr(info),
        repr(remote_host._backend),
    ]
    assert all(server.api_key not in text for text in shown)
    assert f"127.0.0.1:{server.port}" in str(remote_host.status())


def test_streamed_text_equals_the_non_streamed_completion_for_the_same_seed(idle_remote, server):
    settings = {"temperature": 0.9, "top_p": 0.95, "seed": 1234, "max_tokens": 32}
    stream = idle_remote.stream("Once upon a time, in a small village,", **settings)
    deltas = list(stream)
    assert stream.finish_reason in ("length", "stop") and len(deltas) > 3

    body = {
        "model": SERVED_NAME,
        "prompt": stream.prompt_token_ids,
        "return_token_ids": True,
        **settings,
    }
    answer = httpx.post(
        server.url + "/v1/completions", json=body, headers=server.headers(), timeout=60
    ).json()
    choice = answer["choices"][0]
    assert "".join(deltas) == stream.text == choice["text"]
    assert stream.token_ids == choice["token_ids"]
    assert stream.metrics.tokens == len(stream.token_ids) == answer["usage"]["completion_tokens"]
    m = stream.metrics
    assert m.ttft_s is not None and 0 < m.ttft_s < m.duration_s and m.tokens_per_s > 0


def test_chat_uses_the_servers_template_and_greedy_answers_paris(idle_remote, server):
    rendered = idle_remote.render(FRANCE, chat=True)
    assert rendered.text.startswith("<|im_start|>system\n") and rendered.text.endswith(
        "<|im_start|>assistant\n"
    )
    assert "What is the capital of France?" in rendered.text
    with_system = idle_remote.render("Hi", chat=False, system="Answer in French.")
    assert with_system.text.startswith("<|im_start|>system\nAnswer in French.<|im_end|>")

    stream = idle_remote.stream(FRANCE, temperature=0, max_tokens=20).wait()
    assert stream.text == "The capital of France is Paris."
    assert stream.finish_reason == "stop" and stream.prompt_token_ids == rendered.token_ids


def test_a_server_host_has_no_in_process_engine_to_reach_under(idle_remote):
    with pytest.raises(EngineNotRunningError, match="streams from a server"):
        idle_remote.async_llm  # noqa: B018 (the property is what is tested)


def test_sampling_settings_reach_the_server(idle_remote):
    long = idle_remote.stream(
        "Count: one, two,", temperature=0, ignore_eos=True, max_tokens=12
    ).wait()
    assert long.finish_reason == "length" and long.metrics.tokens == 12

    stopped = idle_remote.stream(
        FRANCE, chat=True, temperature=0, max_tokens=20, stop=["Paris"]
    ).wait()
    assert stopped.finish_reason == "stop" and stopped.stop_reason == "Paris"
    assert stopped.text == "The capital of France is "

    floor = idle_remote.stream(FRANCE, temperature=0, min_tokens=15, max_tokens=15).wait()
    assert floor.metrics.tokens == 15  # min_tokens kept it going past the end of its answer


def test_logprobs_arrive_per_token_with_ranked_alternatives(idle_remote):
    stream = idle_remote.stream(FRANCE, temperature=0, max_tokens=20, logprobs=3).wait()
    logprobs = stream.logprobs
    assert stream.finish_reason == "stop" and len(logprobs) == stream.metrics.tokens == 8
    # One entry per token id, the end-of-sequence token included (its text is not in .text).
    assert "".join(entry.token for entry in logprobs) == stream.text + "<|im_end|>"
    for entry in logprobs:
        assert entry.logprob <= 0 and 3 <= len(entry.top) <= 4
        values = [value for _token, value in entry.top]
        assert values == sorted(values, reverse=True)
        assert entry.top[0] == (entry.token, entry.logprob)  # greedy: the chosen token ranks first


def test_cancel_closes_the_stream_and_the_server_aborts_the_request(idle_remote, server):
    stream = idle_remote.stream(
        "Write a very long story about a lighthouse:", ignore_eos=True, max_tokens=1500
    )
    deadline = time.monotonic() + 60
    while stream.metrics.tokens < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stream.metrics.tokens >= 5 and server.metrics()["vllm:num_requests_running"] == 1
    kept = stream.text
    stream.cancel()
    assert stream.finish_reason == "cancelled" and stream.error is None
    assert stream.text.startswith(kept) and stream.metrics.tokens < 1500
    assert idle_remote.unfinished_requests() == 0
    deadline = time.monotonic() + 5
    while server.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.running() == 0, "the server kept generating after the stream was closed"
    # ...and the host serves the next request.
    assert idle_remote.stream("Hello", max_tokens=3, ignore_eos=True).wait().metrics.tokens == 3


def test_a_setting_the_server_refuses_is_its_own_message_and_the_host_still_serves(idle_remote):
    stream = idle_remote.stream("Hello", max_tokens=4, logprobs=MAX_LOGPROBS + 3)
    with pytest.raises(ServerRequestError) as info:
        stream.wait()
    message = str(info.value)
    assert (
        "logprobs" in message
        and str(MAX_LOGPROBS) in message
        and idle_remote.info.backend.split()[-1] in message
    )
    assert stream.finish_reason == "error" and idle_remote.state == "ready"
    assert idle_remote.stream("Hello", max_tokens=3, ignore_eos=True).wait().metrics.tokens == 3


def test_prompt_longer_than_the_servers_context_is_refused_before_sending(idle_remote):
    from vstream.errors import SamplingError

    with pytest.raises(SamplingError, match="context"):
        idle_remote.stream("word " * 1200, max_tokens=1000)


def test_the_panel_streams_compare_columns_and_logprobs_from_the_server(idle_remote, tmp_path):
    panel = Panel(
        "Write a haiku about the sea.",
        host=idle_remote,
        columns=2,
        ignore_eos=True,
        max_tokens=20,
        presets=PresetStore(tmp_path / "presets.json"),
    )
    try:
        panel.run()
        panel.wait(120)
        streams = panel.streams
        assert len(streams) == 2 and all(s.metrics.tokens == 20 for s in streams)
        starts_and_ends = [(s.metrics.submitted_at, s.metrics.finished_at) for s in streams]
        assert max(a for a, _ in starts_and_ends) < min(b for _, b in starts_and_ends)  # concurrent
        for result, stream in zip(panel.results, streams, strict=True):
            assert result["text"] == stream.text and "TTFT" in result["status"]
        assert "127.0.0.1" in panel.engine_status["text"] and "remote" in panel.engine_status["text"]
    finally:
        panel.close()
        panel.wait(10)

    lp = Panel(
        "The sky is",
        host=idle_remote,
        temperature=0.0,
        max_tokens=6,
        ignore_eos=True,
        logprobs=3,
        presets=PresetStore(tmp_path / "presets.json"),
    )
    try:
        lp.run()
        lp.wait(60)
        assert len(lp.results[0]["tokens"]) == 6
    finally:
        lp.close()
        lp.wait(10)
