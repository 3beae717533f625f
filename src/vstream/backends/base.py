"""The seam between "where tokens come from" and everything a user sees.

The EngineHost drives a Backend from its own event-loop thread; the magic, the panel and the
Stream never import vLLM. The in-process AsyncLLM is the first backend; a remote
OpenAI-compatible server fits the same shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

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

    def describe(self) -> str:
        kv = f", KV cache {self.kv_cache_tokens:,} tokens" if self.kv_cache_tokens else ""
        gpus = f" ×{self.tensor_parallel_size * self.pipeline_parallel_size}" if self.tensor_parallel_size * self.pipeline_parallel_size > 1 else ""
        return f"{self.model} on {self.device_name}{gpus} ({self.mode}{kv}, context {self.max_model_len})"


@dataclasses.dataclass(frozen=True)
class RenderedPrompt:
    """A prompt as the model sees it: the text after the chat template, and its token ids."""

    text: str
    token_ids: list[int]


class Backend(Protocol):
    info: EngineInfo | None

    async def start(self, progress: Progress) -> EngineInfo:
        """Build the engine on the host's loop; return what it is."""

    def render(self, prompt: str | Messages, *, chat: bool, system: str | None) -> RenderedPrompt:
        """Apply the chat template (if any) and tokenize; runs in the caller's thread."""

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
