"""The default engine is sized to the notebook and says what its memory buys; sleep says clearly
that vLLM's CPU backend has none, and the engine keeps serving."""

from __future__ import annotations

import pytest

import vstream
from vstream import memory
from vstream.config import detect_device

pytestmark = pytest.mark.engine


def test_default_engine_holds_weights_and_a_notebook_sized_kv_budget(host):
    info = host.info
    dtype = info.engine_args["dtype"]  # float32 for the embedded model on a CPU (models.embedded_dtype)
    per_token = memory.ModelShape.from_checkpoint(info.model_path, dtype=dtype).kv_bytes_per_token()
    asked = memory.DEFAULT_MAX_NUM_SEQS * memory.NOTEBOOK_CONTEXT_TOKENS
    assert info.kv_cache_bytes == (asked + memory.BLOCK_SLACK_TOKENS) * per_token
    # vLLM's own count of what requests can use (whole blocks, less its null block): the floor holds
    assert asked <= info.kv_cache_tokens <= asked + memory.BLOCK_SLACK_TOKENS
    assert info.weight_bytes and info.weight_bytes > 0.2 * memory.GiB
    assert info.full_context_streams == info.kv_cache_tokens // info.max_model_len >= 1
    engine_args = host._backend._engine_kwargs(info.model_path)
    assert engine_args["kv_cache_memory_bytes"] == info.kv_cache_bytes
    if info.device == "cpu":
        assert "gpu_memory_utilization" not in engine_args  # no share of anything on a CPU
    else:  # only what vLLM's start-up check needs free (memory.gpu_share), never its default 0.9
        assert 0.02 <= engine_args["gpu_memory_utilization"] < 0.9


def test_status_says_weights_kv_tokens_and_full_context_streams(host):
    text = str(host.status())
    assert f"{host.info.kv_cache_tokens:,} tokens" in text
    assert f"{host.info.full_context_streams} streams at full context" in text
    assert _sizes(host) in text


def _sizes(host) -> str:
    """65,536 + 512 tokens x 23,040 bytes in bfloat16; twice the bytes in float32 (a CPU)."""
    wide = host.info.engine_args["dtype"] == "float32"
    return "weights 0.50 GiB + KV 2.83 GiB" if wide else "weights 0.25 GiB + KV 1.42 GiB"


@pytest.mark.skipif(detect_device() != "cpu", reason="on a GPU sleep works: tests/gpu/test_gpu_memory.py")
def test_sleep_on_cpu_says_why_not_and_the_engine_keeps_serving(idle_host):
    with pytest.raises(vstream.SleepUnavailableError, match="sleep mode needs a GPU: vLLM's CPU backend has none"):
        idle_host.sleep()
    with pytest.raises(vstream.SleepUnavailableError, match="needs a GPU"):
        idle_host.wake()
    assert idle_host.status().state == "ready" and not idle_host.asleep
    assert idle_host.sleep_after_s is None  # no idle timer where there is no sleep mode
    assert idle_host.generate("Hello", max_tokens=4, temperature=0).token_ids


def test_a_request_that_fails_to_start_finishes_its_stream_with_the_error(idle_host, monkeypatch):
    backend = idle_host._backend

    def broken(*_args, **_kwargs):
        raise RuntimeError("injected: the request could not be prepared")

    monkeypatch.setattr(backend, "_sampling_params", broken)
    stream = idle_host.stream("Hello", max_tokens=4)
    with pytest.raises(RuntimeError, match="injected"):  # wait() returns instead of hanging
        stream.wait(timeout=30)
    assert stream.done and stream.finish_reason == "error"
    monkeypatch.undo()
    assert idle_host.generate("Hello", max_tokens=4, temperature=0).token_ids  # still serving
