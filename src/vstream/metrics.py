"""A request's timing: time to first token, speed, and (reasoning models) the same for the
thinking and the answer apart. Filled by the Stream as deltas arrive."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Metrics:
    """Timing of one request, in ``time.perf_counter()`` seconds.

    With reasoning on, tokens inside ``<think>…</think>`` count as ``reasoning_tokens``; the
    answer's own time to first token and speed are ``answer_ttft_s`` and ``answer_tokens_per_s``.
    """

    submitted_at: float
    first_token_at: float | None = None
    last_token_at: float | None = None
    finished_at: float | None = None
    tokens: int = 0
    reasoning_tokens: int = 0
    first_reasoning_at: float | None = None
    last_reasoning_at: float | None = None
    first_answer_at: float | None = None

    @property
    def ttft_s(self) -> float | None:
        """Time to first token."""
        return None if self.first_token_at is None else self.first_token_at - self.submitted_at

    @property
    def decode_s(self) -> float | None:
        if self.first_token_at is None or self.last_token_at is None:
            return None
        return self.last_token_at - self.first_token_at

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: tokens after the first, over the time since the first."""
        decode = self.decode_s
        if decode is None or decode <= 0 or self.tokens < 2:
            return None
        return (self.tokens - 1) / decode

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.submitted_at

    @property
    def answer_tokens(self) -> int:
        return self.tokens - self.reasoning_tokens

    @property
    def answer_ttft_s(self) -> float | None:
        """Time to the answer's first token (after the thinking, when there was any)."""
        return None if self.first_answer_at is None else self.first_answer_at - self.submitted_at

    @property
    def answer_tokens_per_s(self) -> float | None:
        return _rate(self.answer_tokens, self.first_answer_at, self.last_token_at)

    @property
    def thinking_s(self) -> float | None:
        """How long the model thought: its first reasoning token to its first answer token (or
        to its last reasoning token while the answer has not started)."""
        if self.first_reasoning_at is None:
            return None
        end = self.first_answer_at or self.last_reasoning_at or self.first_reasoning_at
        return end - self.first_reasoning_at

    @property
    def reasoning_tokens_per_s(self) -> float | None:
        return _rate(self.reasoning_tokens, self.first_reasoning_at, self.last_reasoning_at)

    def as_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {
            "ttft_s": self.ttft_s,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "duration_s": self.duration_s,
        }
        if self.reasoning_tokens:
            out.update(
                reasoning_tokens=self.reasoning_tokens, thinking_s=self.thinking_s,
                reasoning_tokens_per_s=self.reasoning_tokens_per_s, answer_tokens=self.answer_tokens,
                answer_ttft_s=self.answer_ttft_s, answer_tokens_per_s=self.answer_tokens_per_s,
            )  # fmt: skip
        return out

    def summary(self) -> str:
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s * 1000:.0f} ms")
        parts.append(f"{self.tokens} tokens")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        if self.reasoning_tokens:
            thinking = f"thinking {self.reasoning_tokens} tokens"
            if self.reasoning_tokens_per_s is not None:
                thinking += f" at {self.reasoning_tokens_per_s:.1f} tok/s"
            parts.append(thinking)
            answer = f"answer {self.answer_tokens} tokens"
            if self.answer_ttft_s is not None:
                answer += f", TTFT {self.answer_ttft_s * 1000:.0f} ms"
            if self.answer_tokens_per_s is not None:
                answer += f", {self.answer_tokens_per_s:.1f} tok/s"
            parts.append(answer)
        return " · ".join(parts)


def _rate(tokens: int, first: float | None, last: float | None) -> float | None:
    """Tokens after the first over the time since the first (None until there is a span)."""
    if first is None or last is None or tokens < 2 or last <= first:
        return None
    return (tokens - 1) / (last - first)
