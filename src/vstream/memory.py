"""How much memory an engine needs, worked out from the model's own config before it starts.

vLLM sizes its KV cache as a *share* of the device (``gpu_memory_utilization``) minus what it
measured while profiling. A share is the wrong unit for a notebook: on vLLM's CPU backend it is a
share of NUMA node 0 (8-10 GiB of this 23 GiB machine) minus the worker's RSS, which goes
negative for small shares; on an H200 the 0.4 share gave a 135M model 42-57 GiB. So vstream asks
for a KV budget in *tokens*, turns it into bytes from the model's shape and passes vLLM
``kv_cache_memory_bytes``, which skips that arithmetic on both backends and both vLLM lines.

Every figure here is per device: with tensor parallelism each GPU holds its share of the KV
heads for every token, with pipeline parallelism its share of the layers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .errors import EngineConfigError, NotEnoughMemoryError

GiB = 1024**3

# The default budget: every stream the engine batches at once (max_num_seqs) gets a notebook-sized
# context. 1,024 tokens is 4x the default answer (256 tokens) beside a chat prompt of a few
# hundred; the teaching notebooks' longest request (04_chat's history) stays under 600.
DEFAULT_MAX_NUM_SEQS = 64
NOTEBOOK_CONTEXT_TOKENS = 1024
# vLLM allocates the cache in whole blocks (16 tokens on a GPU, 128 on this CPU backend) and keeps
# one as its null block, so a budget of exactly N tokens serves fewer: kv_cache_tokens=1000 gave
# 768 usable tokens here, and vLLM refused a 1,000-token context. Two blocks of up to 256 tokens
# on top make the budget asked for the floor of what can be used.
BLOCK_SLACK_TOKENS = 512

# What an engine holds beside weights and KV (CUDA context, activations, sampler, graphs; on a CPU
# the worker's libraries). Measured: H200, vLLM 0.26, eager, 1 GiB KV + 0.27 GiB weights held
# 2.21 GiB, so 0.94 GiB; CUDA graphs for 64 sizes add ~0.3 GiB. CPU: the worker's RSS was
# 0.3-0.96 GiB before its KV cache.
_RUNTIME_BYTES = {"cuda": int(1.0 * GiB), "cpu": int(1.0 * GiB)}
_GRAPHS_BYTES = int(0.5 * GiB)

_DTYPE_BYTES = {
    "float32": 4, "float": 4, "fp32": 4,
    "bfloat16": 2, "bf16": 2, "float16": 2, "half": 2, "fp16": 2,
    "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
}  # fmt: skip

_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(name: str, value: Any) -> int:
    """``2 * GiB``, ``"2GiB"``, ``"1.5 GB"``, ``"512MiB"`` → bytes (``G``/``M`` alone are binary)."""
    if isinstance(value, bool):
        raise EngineConfigError(f"{name} must be a number of bytes or a size like '2GiB', got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        size = int(value)
    elif isinstance(value, str) and (match := _SIZE.match(value)) and match.group(2).lower() in _UNITS:
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    else:
        raise EngineConfigError(
            f"{name} must be a number of bytes or a size like '2GiB' or '512MiB', got {value!r}"
        )
    if size <= 0:
        raise EngineConfigError(f"{name} must be more than 0 bytes, got {value!r}")
    return size


def gib(size: float) -> str:
    return f"{size / GiB:.2f} GiB"


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """What sizes an engine: the attention layout (for KV) and the weights."""

    layers: int
    kv_heads: int
    head_size: int
    dtype_bytes: int
    weight_bytes: int
    max_position: int | None
    scaled_positions: bool = False  # rope scaling: vLLM derives a longer context than max_position

    @classmethod
    def from_config(cls, config: dict[str, Any], *, dtype: str = "auto", weight_bytes: int | None = None) -> ModelShape:
        text = config.get("text_config", config)  # multimodal configs nest the language model's
        heads = int(text["num_attention_heads"])
        hidden = int(text["hidden_size"])
        head_size = int(text.get("head_dim") or hidden // heads)
        kv_heads = int(text.get("num_key_value_heads") or heads)
        dtype_bytes = _dtype_bytes(dtype, text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype"))
        position = text.get("max_position_embeddings")
        return cls(
            layers=int(text["num_hidden_layers"]),
            kv_heads=kv_heads,
            head_size=head_size,
            dtype_bytes=dtype_bytes,
            weight_bytes=weight_bytes if weight_bytes is not None else _estimated_weights(text, dtype_bytes),
            max_position=int(position) if position else None,
            scaled_positions=bool(text.get("rope_scaling")),
        )

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], *, dtype: str = "auto", dummy: bool = False) -> ModelShape:
        """Read ``config.json``; the weights are the checkpoint's files (estimated when ``dummy``)."""
        folder = Path(path)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        files = [] if dummy else [*folder.glob("*.safetensors"), *folder.glob("*.bin"), *folder.glob("*.pt")]
        on_disk = sum(f.stat().st_size for f in files) or None
        shape = cls.from_config(config, dtype=dtype)
        if on_disk is None:
            return shape
        # A checkpoint saved in float32 but run in bf16 holds half its file size on the device.
        stored = _dtype_bytes("auto", config.get("torch_dtype") or config.get("dtype"))
        return dataclasses.replace(shape, weight_bytes=on_disk * shape.dtype_bytes // stored)

    def kv_bytes_per_token(self, *, tensor_parallel: int = 1, pipeline_parallel: int = 1) -> int:
        """K and V for one token on one device: 2 x layers x KV heads x head size x dtype bytes.

        Tensor parallelism splits the KV heads (each GPU keeps at least one: vLLM replicates
        heads when there are fewer than GPUs); pipeline parallelism splits the layers.
        """
        heads = max(1, math.ceil(self.kv_heads / tensor_parallel))
        layers = math.ceil(self.layers / pipeline_parallel)
        return 2 * layers * heads * self.head_size * self.dtype_bytes


def _dtype_bytes(requested: str, from_config: Any) -> int:
    name = requested if requested and requested != "auto" else (from_config or "bfloat16")
    name = str(name).replace("torch.", "").lower()
    if name == "float32" and requested == "auto":
        name = "bfloat16"  # vLLM runs float32 checkpoints in bf16 by default ("auto")
    if name not in _DTYPE_BYTES:
        raise EngineConfigError(f"dtype {name!r} is not one vstream can size; use bfloat16, float16 or float32")
    return _DTYPE_BYTES[name]


def _estimated_weights(text: dict[str, Any], dtype_bytes: int) -> int:
    """Parameters of a decoder-only transformer from its config (for ``load_format="dummy"``)."""
    hidden, layers = int(text["hidden_size"]), int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    head_size = int(text.get("head_dim") or hidden // heads)
    kv_heads = int(text.get("num_key_value_heads") or heads)
    intermediate = int(text.get("intermediate_size") or 4 * hidden)
    vocab = int(text.get("vocab_size") or 32000)
    attention = hidden * head_size * (2 * heads + 2 * kv_heads)  # q, o and k, v projections
    mlp = 3 * hidden * intermediate  # gate, up, down
    embeddings = vocab * hidden * (1 if text.get("tie_word_embeddings", False) else 2)
    return (layers * (attention + mlp + 2 * hidden) + embeddings) * dtype_bytes


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """One device's share of an engine: weights, KV cache and the runtime beside them."""

    device: str
    weight_bytes: int
    kv_bytes: int
    kv_tokens: int
    bytes_per_token: int
    runtime_bytes: int
    max_model_len: int

    @property
    def needed_bytes(self) -> int:
        return self.weight_bytes + self.kv_bytes + self.runtime_bytes

    @property
    def full_context_streams(self) -> int:
        return self.kv_tokens // self.max_model_len

    def describe(self) -> str:
        return (
            f"weights {gib(self.weight_bytes)} + KV cache {gib(self.kv_bytes)} "
            f"({self.kv_tokens:,} tokens) + runtime ~{gib(self.runtime_bytes)}"
        )


def plan(
    shape: ModelShape,
    *,
    device: str,
    kv_cache_tokens: int | None = None,
    kv_cache_memory: int | None = None,
    max_model_len: int | None = None,
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    cuda_graphs: bool = False,
) -> MemoryPlan:
    """The KV budget in tokens and bytes, and the context it can serve.

    With neither budget given: ``max_num_seqs`` streams of a notebook-sized context. The context
    defaults to the model's own, capped at the budget (vLLM refuses a context that one stream
    could not fill), so a 128k-context model starts in a notebook without a 16 GiB cache.
    """
    per_token = shape.kv_bytes_per_token(tensor_parallel=tensor_parallel, pipeline_parallel=pipeline_parallel)
    if kv_cache_memory is not None:
        tokens = max(0, kv_cache_memory // per_token - BLOCK_SLACK_TOKENS)
    elif kv_cache_tokens is not None:
        tokens = kv_cache_tokens
    else:
        tokens = max_num_seqs * NOTEBOOK_CONTEXT_TOKENS
    context = max_model_len or min(shape.max_position or tokens, tokens)
    if max_model_len and shape.max_position and max_model_len > shape.max_position and not shape.scaled_positions:
        raise EngineConfigError(
            f"max_model_len={max_model_len:,} is longer than the model's context of "
            f"{shape.max_position:,} tokens (max_position_embeddings in its config.json): lower it"
        )
    if tokens < context:
        which = "kv_cache_memory" if kv_cache_memory is not None else "kv_cache_tokens"
        raise EngineConfigError(
            f"{which} holds {tokens:,} tokens, fewer than one stream at the full context "
            f"(max_model_len={context:,}): raise {which} to at least {context:,} tokens "
            f"({gib(context * per_token)}) or lower max_model_len"
        )
    runtime = _RUNTIME_BYTES.get(device, _RUNTIME_BYTES["cuda"]) + (_GRAPHS_BYTES if cuda_graphs else 0)
    world = tensor_parallel * pipeline_parallel
    return MemoryPlan(
        device=device,
        weight_bytes=math.ceil(shape.weight_bytes / world),
        kv_bytes=kv_cache_memory if kv_cache_memory is not None else (tokens + BLOCK_SLACK_TOKENS) * per_token,
        kv_tokens=tokens,
        bytes_per_token=per_token,
        runtime_bytes=runtime,
        max_model_len=context,
    )


# --- what the device has free --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FreeMemory:
    where: str  # "the GPU 0 (NVIDIA H200)", "this machine", "NUMA node 0"
    free_bytes: int
    total_bytes: int


def free_memory(device: str, devices: int = 1) -> list[FreeMemory]:
    """Free memory where the engine will allocate, read without creating a CUDA context here.

    CPU: the machine's available memory, and NUMA node 0's (vLLM's CPU backend puts the KV cache
    there and refuses a budget larger than the node has). GPU: ``nvidia-smi`` for each device the
    engine will use. Empty when it cannot be read (then vLLM's own checks are all there is).
    """
    if device == "cpu":
        import psutil

        system = psutil.virtual_memory()
        found = [FreeMemory("this machine", int(system.available), int(system.total))]
        node = _numa_node0()
        if node is not None:
            found.append(node)
        return found
    if device == "cuda":
        return _gpus()[:devices]
    return []


def _numa_node0() -> FreeMemory | None:
    try:
        lines = Path("/sys/devices/system/node/node0/meminfo").read_text().splitlines()
    except OSError:
        return None
    info = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 4:
            info[parts[2].rstrip(":")] = int(parts[3]) * 1024
    # The same sum vLLM's CPU backend calls available (free plus what the kernel can reclaim).
    available = sum(info.get(key, 0) for key in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable"))
    return FreeMemory("NUMA node 0", available, info.get("MemTotal", 0))


def _gpus() -> list[FreeMemory]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    command = [smi, "--query-gpu=index,name,memory.free,memory.total", "--format=csv,noheader,nounits"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        command += ["-i", visible]
    try:
        rows = subprocess.run(command, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for row in rows.strip().splitlines():
        index, name, free, total = (part.strip() for part in row.split(","))
        found.append(FreeMemory(f"GPU {index} ({name})", int(free) * 1024**2, int(total) * 1024**2))
    return found


def check_fits(memory_plan: MemoryPlan, free: list[FreeMemory]) -> None:
    """Refuse a start whose weights + KV cannot fit, with the numbers and what to lower."""
    for place in free:
        node = place.where == "NUMA node 0"
        needed = memory_plan.kv_bytes if node else memory_plan.needed_bytes
        if needed <= place.free_bytes:
            continue
        what = f"its KV cache ({gib(memory_plan.kv_bytes)})" if node else memory_plan.describe()
        fits = max(0, place.free_bytes - (0 if node else memory_plan.weight_bytes + memory_plan.runtime_bytes))
        tokens = max(0, fits // memory_plan.bytes_per_token - BLOCK_SLACK_TOKENS)
        raise NotEnoughMemoryError(
            f"not enough memory to start the engine: it needs {gib(needed)} on {place.where} for "
            f"{what}, and {gib(place.free_bytes)} of {gib(place.total_bytes)} is free. "
            f"Lower kv_cache_memory or kv_cache_tokens (about {tokens:,} tokens would fit) or "
            f"max_model_len, or stop another engine using that memory."
        )


def gpu_share(memory_plan: MemoryPlan, free: list[FreeMemory]) -> float | None:
    """The ``gpu_memory_utilization`` that asks vLLM's start-up check for what this engine needs.

    With ``kv_cache_memory_bytes`` vLLM no longer sizes anything from the share, but its worker
    still refuses to start unless share x total is free (``request_memory``, vLLM 0.26): with
    vLLM's default 0.9 the second engine on a GPU could not start. 25 % headroom over the plan.
    """
    if not free or memory_plan.device != "cuda":
        return None
    total = min(place.total_bytes for place in free)
    if total <= 0:
        return None
    return round(min(0.95, max(0.02, memory_plan.needed_bytes * 1.25 / total)), 4)
