"""Engine and sampling settings: defaults per platform, and validation with specific messages.

Validation happens here, in the caller's thread, so a bad value never reaches the engine and
the error names the parameter and its allowed range.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import platform
import shutil
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import options, structured
from .errors import EngineConfigError, SamplingError
from .memory import gib, parse_bytes
from .models import EMBEDDED_MODEL


def detect_device() -> str:
    """``cuda`` when an NVIDIA GPU is visible, else ``cpu``; never initialises CUDA here.

    The kernel process must not create a CUDA context of its own (it would hold GPU memory for
    the life of the kernel), so this asks the driver's tool rather than torch.
    """
    forced = os.environ.get("VSTREAM_DEVICE")
    if forced:
        return forced
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return "cpu"
    if shutil.which("nvidia-smi") or os.path.exists("/dev/nvidiactl"):
        return "cuda"
    return "cpu"


def cpu_model() -> str:
    """The processor's model name, for status lines and benchmark records."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """What identifies an engine: changing any field means a restart.

    ``enforce_eager=True`` starts fast (no compilation, no CUDA graphs); ``False`` spends start-up
    time on torch.compile and CUDA graphs to decode faster on a GPU.

    Memory: the engine takes the model's weights plus a KV cache of ``kv_cache_tokens`` (default:
    ``max_num_seqs`` streams of 1,024 tokens) or ``kv_cache_memory`` bytes per device (an int or
    ``"2GiB"``). ``gpu_memory_utilization`` is vLLM's share of the device, only when asked for.
    """

    model: str = EMBEDDED_MODEL
    dtype: str = "auto"
    max_model_len: int | None = None
    kv_cache_tokens: int | None = None
    kv_cache_memory: int | None = None  # bytes per device; from_kwargs parses "2GiB"
    gpu_memory_utilization: float | None = None
    enforce_eager: bool = True
    max_num_seqs: int | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    seed: int = 0
    allow_download: bool = False
    engine_args: tuple[tuple[str, Any], ...] = ()
    # Set: tokens come from an OpenAI-compatible server (``vstream.connect``), not an in-process engine.
    base_url: str | None = None

    @classmethod
    def from_kwargs(cls, base: EngineConfig | None = None, **kwargs: Any) -> EngineConfig:
        """Build from keyword arguments, starting from ``base``; unknown names are errors."""
        fields = [f.name for f in dataclasses.fields(cls)]
        problem = unknown_name("engine option", kwargs, fields)
        if problem:
            raise EngineConfigError(problem + "; pass other AsyncEngineArgs through engine_args={...}")
        if "engine_args" in kwargs and isinstance(kwargs["engine_args"], Mapping):
            kwargs["engine_args"] = tuple(sorted(kwargs["engine_args"].items()))
        if kwargs.get("kv_cache_memory") is not None:
            # Parsed here so that "1GiB" and 1073741824 are the same engine (no restart).
            kwargs["kv_cache_memory"] = parse_bytes("kv_cache_memory", kwargs["kv_cache_memory"])
        for one, other in (("kv_cache_tokens", "kv_cache_memory"), ("kv_cache_memory", "kv_cache_tokens")):
            if kwargs.get(one) is not None and other not in kwargs:
                kwargs[other] = None  # a new budget replaces the other kind a running engine had
        config = dataclasses.replace(base or cls(), **kwargs)
        config.validate()
        return config

    def validate(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise EngineConfigError(f"model must be a non-empty string, got {self.model!r}")
        share = self.gpu_memory_utilization
        if share is not None and not (_is_real(share) and 0.0 < share <= 1.0):
            raise EngineConfigError(f"gpu_memory_utilization must be in (0, 1], got {share!r}")
        tokens = self.kv_cache_tokens
        if tokens is not None and not (_is_int(tokens) and tokens >= 16):
            raise EngineConfigError(f"kv_cache_tokens must be an integer ≥ 16, got {tokens!r}")
        if tokens is not None and self.kv_cache_memory is not None:
            raise EngineConfigError("give kv_cache_tokens or kv_cache_memory, not both (they set the same budget)")
        if self.max_model_len is not None and not (_is_int(self.max_model_len) and self.max_model_len >= 16):
            raise EngineConfigError(f"max_model_len must be an integer ≥ 16, got {self.max_model_len!r}")
        for name in ("tensor_parallel_size", "pipeline_parallel_size"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                raise EngineConfigError(f"{name} must be an integer ≥ 1, got {value!r}")
        if self.max_num_seqs is not None and not (_is_int(self.max_num_seqs) and self.max_num_seqs >= 1):
            raise EngineConfigError(f"max_num_seqs must be an integer ≥ 1, got {self.max_num_seqs!r}")
        if not isinstance(self.enforce_eager, bool):
            raise EngineConfigError(f"enforce_eager must be True or False, got {self.enforce_eager!r}")

    def describe_changes(self, other: EngineConfig) -> str:
        def shown(name: str, value: Any) -> str:
            return gib(value) if name == "kv_cache_memory" and value is not None else repr(value)

        changed = [
            f"{f.name}: {shown(f.name, getattr(self, f.name))} → {shown(f.name, getattr(other, f.name))}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]
        return ", ".join(changed)


# --- sampling ---------------------------------------------------------------------------------

# Like vLLM's streaming example, but with room for a paragraph (vLLM's own default is 16 tokens).
DEFAULT_SAMPLING: dict[str, Any] = dict(options.DEFAULTS)

MAX_LOGPROBS = int(options.BY_NAME["logprobs"].high)  # vLLM's default max_logprobs
MAX_STOP_STRINGS = 16


def unknown_name(kind: str, given: Iterable[str], known: Sequence[str]) -> str | None:
    """``"unknown <kind> 'x' (did you mean 'y'?)"`` for the first name not in ``known``."""
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return None
    hint = difflib.get_close_matches(unknown[0], known, n=1)
    return f"unknown {kind} {unknown[0]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")


# The exact-type checks first: the ABC checks behind them cost ~1 µs each, which adds up to a
# millisecond for a batch of 64 requests (time the user sees as time to first token).
def _is_int(value: Any) -> bool:
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def _is_real(value: Any) -> bool:
    if type(value) is float or type(value) is int:
        return math.isfinite(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _real(name: str, value: Any, low: float, high: float, *, low_open: bool = False, hint: str = "") -> float:
    bracket = "(" if low_open else "["
    bounds = f"{bracket}{low:g}, {high:g}]" if math.isfinite(high) else f"{bracket}{low:g}, ∞)"
    ok = _is_real(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        kind = "a finite number" if not _is_real(value) else "a number"
        raise SamplingError(f"{name} must be {kind} in {bounds}, got {value!r}{hint}")
    return float(value)


def _integer(name: str, value: Any, low: int, high: float, *, extra: str = "") -> int:
    if not _is_int(value) or value < low or value > high:
        bounds = f"[{low}, {int(high)}]" if math.isfinite(high) else f"≥ {low}"
        raise SamplingError(f"{name} must be an integer {bounds}{extra}, got {value!r}")
    return int(value)


def _stop(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise SamplingError(f"stop must be a string or a list of strings, got {type(value).__name__}")
    if len(items) > MAX_STOP_STRINGS:
        raise SamplingError(f"stop takes at most {MAX_STOP_STRINGS} strings, got {len(items)}")
    out = []
    for item in items:
        if not isinstance(item, str) or not item:
            raise SamplingError(f"stop strings must be non-empty strings, got {item!r}")
        _check_text("stop", item)
        out.append(item)
    return out


def _check_text(name: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SamplingError(
            f"{name} contains text that is not valid Unicode (a lone surrogate at index {exc.start})"
        ) from None


_STRUCTURED_CHECKS = {
    options.SCHEMA: structured.json_schema,
    options.REGEX: structured.regex,
    options.CHOICE: structured.choice,
    options.GRAMMAR: structured.grammar,
}


def _check(option: options.Option, value: Any) -> Any:
    """One option's value, checked by its row's kind and bounds (None: not sent)."""
    kind, name = option.kind, option.name
    if kind == options.REAL:
        return _real(name, value, option.low, option.high, low_open=option.low_open, hint=option.hint)
    if kind == options.INT:
        return _integer(name, value, int(option.low), option.high, extra=option.hint)
    if kind == options.OPTIONAL_INT:
        return None if value is None else _integer(name, value, int(option.low), option.high, extra=option.hint)
    if kind == options.FLAG:
        return _flag(name, value)
    if kind == options.TRISTATE:
        if value is not None and not isinstance(value, bool):
            raise SamplingError(f"{name} must be True, False or None (None: decided by the model), got {value!r}")
        return value
    if kind == options.STOP:
        return None if value is None else _stop(value)
    if value is None:
        return None
    if kind in _STRUCTURED_CHECKS:
        for text in [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else ():
            if isinstance(text, str):
                _check_text(name, text)
        return _STRUCTURED_CHECKS[kind](value)
    raise AssertionError(f"option {name!r} has a kind config does not check: {kind!r}")


SAMPLING_PARAMETERS = options.NAMES
# Options that exclude each other (one structured-output constraint per request).
_GROUPS = [
    tuple(o.name for o in options.OPTIONS if o.group == group)
    for group in dict.fromkeys(o.group for o in options.OPTIONS if o.group)
]


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SamplingError(f"{name} must be True or False, got {value!r}")
    return value


def validate_sampling(params: Mapping[str, Any], *, max_model_len: int | None = None) -> dict[str, Any]:
    """Return the checked sampling settings (defaults filled in), or raise ``SamplingError``."""
    problem = unknown_name("sampling parameter", params, SAMPLING_PARAMETERS)
    if problem:
        raise SamplingError(f"{problem}; known: {', '.join(SAMPLING_PARAMETERS)}")
    merged = {**DEFAULT_SAMPLING, **params}
    checked = {name: _check(options.BY_NAME[name], value) for name, value in merged.items()}
    for group in _GROUPS:
        given = [name for name in group if checked.get(name) is not None]
        if len(given) > 1:
            raise SamplingError(
                f"{given[0]} and {given[1]} cannot be used together: give at most one of {', '.join(group)}"
            )
    if max_model_len is not None and checked["max_tokens"] > max_model_len:
        raise SamplingError(
            f"max_tokens must be ≤ the model's context of {max_model_len} tokens, got {checked['max_tokens']}"
        )
    if checked.get("min_tokens", 0) > checked["max_tokens"]:
        raise SamplingError(
            f"min_tokens ({checked['min_tokens']}) must be ≤ max_tokens ({checked['max_tokens']})"
        )
    return {name: value for name, value in checked.items() if value is not None}


def validate_prompt(prompt: Any) -> None:
    """A prompt is non-empty text, or a non-empty list of chat messages; all of it valid Unicode."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise SamplingError("prompt is empty: give the model some text to continue")
        _check_text("prompt", prompt)
        return
    if not isinstance(prompt, (list, tuple)) or not prompt:
        raise SamplingError(
            f"prompt must be a string or a non-empty list of chat messages, got {type(prompt).__name__}"
        )
    for i, message in enumerate(prompt):
        if not isinstance(message, dict) or not all(isinstance(message.get(k), str) for k in ("role", "content")):
            raise SamplingError(f"chat message {i} must be a dict with string 'role' and 'content', got {message!r}")
        if message["role"] not in {"system", "user", "assistant"}:
            raise SamplingError(f"chat message {i} has role {message['role']!r}; use 'system', 'user' or 'assistant'")
        _check_text(f"chat message {i}", message["content"])
