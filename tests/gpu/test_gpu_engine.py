"""On a CUDA GPU (device tool, not CI): the engine uses the GPU and gives its memory back.

Run there with ``pytest -m "gpu or engine"``; results go to ``$VSTREAM_RESULTS`` (JSON).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import vstream

pytestmark = [pytest.mark.gpu, pytest.mark.engine]

GIB = 1024**3


def gpu_memory_used() -> list[int]:
    """Bytes in use on each GPU, as the driver reports them (no CUDA context in this process)."""
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [int(line) * 1024**2 for line in out.split()]


def gpu_name() -> str:
    return subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0].strip()


def _settle(before: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    used = gpu_memory_used()
    while any(u - b > GIB // 2 for u, b in zip(used, before, strict=True)) and time.monotonic() < deadline:
        time.sleep(0.5)
        used = gpu_memory_used()
    return used


def _record(name: str, data: dict) -> None:
    folder = Path(os.environ.get("VSTREAM_RESULTS", "benchmarks/results"))
    folder.mkdir(parents=True, exist_ok=True)
    data = {"card": gpu_name(), "date": datetime.datetime.now(datetime.UTC).isoformat(), **data}
    cards = data.get("gpu_used_before_gib")
    tag = card_tag(data["card"], len(cards) if isinstance(cards, list) else 1)
    (folder / f"{tag}-{name}.json").write_text(json.dumps(data, indent=2))


def card_tag(card: str, count: int = 1) -> str:
    """('NVIDIA H100 80GB HBM3', 2) -> 'h100x2': result files are named after what ran them."""
    model = re.search(r"\b([A-Z]\d{2,3}[A-Z]?)\b", card)
    tag = model.group(1).lower() if model else "gpu"
    return f"{tag}x{count}" if count > 1 else tag


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "cuda-graphs"])
def test_engine_runs_on_the_gpu_and_gives_its_memory_back(host, eager):
    config = {"max_model_len": host.config.max_model_len}
    vstream.shutdown()
    before = _settle(gpu_memory_used(), timeout=10)
    started = time.perf_counter()
    engine = vstream.engine(**config, enforce_eager=eager, wait=True)
    startup_s = time.perf_counter() - started
    loaded = gpu_memory_used()
    info = engine.info
    assert info.device == "cuda"
    assert "NVIDIA" in info.device_name or "H100" in info.device_name or "H200" in info.device_name
    assert info.mode == ("eager" if eager else "CUDA graphs")
    assert sum(loaded) - sum(before) > GIB // 2  # the engine really sits on the GPU
    stream = engine.stream("The future of artificial intelligence is", max_tokens=256, ignore_eos=True, seed=42)
    text = "".join(stream)
    assert text == stream.text and len(stream.token_ids) == 256
    vstream.shutdown()
    after = _settle(before)
    assert all(a - b <= GIB // 2 for a, b in zip(after, before, strict=True)), (before, after)
    _record(
        f"engine-{'eager' if eager else 'graphs'}",
        {
            "vllm": info.vllm_version, "torch": info.torch_version, "mode": info.mode,
            "startup_s": startup_s, "ttft_s": stream.metrics.ttft_s, "tokens_per_s": stream.metrics.tokens_per_s,
            "gpu_used_before_gib": sum(before) / GIB, "gpu_used_loaded_gib": sum(loaded) / GIB,
            "gpu_used_after_shutdown_gib": sum(after) / GIB, "kv_cache_tokens": info.kv_cache_tokens,
        },
    )
    # leave the shared host as the other tests expect it
    vstream.engine(**config, enforce_eager=True, wait=True)
