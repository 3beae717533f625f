"""The wire protocol between the kernel and the widget's front end: what changed in a stream.

A ``ColumnFeed`` follows one Stream for one column of a view (the panel's, or the magic's live
view) and turns each repaint into one message holding only what is new since the last one::

    {"type": "delta", "column": 0, "text": "new answer text", "status": "TTFT 31 ms · 7 tokens · …",
     "reasoning": "new thinking text", "thinking": "Thinking… (4 tokens)",      # reasoning models
     "tokens": [["tok", -0.02, [["tok", -0.02], ["alt", -4.1]]], ...]}           # logprob view
    {"type": "start", "logprobs": false, "columns": [{"title": null, "request_id": "vs-1-…"}]}   # first
    {"type": "done", "column": 0, "status": "… · finish: stop", "finish": "stop", "error": false,
     "note": "why an empty answer is empty" | null, "thinking": "Thought for 0.3 s (11 tokens)" | null,
     "metrics": {"ttft_s": 0.031, "tokens": 40, "tokens_per_s": 17.2, "duration_s": 2.3, ...}}

Reading what is new costs what is new (``Stream.read_from``), so the kernel's CPU per repaint
does not grow with the answer. ``result()`` is the column's final state, kept in the widget's
state once the stream ends (a saved notebook shows it without a kernel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import render
from ..streaming import ERROR, Stream, TokenLogprob

# Logprobs are shown as percentages with one decimal and as colours: 5 decimals of a log
# probability is far finer than either, and keeps each token's alternatives short on the wire.
LOGPROB_DECIMALS = 5


def token_json(token: TokenLogprob) -> list[Any]:
    """``[text, logprob, [[alternative, logprob], ...]]``: one token as the front end reads it."""
    return [
        token.token,
        round(token.logprob, LOGPROB_DECIMALS),
        [[alt, round(lp, LOGPROB_DECIMALS)] for alt, lp in token.top],
    ]


class ColumnFeed:
    """Turns one Stream into delta messages for column ``column`` of a view."""

    def __init__(self, stream: Stream, column: int, *, logprobs: bool, chat_hint: str | None = None) -> None:
        self.stream = stream
        self.column = column
        self.logprobs = logprobs
        self.chat_hint = chat_hint  # what the empty-answer note suggests (None: chat was on)
        self._answer = self._reasoning = self._tokens = 0  # pieces already sent
        self._thinking: str | None = None
        self._version = -1
        self.finished = False

    def delta(self) -> dict[str, Any] | None:
        """What changed since the last call, as one message; None when nothing did."""
        stream = self.stream
        version = stream.version
        if version == self._version:
            return None
        self._version = version
        answer, reasoning, tokens = stream.read_from(self._answer, self._reasoning, self._tokens)
        self._answer += len(answer)
        self._reasoning += len(reasoning)
        self._tokens += len(tokens)
        message: dict[str, Any] = {"type": "delta", "column": self.column, "text": "".join(answer)}
        if reasoning:
            message["reasoning"] = "".join(reasoning)
        thinking = render.thinking_title(stream, seen_reasoning=self._reasoning > 0)
        if thinking != self._thinking:
            self._thinking = thinking
            message["thinking"] = thinking
        if self.logprobs and tokens:
            message["tokens"] = [token_json(t) for t in tokens]
        message["status"] = render.status_line(stream)
        return message

    def done(self) -> dict[str, Any]:
        """The column's last message (call after the stream ended and ``delta()`` was sent)."""
        self.finished = True
        stream = self.stream
        return {
            "type": "done",
            "column": self.column,
            "status": render.status_line(stream),
            "finish": stream.finish_reason,
            "error": stream.finish_reason == ERROR,
            "note": render.empty_answer_note(stream, chat_hint=self.chat_hint),
            "thinking": render.thinking_title(stream, seen_reasoning=self._reasoning > 0),
            "metrics": stream.metrics.as_dict(),
        }

    def result(self, title: str | None = None) -> dict[str, Any]:
        """The column's final state, for the widget's ``results`` trait (synced once, at the end)."""
        stream = self.stream
        logprobs = stream.logprobs if self.logprobs else None
        return {
            "request_id": stream.request_id,
            "title": title,
            "text": stream.text,
            "reasoning": stream.reasoning,
            "tokens": None if logprobs is None else [token_json(t) for t in logprobs],
            **{k: v for k, v in self.done().items() if k not in ("type", "column")},
        }


def payload_bytes(stream: Stream) -> int:
    """What an answer holds, as compact JSON: its text plus its tokens' logprobs and
    alternatives at full precision (the yardstick for what a view may send for it)."""
    import json

    tokens = [[t.token, t.logprob, [list(alt) for alt in t.top]] for t in stream.logprobs or []]
    body = {"text": stream.text, "tokens": tokens}
    return len(json.dumps(body, separators=(",", ":")).encode())  # as testing.Message counts it


def send_changes(send: Callable[[dict[str, Any]], None], feeds: Sequence[ColumnFeed], final: bool) -> None:
    """One repaint of a view: each column's delta, and its ``done`` once its stream has ended."""
    for feed in feeds:
        if feed.finished:
            continue
        delta = feed.delta()
        if delta is not None:
            send(delta)
        if final or feed.stream.done:
            send(feed.done())


def start_message(feeds: Sequence[ColumnFeed], titles: Sequence[str | None], *, logprobs: bool) -> dict[str, Any]:
    """The message that opens a generation: its columns (title, request id) and whether tokens come."""
    columns = [
        {"title": title, "request_id": feed.stream.request_id} for feed, title in zip(feeds, titles, strict=True)
    ]
    return {"type": "start", "logprobs": logprobs, "columns": columns}
