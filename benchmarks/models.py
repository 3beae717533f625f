"""The engines the benchmark starts: the embedded model, or a Qwen2-style 1.5B model (the seed's
Qwen2.5-1.5B-Instruct dimensions from its published config) with dummy weights and the embedded
model's tokenizer, so that prompts tokenize and no download is needed.

One dimension differs: the vocabulary is the tokenizer's 49,152, not Qwen's 151,936. With the
larger one, most sampled ids have no text in this tokenizer, so the API's streams (which carry
text) got nothing to read while raw's counted tokens: the API looked cheaper than it is, and its
first and last tokens could not be timed. The LM head is then 75 M parameters instead of 233 M
(1.39 B in all instead of 1.54 B); the 28 layers of 1536/8960 are the model's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vstream.models import cache_dir, embedded_checkpoint

QWEN2_1P5B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536,
    "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
    "intermediate_size": 8960, "vocab_size": 49152, "tie_word_embeddings": True,
    "rope_theta": 1000000.0, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
    "hidden_act": "silu", "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2,
    "sliding_window": None, "use_sliding_window": False, "max_window_layers": 28,
}  # fmt: skip
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


def qwen2_dir(overrides: dict[str, Any] | None = None) -> Path:
    """A checkpoint folder without weights: the config and the embedded model's tokenizer."""
    config = {**QWEN2_1P5B, **(overrides or {})}
    source = embedded_checkpoint()
    shape = f"{config['hidden_size']}x{config['num_hidden_layers']}-v{config['vocab_size']}"
    target = cache_dir() / "bench" / f"qwen2-{shape}-dummy"
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    (target / "config.json").write_text(json.dumps(config, indent=1))
    return target


def engine_config(model: str, *, eager: bool) -> dict[str, Any]:
    config: dict[str, Any] = {"enforce_eager": eager}
    if model == "qwen2-1.5b":
        config.update(model=str(qwen2_dir()), max_model_len=4096, engine_args={"load_format": "dummy"})
    return config
