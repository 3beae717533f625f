"""The seam between "where tokens come from" and everything a user sees.

The EngineHost drives a Backend from its own event-loop thread; the magic, the panel and the
Stream never import vLLM. The in-process AsyncLLM is the first backend; a remote
OpenAI-compatible server fits the same shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from ..streaming import Stream

Progress = Callable[[str], None]
Messages = Sequence[dict[str, str]]


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    """What a ready engine is: shown by status lines and recorded next to benchmark results."""

    model: str
    model_path: str
    device: str
    device_name: str
    mode: str  # "eager" or "CUDA graphs" / "compiled"
    max_model_len: int
    kv_cache_tokens: int | None
    backend: str
    vllm_version: str
    torch_version: str
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    # What the memory buys, per device (None where unknown: a remote server).
    weight_bytes: int | None = None
    kv_cache_bytes: int | None = None
    can_sleep: bool = False
    # The keyword arguments the engine was built with (AsyncEngineArgs), for a raw AsyncLLM with
    # the very same settings (the benchmark's start-up and raw paths); None for a remote server.
    engine_args: dict[str, Any] | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def full_context_streams(self) -> int | None:
        """How many streams at the full context the KV cache holds at once."""
        return self.kv_cache_tokens // self.max_model_len if self.kv_cache_tokens else None

    def describe(self) -> str:
        tp, pp = self.tensor_parallel_size, self.pipeline_parallel_size
        gpus = f" ×{tp * pp} (tensor parallel {tp}, pipeline parallel {pp})" if tp * pp > 1 else ""
        return f"{self.model} on {self.device_name}{gpus} ({self.mode}, context {self.max_model_len:,}){self.memory()}"

    def memory(self) -> str:
        """`` · weights 0.25 GiB + KV 1.41 GiB = 65,536 tokens, 8 streams at full context``."""
        if not self.kv_cache_tokens:
            return ""
        per = " per GPU" if self.tensor_parallel_size * self.pipeline_parallel_size > 1 else ""
        weights = f"weights {self.weight_bytes / 2**30:.2f} GiB + " if self.weight_bytes else ""
        kv = f"KV {self.kv_cache_bytes / 2**30:.2f} GiB{per} = " if self.kv_cache_bytes else "KV cache "
        streams = self.full_context_streams
        fit = f"{streams} stream{'s' if streams != 1 else ''} at full context"
        return f" · {weights}{kv}{self.kv_cache_tokens:,} tokens, {fit}"


class PromptSpec(NamedTuple):
    """A prompt as a caller gives it: text or chat messages, whether to apply the chat template."""

    prompt: str | Messages
    chat: bool = False
    system: str | None = None

    @property
    def is_plain(self) -> bool:
        """Plain text sent as is (no chat template)."""
        return isinstance(self.prompt, str) and not self.chat and self.system is None

    def messages(self) -> list[dict[str, str]]:
        turns = [{"role": "user", "content": self.prompt}] if isinstance(self.prompt, str) else list(self.prompt)
        return turns if self.system is None else [{"role": "system", "content": self.system}, *turns]


@dataclasses.dataclass(frozen=True)
class RenderedPrompt:
    """A prompt as the model sees it: the text after the chat template, and its token ids."""

    text: str
    token_ids: list[int]


class Backend(Protocol):
    info: EngineInfo | None

    async def start(self, progress: Progress) -> EngineInfo:
        """Build the engine on the host's loop; return what it is."""

    def render_many(self, specs: Sequence[PromptSpec]) -> list[RenderedPrompt]:
        """Apply the chat template where asked and tokenize, all prompts at once; runs in the
        caller's thread (prompts arrive already validated)."""

    async def run(self, stream: Stream, prompt: RenderedPrompt, sampling: dict[str, Any]) -> None:
        """Feed ``stream`` until the request ends; finish it with a reason in every case."""

    def unfinished_requests(self) -> int:
        """Requests the engine still holds (0 after every cancel)."""

    def dead_reason(self) -> str | None:
        """Why the engine died, or None while it is healthy."""

    def process_ids(self) -> list[int]:
        """Processes this backend started (to check none outlive it)."""

    async def shutdown(self) -> None:
        """Stop the engine and its processes; idempotent."""
