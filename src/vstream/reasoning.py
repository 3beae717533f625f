"""Reasoning split from the answer: ``<think>…</think>`` found in the text as it streams.

vLLM separates reasoning from the answer only in its OpenAI server (its reasoning parsers);
offline ``AsyncLLM`` returns one text (vllm#17292). This splitter works on the text deltas, so it
serves the in-process engine and a server's completions endpoint alike. A marker may arrive cut
across deltas (the embedded model spells ``<think>`` as five tokens ``<`` ``t`` ``h`` ``ink``
``>``): the longest tail of the held text that could still begin a marker is kept back until
the next delta decides it. Models whose vocabulary has the markers as single tokens (Qwen3,
DeepSeek-R1: what vLLM's parsers look up) never cut them; the same code handles both.
"""

from __future__ import annotations

from collections.abc import Container

START, END = "<think>", "</think>"
REASONING, ANSWER = "reasoning", "answer"

Piece = tuple[str, str]  # (REASONING or ANSWER, text)


def is_thinking_model(vocabulary: Container[str] | None, chat_template: str | None) -> bool:
    """True when the tokenizer has the markers as tokens or the chat template writes them: the
    ``reasoning=None`` (auto) rule."""
    if vocabulary is not None and START in vocabulary and END in vocabulary:
        return True
    return bool(chat_template) and END in chat_template  # type: ignore[operator]


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

    def feed(self, text: str) -> list[Piece]:
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
