"""HTML for streamed text, status lines and logprob colouring.

Model output and user prompts are untrusted: every string that becomes HTML passes through
``escape`` here, and nothing else in vstream builds HTML from text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from .streaming import CANCELLED, ERROR, Stream, TokenLogprob


def escape(text: str) -> str:
    """Text → HTML that shows the text literally (quotes too, so it is safe in attributes)."""
    return html.escape(text, quote=True)


def text_block(text: str, *, cursor: bool = False) -> str:
    caret = '<span class="vstream-cursor">▌</span>' if cursor else ""
    # An HTML parser drops a newline that comes right after <pre>: an answer that starts with
    # one gets a second to drop, so that it keeps its own.
    lead = "\n" if text.startswith("\n") else ""
    return (
        '<pre class="vstream-text" style="white-space:pre-wrap;word-break:break-word;'
        'margin:0;font-family:var(--jp-code-font-family,monospace)">'
        f"{lead}{escape(text)}{caret}</pre>"
    )


def probability_colour(logprob: float) -> str:
    """Green for likely tokens through yellow to red for unlikely ones (p on a log scale)."""
    p = math.exp(max(logprob, -30.0))
    # Map p in [1e-4, 1] onto hue 0 (red) .. 120 (green); below 1e-4 stays red.
    position = min(1.0, max(0.0, (math.log10(max(p, 1e-4)) + 4.0) / 4.0))
    return f"hsla({position * 120:.0f}, 80%, 45%, 0.28)"


def logprob_tokens(tokens: Sequence[TokenLogprob]) -> str:
    """Each token on a background coloured by its probability; hovering lists the alternatives."""
    spans = []
    for token in tokens:
        alternatives = "\n".join(
            f"{'▶ ' if alt == token.token else '  '}{alt!r}: {math.exp(lp):.1%}" for alt, lp in token.top
        )
        title = f"{token.token!r}: p = {math.exp(token.logprob):.1%}" + (f"\n{alternatives}" if alternatives else "")
        spans.append(
            f'<span class="vstream-token" style="background:{probability_colour(token.logprob)}" '
            f'title="{escape(title)}">{escape(token.token)}</span>'
        )
    return (
        '<pre class="vstream-text vstream-logprobs" style="white-space:pre-wrap;word-break:break-word;'
        'margin:0;font-family:var(--jp-code-font-family,monospace)">' + "".join(spans) + "</pre>"
    )


def status_line(stream: Stream) -> str:
    """TTFT, tokens, tokens/s and how the request ended, as plain text."""
    parts = [stream.metrics.summary()]
    if stream.done:
        reason = stream.finish_reason or "?"
        if reason == ERROR and stream.error is not None:
            reason = f"error: {stream.error}"
        elif reason == "stop" and isinstance(stream.stop_reason, str):
            reason = f"stop ({stream.stop_reason!r})"
        elif reason == CANCELLED:
            reason = "cancelled"
        parts.append(f"finish: {reason}")
    else:
        parts.append("streaming…")
    return " · ".join(parts)


def stopped_at_once(stream: Stream) -> bool:
    """The request ended by itself almost at once and said nothing (end-of-sequence first)."""
    return (
        stream.done
        and stream.finish_reason == "stop"
        and not isinstance(stream.stop_reason, str)  # not one of the caller's stop strings
        and stream.metrics.tokens <= 2
        and not stream.text.strip()
    )


def empty_answer_note(stream: Stream, *, chat_hint: str | None) -> str | None:
    """Why an empty answer is empty, and what to try; None for any other stream.

    ``chat_hint`` says how to turn chat mode on in this UI (None: it was on already).
    """
    if not stopped_at_once(stream):
        return None
    count = stream.metrics.tokens
    said = f"the model stopped immediately ({count} token{'' if count == 1 else 's'}, end-of-sequence, no text)"
    if chat_hint is not None:
        return (
            f"{said}: an instruct model often ends a bare instruction at once; "
            f"try chat mode ({chat_hint}), which wraps the prompt in its chat template"
        )
    return f"{said}: try rewording the prompt, a system prompt, or a higher temperature"


def thinking_title(stream: Stream, *, seen_reasoning: bool | None = None) -> str | None:
    """ "Thinking…" while the model thinks, then "Thought for N s"; None without reasoning.
    ``seen_reasoning``: whether any reasoning arrived, from a caller that counts its pieces (a
    delta view, per repaint), so that the reasoning text need not be joined to find out."""
    if not stream.reasoning_on:
        return None
    if not (stream.thinking or (bool(stream.reasoning) if seen_reasoning is None else seen_reasoning)):
        return None
    metrics = stream.metrics
    if stream.thinking:
        return "Thinking…" + (f" ({metrics.reasoning_tokens} tokens)" if metrics.reasoning_tokens else "")
    took = metrics.thinking_s or 0.0
    return f"Thought for {took:.1f} s ({metrics.reasoning_tokens} tokens)"


def thinking_block(stream: Stream, *, hidden: bool = False) -> str:
    """The reasoning as a collapsible block: open while the model thinks, closed once it answers.
    ``hidden`` (``--hide-thinking``): only the line saying it thought, and for how long."""
    title = thinking_title(stream)
    if title is None:
        return ""
    style = "font-size:0.9em;color:var(--jp-ui-font-color2,#666);margin:0 0 4px 0"
    if hidden:
        return f'<div class="vstream-thinking vstream-thinking-hidden" style="{style}">{escape(title)}</div>'
    cursor = stream.thinking
    return (
        f'<details class="vstream-thinking"{" open" if stream.thinking else ""} style="{style}">'
        f'<summary style="cursor:pointer">{escape(title)}</summary>'
        '<pre class="vstream-reasoning" style="white-space:pre-wrap;word-break:break-word;margin:2px 0 0 0;'
        "padding-left:8px;border-left:2px solid var(--jp-border-color2,#ddd);font-family:var(--jp-code-font-family,"
        f'monospace)">{escape(stream.reasoning.strip())}{"▌" if cursor else ""}</pre></details>'
    )


def stream_card(
    stream: Stream,
    *,
    title: str | None = None,
    logprobs: bool = False,
    chat_hint: str | None = None,
    hide_thinking: bool = False,
) -> str:
    """One stream as HTML: optional title, the thinking (when split off), the text (or coloured
    tokens), and its status line.

    ``chat_hint``: how this UI turns chat mode on, for the note an empty answer gets (None:
    chat mode was on).
    """
    if logprobs and stream.logprobs is not None:
        body = logprob_tokens(stream.logprobs)
    else:
        body = text_block(stream.text, cursor=not stream.done and not stream.thinking)
    body = thinking_block(stream, hidden=hide_thinking) + body
    note = empty_answer_note(stream, chat_hint=chat_hint)
    if note is not None:
        body += (
            '<div class="vstream-note vstream-empty-answer" style="color:var(--jp-warn-color1,#a60);'
            f'font-size:0.9em;margin-top:4px">⚠ {escape(note)}</div>'
        )
    colour = "var(--jp-error-color1,#c00)" if stream.finish_reason == ERROR else "var(--jp-ui-font-color2,#666)"
    head = f'<div class="vstream-title" style="font-weight:600">{escape(title)}</div>' if title else ""
    return (
        f'<div class="vstream-card" data-request-id="{escape(stream.request_id)}" style="flex:1;min-width:0">'
        f"{head}{body}"
        f'<div class="vstream-status" style="font-size:0.85em;color:{colour};margin-top:4px">'
        f"{escape(status_line(stream))}</div></div>"
    )


def side_by_side(cards: Sequence[str]) -> str:
    return '<div class="vstream-row" style="display:flex;gap:16px;align-items:flex-start">' + "".join(cards) + "</div>"


def plain_summary(streams: Sequence[Stream], *, chat_hint: str | None = None, hide_thinking: bool = False) -> str:
    """The text/plain twin of the HTML, for terminals and saved notebooks without HTML."""
    chunks = []
    for i, stream in enumerate(streams):
        head = f"[sample {i + 1}] " if len(streams) > 1 else ""
        thought = thinking_title(stream)
        if thought is not None:
            head += f"[{thought}]\n" if hide_thinking else f"[{thought}]\n{stream.reasoning.strip()}\n[answer]\n"
        note = empty_answer_note(stream, chat_hint=chat_hint)
        chunks.append(f"{head}{stream.text}\n-- {status_line(stream)}" + (f"\n-- {note}" if note else ""))
    return "\n\n".join(chunks)
