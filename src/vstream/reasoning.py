"""Reasoning split from the answer: ``<think>…</think>`` found in the text as it streams.

vLLM separates reasoning from the answer only in its OpenAI server (its reasoning parsers);
offline ``AsyncLLM`` returns one text (vllm#17292). This splitter works on the text deltas, so it
serves the in-process engine and a server's completions endpoint alike. A marker may arrive cut
across deltas (the embedded model spells ``<think>`` as five tokens ``<`` ``t`` ``h`` ``ink``
``>``): the longest tail of the held text that could still begin a marker is kept back until
the next delta decides it.

Models whose vocabulary has the markers as tokens (Qwen3, DeepSeek-R1) go through vLLM's own
reasoning parser instead (``TokenSplitter``): it finds the marker token ids, so it works even
where the detokenized text leaves special tokens out.
"""

from __future__ import annotations

import functools
from collections.abc import Container, Sequence
from typing import Any

START, END = "<think>", "</think>"
REASONING, ANSWER = "reasoning", "answer"

Piece = tuple[str, str]  # (REASONING or ANSWER, text)


def has_marker_tokens(vocabulary: Container[str] | None) -> bool:
    return vocabulary is not None and START in vocabulary and END in vocabulary


def is_thinking_model(vocabulary: Container[str] | None, chat_template: str | None) -> bool:
    """True when the tokenizer has the markers as tokens or the chat template writes them: the
    ``reasoning=None`` (auto) rule."""
    return has_marker_tokens(vocabulary) or (bool(chat_template) and END in chat_template)  # type: ignore[operator]


def starts_inside(prompt: str) -> bool:
    """The rendered prompt ends in an open ``<think>`` (DeepSeek-R1's template opens it): the
    model's text begins with reasoning and only closes the block."""
    return prompt.rstrip().endswith(START)


def _held_back(text: str, marker: str) -> int:
    """How many trailing characters of ``text`` could be the start of ``marker``."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Feed text deltas, get ``(kind, text)`` pieces: reasoning until ``</think>``, then answer.

    Before any text the model may open a block (``<think>``, after optional whitespace); if its
    first characters cannot be that, all of it is answer. ``inside=True``: the prompt opened it.
    """

    def __init__(self, *, inside: bool = False) -> None:
        self.state = REASONING if inside else "before"
        self._held = ""
        self._answer_started = False
        self._thought = inside  # a block was open: the answer after it loses its leading blank lines

    def feed(self, text: str, token_ids: Sequence[int] = ()) -> list[Piece]:
        pieces: list[Piece] = []
        text = self._held + text
        self._held = ""
        if self.state == "before":
            stripped = text.lstrip()
            if stripped.startswith(START):
                self.state, text, self._thought = REASONING, stripped[len(START) :], True
            elif START.startswith(stripped):  # "", "<", "<th": not decided yet
                self._held = text
                return pieces
            else:
                self.state = ANSWER
        if self.state == REASONING:
            at = text.find(END)
            if at < 0:
                keep = _held_back(text, END)
                self._held = text[len(text) - keep :] if keep else ""
                self._add(pieces, REASONING, text[: len(text) - keep])
                return pieces
            self._add(pieces, REASONING, text[:at])
            self.state, text = ANSWER, text[at + len(END) :]
        self._add(pieces, ANSWER, text)
        return pieces

    def flush(self) -> list[Piece]:
        """At the end: what was held back, as whatever it was inside of."""
        held, self._held = self._held, ""
        pieces: list[Piece] = []
        self._add(pieces, REASONING if self.state == REASONING else ANSWER, held)
        return pieces

    def _add(self, pieces: list[Piece], kind: str, text: str) -> None:
        if kind == ANSWER and self._thought and not self._answer_started:
            text = text.lstrip()  # the blank line(s) models put after </think>
            self._answer_started = bool(text)
        if text:
            pieces.append((kind, text))


class TokenSplitter:
    """vLLM's reasoning parser over the deltas (``extract_reasoning_streaming``, by token ids):
    for tokenizers with the marker tokens. Same interface as ``ThinkSplitter``."""

    def __init__(self, parser: Any, *, inside: bool = False) -> None:
        self._parser = parser
        self._text = ""
        self._ids: list[int] = []
        self.state = REASONING if inside else "before"

    def feed(self, text: str, token_ids: Sequence[int] = ()) -> list[Piece]:
        previous_text, previous_ids = self._text, self._ids
        self._text, self._ids = previous_text + text, [*previous_ids, *token_ids]
        message = self._parser.extract_reasoning_streaming(
            previous_text, self._text, text, previous_ids, self._ids, list(token_ids)
        )
        if self.state == "before" and self._parser.start_token_id in self._ids:
            self.state = REASONING
        pieces: list[Piece] = []
        if message is None:
            return pieces
        thought = getattr(message, "reasoning", None) or getattr(message, "reasoning_content", None)
        if thought and self.state != ANSWER:
            pieces.append((REASONING, thought.replace(START, "")))
        content = message.content or ""
        if content and self.state == REASONING:
            content = content.lstrip()  # the blank line(s) after </think>
        if content:
            pieces.append((ANSWER, content))
            self.state = ANSWER
        return [(kind, piece) for kind, piece in pieces if piece]

    def flush(self) -> list[Piece]:
        return []


def vllm_parser(tokenizer: Any, *, inside: bool) -> Any:
    """vLLM's parser for ``<think>`` marker tokens: DeepSeek-R1's when the prompt opened the block
    (its text starts inside it), else the base one, which waits for ``<think>``."""
    from vllm.reasoning import ReasoningParserManager

    if inside:
        return ReasoningParserManager.get_reasoning_parser("deepseek_r1")(tokenizer)
    return _base_parser_class()(tokenizer)


@functools.cache
def _base_parser_class() -> type:
    from vllm.reasoning.basic_parsers import BaseThinkingReasoningParser

    class ThinkParser(BaseThinkingReasoningParser):  # type: ignore[misc]
        """``<think>…</think>`` by token id; a text that does not open the block is answer."""

        @property
        def start_token(self) -> str:
            return START

        @property
        def end_token(self) -> str:
            return END

    return ThinkParser
