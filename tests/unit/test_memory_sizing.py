"""The engine's memory worked out from real model configs: weights, KV bytes per token, the
default budget, the context it serves, and the refusal (with numbers) when it cannot fit."""

from __future__ import annotations

import json

import pytest

import vstream
from vstream import memory
from vstream.backends.base import EngineInfo
from vstream.errors import EngineConfigError, NotEnoughMemoryError
from vstream.memory import FreeMemory, GiB, ModelShape

# Qwen2.5-1.5B-Instruct's published dimensions (the seed's model), written by hand.
QWEN2_1_5B = {
    "architectures": ["Qwen2ForCausalLM"],
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}


@pytest.fixture(scope="module")
def smollm2() -> ModelShape:
    return ModelShape.from_checkpoint(vstream.models.embedded_checkpoint())


def test_embedded_model_kv_bytes_come_from_its_config(smollm2):
    # 30 layers x 3 KV heads x head size 64, K and V, bf16
    assert (smollm2.layers, smollm2.kv_heads, smollm2.head_size, smollm2.dtype_bytes) == (30, 3, 64, 2)
    assert smollm2.kv_bytes_per_token() == 2 * 30 * 3 * 64 * 2 == 23_040
    assert smollm2.max_position == 8192
    # 135M parameters in bf16, read from the checkpoint's files
    assert 0.24 * GiB < smollm2.weight_bytes < 0.30 * GiB


def test_default_budget_is_max_num_seqs_streams_of_a_notebook_context(smollm2):
    plan = memory.plan(smollm2, device="cpu")
    assert plan.kv_tokens == memory.DEFAULT_MAX_NUM_SEQS * memory.NOTEBOOK_CONTEXT_TOKENS == 65_536
    assert plan.kv_bytes == (65_536 + memory.BLOCK_SLACK_TOKENS) * 23_040  # 1.41 GiB, whole blocks
    assert plan.max_model_len == 8192 and plan.full_context_streams == 8
    assert memory.plan(smollm2, device="cpu", max_num_seqs=8).kv_tokens == 8192


def test_a_second_family_written_by_hand_sizes_weights_kv_and_parallel_splits():
    qwen = ModelShape.from_config(QWEN2_1_5B)
    assert qwen.kv_bytes_per_token() == 2 * 28 * 2 * 128 * 2 == 28_672
    assert 1.45e9 < qwen.weight_bytes / 2 < 1.6e9  # ~1.54 B parameters
    # tensor parallel splits the 2 KV heads; beyond 2 GPUs each keeps one (vLLM replicates)
    assert qwen.kv_bytes_per_token(tensor_parallel=2) == 14_336
    assert qwen.kv_bytes_per_token(tensor_parallel=4) == 14_336
    assert qwen.kv_bytes_per_token(pipeline_parallel=2) == 14_336  # 14 layers per GPU
    tp2 = memory.plan(qwen, device="cuda", tensor_parallel=2, kv_cache_tokens=32_768)
    assert tp2.kv_tokens == 32_768 and tp2.kv_bytes == (32_768 + 512) * 14_336  # bytes per GPU
    assert tp2.weight_bytes == pytest.approx(qwen.weight_bytes / 2, abs=1)
    assert tp2.max_model_len == 32_768 and tp2.full_context_streams == 1


def test_float32_checkpoint_runs_in_bf16_and_explicit_dtype_wins():
    config = {**QWEN2_1_5B, "torch_dtype": "float32"}
    assert ModelShape.from_config(config).dtype_bytes == 2  # vLLM's "auto" for float32 is bf16
    assert ModelShape.from_config(config, dtype="float32").dtype_bytes == 4
    with pytest.raises(EngineConfigError, match="dtype 'int3'"):
        ModelShape.from_config(config, dtype="int3")


def test_dummy_weights_are_estimated_from_the_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(QWEN2_1_5B))
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)  # not what the engine will hold
    dummy = ModelShape.from_checkpoint(tmp_path, dummy=True)
    assert dummy.weight_bytes == ModelShape.from_config(QWEN2_1_5B).weight_bytes


def test_long_context_model_is_capped_at_the_budget_and_budgets_convert():
    long = ModelShape.from_config({**QWEN2_1_5B, "max_position_embeddings": 131_072})
    plan = memory.plan(long, device="cuda")
    assert plan.max_model_len == 65_536  # not a 3.5 GiB cache for one 128k stream
    by_bytes = memory.plan(long, device="cuda", kv_cache_memory=2 * GiB)
    assert by_bytes.kv_tokens == 2 * GiB // 28_672 - 512 and by_bytes.kv_bytes == 2 * GiB


def test_a_budget_below_one_full_context_names_the_option_and_the_bound(smollm2):
    expected = r"kv_cache_tokens holds 4,096 tokens.*max_model_len=8,192.*at least 8,192"
    with pytest.raises(EngineConfigError, match=expected):
        memory.plan(smollm2, device="cpu", kv_cache_tokens=4096, max_model_len=8192)
    assert memory.plan(smollm2, device="cpu", kv_cache_tokens=4096).max_model_len == 4096


def test_a_context_longer_than_the_model_has_is_said_as_such(smollm2):
    with pytest.raises(EngineConfigError, match=r"max_model_len=100,000 is longer than the model's context of 8,192"):
        memory.plan(smollm2, device="cpu", max_model_len=100_000)
    scaled = ModelShape.from_config({**QWEN2_1_5B, "rope_scaling": {"type": "yarn", "factor": 4.0}})
    assert memory.plan(scaled, device="cuda", max_model_len=131_072, kv_cache_tokens=131_072).max_model_len == 131_072


def test_the_start_is_refused_with_needed_and_free_numbers(smollm2):
    plan = memory.plan(smollm2, device="cuda", kv_cache_memory=900 * GiB)
    free = [FreeMemory("GPU 0 (NVIDIA H200)", int(130 * GiB), int(139.8 * GiB))]
    with pytest.raises(NotEnoughMemoryError) as info:
        memory.check_fits(plan, free)
    message = str(info.value)
    parts = ("901.25 GiB", "GPU 0 (NVIDIA H200)", "KV cache 900.00 GiB", "130.00 GiB of 139.80 GiB", "kv_cache_memory")
    for part in parts:
        assert part in message, (part, message)
    memory.check_fits(memory.plan(smollm2, device="cuda"), free)  # the default fits


def test_numa_node_is_checked_against_the_kv_cache_alone(smollm2):
    plan = memory.plan(smollm2, device="cpu", kv_cache_memory=6 * GiB)
    free = [FreeMemory("this machine", 20 * GiB, 23 * GiB), FreeMemory("NUMA node 0", 5 * GiB, 8 * GiB)]
    with pytest.raises(NotEnoughMemoryError, match=r"6.00 GiB on NUMA node 0 for its KV cache"):
        memory.check_fits(plan, free)


def test_gpu_share_asks_vllms_start_check_only_for_what_the_engine_needs(smollm2):
    plan = memory.plan(smollm2, device="cuda")
    share = memory.gpu_share(plan, [FreeMemory("GPU 0", 100 * GiB, 140 * GiB)])
    assert share == pytest.approx(plan.needed_bytes * 1.25 / (140 * GiB), abs=1e-4)
    assert share < 0.03  # 16 such engines pass vLLM's "free ≥ share x total" check on one H200
    assert memory.gpu_share(memory.plan(smollm2, device="cpu"), []) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [(2 * GiB, 2 * GiB), ("2GiB", 2 * GiB), ("1.5 GiB", int(1.5 * GiB)), ("512MiB", 512 * 2**20),
     ("2G", 2 * GiB), ("2GB", 2 * 10**9), (1e9, 10**9)],
)  # fmt: skip
def test_sizes_parse_with_units(given, expected):
    assert memory.parse_bytes("kv_cache_memory", given) == expected


@pytest.mark.parametrize("bad", ["lots", "2 parsecs", -1, 0, True, "", 1.5, None])
def test_bad_sizes_name_the_option(bad):
    with pytest.raises(EngineConfigError, match="kv_cache_memory must be"):
        memory.parse_bytes("kv_cache_memory", bad)


def test_engine_config_normalises_budgets_and_refuses_two():
    assert vstream.EngineConfig.from_kwargs(kv_cache_memory="1GiB") == vstream.EngineConfig.from_kwargs(
        kv_cache_memory=GiB
    )
    with pytest.raises(EngineConfigError, match="not both"):
        vstream.EngineConfig.from_kwargs(kv_cache_memory="1GiB", kv_cache_tokens=4096)
    by_tokens = vstream.EngineConfig.from_kwargs(kv_cache_tokens=4096)
    switched = vstream.EngineConfig.from_kwargs(by_tokens, kv_cache_memory="1GiB")  # engine(...) again
    assert (switched.kv_cache_memory, switched.kv_cache_tokens) == (GiB, None)
    with pytest.raises(EngineConfigError, match=r"kv_cache_tokens must be an integer ≥ 16, got 8"):
        vstream.EngineConfig.from_kwargs(kv_cache_tokens=8)


def test_status_line_says_what_the_memory_buys():
    info = EngineInfo(
        model="m", model_path="/m", device="cuda", device_name="NVIDIA H200", mode="eager",
        max_model_len=8192, kv_cache_tokens=65_536, backend="b", vllm_version="0.26.0",
        torch_version="2.11", weight_bytes=int(0.25 * GiB), kv_cache_bytes=65_536 * 23_040,
    )  # fmt: skip
    assert info.full_context_streams == 8
    assert "weights 0.25 GiB + KV 1.41 GiB = 65,536 tokens, 8 streams at full context" in info.describe()


def test_a_parallel_engine_asking_for_more_gpus_than_visible_fails_before_vllm(monkeypatch):
    from vstream.backends.local import LocalBackend

    one_gpu = [FreeMemory("GPU 0 (NVIDIA H200)", 130 * GiB, 140 * GiB)]
    monkeypatch.setattr(memory, "free_memory", lambda device, devices: one_gpu[:devices])
    config = vstream.EngineConfig.from_kwargs(tensor_parallel_size=2)
    backend = LocalBackend(config, "cuda", verbose=False)
    with pytest.raises(vstream.EngineStartError, match=r"needs 2 GPUs, and 1 is visible \(GPU 0 \(NVIDIA H200\)\)"):
        backend._memory_plan(str(vstream.models.embedded_checkpoint()))


def test_status_of_a_parallel_engine_says_the_bytes_are_per_gpu():
    info = EngineInfo(
        model="m", model_path="/m", device="cuda", device_name="NVIDIA H200", mode="eager",
        max_model_len=8192, kv_cache_tokens=65_536, backend="b", vllm_version="0.26.0",
        torch_version="2.11", tensor_parallel_size=2, weight_bytes=int(0.13 * GiB),
        kv_cache_bytes=65_536 * 11_520,
    )  # fmt: skip
    assert "×2 (tensor parallel 2, pipeline parallel 1)" in info.describe()
    assert "KV 0.70 GiB per GPU = 65,536 tokens" in info.describe()


def test_a_restart_message_shows_the_kv_budget_in_gib():
    from vstream.config import EngineConfig

    before = EngineConfig.from_kwargs(kv_cache_memory="2GiB")
    after = EngineConfig.from_kwargs(kv_cache_memory="512MiB", max_num_seqs=8)
    assert before.describe_changes(after) == "kv_cache_memory: 2.00 GiB → 0.50 GiB, max_num_seqs: None → 8"
