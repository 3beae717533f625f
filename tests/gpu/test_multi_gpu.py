"""Tensor parallelism in the kernel (device tool, a 2-GPU machine): every GPU used, every GPU freed.

Run there with ``pytest -m multigpu``.
"""

from __future__ import annotations

import time

import pytest

import vstream
from vstream import memory

from .test_gpu_engine import GIB, _record, _settle, gpu_memory_used

pytestmark = [pytest.mark.gpu, pytest.mark.multigpu, pytest.mark.engine]


# SmolLM2-135M has 9 attention heads, which no tensor-parallel size > 1 divides (vLLM refuses
# it); its 30 layers split evenly into two pipeline stages.
def test_two_gpu_engine_streams_and_frees_every_gpu():
    before = gpu_memory_used()
    assert len(before) >= 2, "this test needs two GPUs"
    started = time.perf_counter()
    host = vstream.engine(pipeline_parallel_size=2, wait=True)
    startup_s = time.perf_counter() - started
    loaded = gpu_memory_used()
    assert host.info.pipeline_parallel_size == 2
    assert "×2" in host.info.describe()
    # The KV budget per GPU: each stage holds its 15 of the 30 layers for every token.
    shape = memory.ModelShape.from_checkpoint(host.info.model_path)
    assert host.info.kv_cache_bytes == (65_536 + 512) * shape.kv_bytes_per_token(pipeline_parallel=2)
    assert shape.kv_bytes_per_token(pipeline_parallel=2) == 11_520
    assert host.info.kv_cache_tokens >= 65_536 and "per GPU = " in host.info.describe()
    assert all(held - b > GIB // 2 for held, b in zip(loaded[:2], before[:2], strict=True)), (before, loaded)
    stream = host.stream("The future of artificial intelligence is", max_tokens=128, ignore_eos=True, seed=1)
    assert "".join(stream) == stream.text and len(stream.token_ids) == 128
    pids, info = host.process_ids(), host.info
    vstream.shutdown()
    after = _settle(before)
    assert all(a - b <= GIB // 2 for a, b in zip(after, before, strict=True)), (before, after)
    gib = [[round(x / GIB, 1) for x in reading] for reading in (loaded, after)]
    print(f"\nPP=2: loaded {gib[0]} GiB, after shutdown {gib[1]} GiB")
    _record(
        "pp2",
        {
            "pipeline_parallel_size": 2, "vllm": info.vllm_version, "startup_s": startup_s,
            "processes": len(pids), "tokens_per_s": stream.metrics.tokens_per_s, "ttft_s": stream.metrics.ttft_s,
            "gpu_used_before_gib": [b / GIB for b in before], "gpu_used_loaded_gib": [x / GIB for x in loaded],
            "gpu_used_after_gib": [a / GIB for a in after],
            "kv_cache_tokens": info.kv_cache_tokens, "kv_cache_gib_per_gpu": info.kv_cache_bytes / GIB,
        },
    )
