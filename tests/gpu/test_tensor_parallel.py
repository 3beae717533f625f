"""Tensor parallelism in the kernel (device tool, a 2-GPU machine): both GPUs used, both freed.

Run there with ``pytest -m multigpu``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

import vstream
from reliability.test_engine_death import _alive
from vstream import memory
from vstream.models import EMBEDDED_MODEL, resolve_model

from .test_gpu_engine import GIB, _record, _settle, gpu_memory_used
from .test_gpu_kernel_end import shared_engine_set_aside  # noqa: F401 (a fixture, used by name below)

pytestmark = [
    pytest.mark.gpu, pytest.mark.multigpu, pytest.mark.engine, pytest.mark.usefixtures("shared_engine_set_aside"),
]


def eight_head_model(folder: Path) -> Path:
    """SmolLM2-135M's tokenizer with a config TP=2 can split (its own 9 heads it cannot); no weights.

    The engine loads it with ``load_format="dummy"`` (random weights: gibberish text, real work on
    both GPUs). head_dim 64 as in SmolLM2; 8 layers instead of 30 to start faster.
    """
    source = Path(resolve_model(EMBEDDED_MODEL))
    folder.mkdir(parents=True)
    for file in source.iterdir():
        if file.suffix != ".safetensors" and file.name != "vstream-conversion.json":
            shutil.copy(file, folder / file.name)
    config = json.loads((source / "config.json").read_text())
    config.update(
        hidden_size=512, num_attention_heads=8, num_key_value_heads=2, head_dim=64,
        intermediate_size=1536, num_hidden_layers=8,
    )
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def test_tensor_parallel_engine_streams_and_frees_both_gpus(tmp_path):
    before = gpu_memory_used()
    assert len(before) >= 2, "this test needs two GPUs"
    model = eight_head_model(tmp_path / "smollm2-8-heads")
    started = time.perf_counter()
    try:
        host = vstream.engine(
            # pipeline_parallel_size given: engine() keeps what the session's last engine had (PP=2 there).
            model=str(model), tensor_parallel_size=2, pipeline_parallel_size=1,
            max_model_len=2048,
            engine_args={"load_format": "dummy"}, wait=True,
        )
        startup_s = time.perf_counter() - started
        loaded = gpu_memory_used()
        pids, info = host.process_ids(), host.info
        assert info.tensor_parallel_size == 2
        assert "×2 (tensor parallel 2" in info.describe() and "×2" in str(host.status())
        # The KV budget per GPU: each holds one of the 2 KV heads for every token.
        per_gpu = memory.ModelShape.from_checkpoint(model, dummy=True).kv_bytes_per_token(tensor_parallel=2)
        assert per_gpu == 2 * 8 * 1 * 64 * 2 and info.kv_cache_bytes == (65_536 + 512) * per_gpu
        assert info.kv_cache_tokens >= 65_536 and "per GPU = " in info.describe()
        assert all(x - b > GIB // 2 for x, b in zip(loaded[:2], before[:2], strict=True)), (before, loaded)
        # The workers start from the EngineCore, not from this process: they must be tracked too.
        assert len(pids) >= 3, pids
        stream = host.stream("The future of artificial intelligence is", max_tokens=64, ignore_eos=True, seed=1)
        assert "".join(stream) == stream.text and len(stream.token_ids) == 64
    finally:
        vstream.shutdown()  # a failed test must not leave both GPUs taken
    after = _settle(before)
    print(
        f"\nTP=2: {len(pids)} processes, loaded {[round(x / GIB, 1) for x in loaded]} GiB, "
        f"after shutdown {[round(a / GIB, 1) for a in after]} GiB, {stream.metrics.tokens_per_s:.0f} tokens/s"
    )
    assert _alive(pids) == []
    assert all(a - b <= GIB // 2 for a, b in zip(after, before, strict=True)), (before, after)
    _record(
        "tp2",
        {
            "tensor_parallel_size": 2, "model": "SmolLM2 tokenizer, 8 heads, 8 layers, dummy weights",
            "vllm": info.vllm_version, "startup_s": startup_s, "processes": len(pids),
            "tokens_per_s": stream.metrics.tokens_per_s, "ttft_s": stream.metrics.ttft_s,
            "gpu_used_before_gib": [b / GIB for b in before], "gpu_used_loaded_gib": [x / GIB for x in loaded],
            "gpu_used_after_gib": [a / GIB for a in after],
            "kv_cache_tokens": info.kv_cache_tokens, "kv_cache_gib_per_gpu": info.kv_cache_bytes / GIB,
        },
    )
