"""What a view looks like without a widget front end: text/html and text/plain of its streams.

Front ends that render no widgets (nbconvert, GitHub, a terminal) show these: the panel's
mimebundle carries them beside the widget view, and the magic ends its live view with them.
Every string passes through ``render`` (escaped).
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import render
from ..streaming import Stream


def streams_bundle(
    streams: Sequence[Stream],
    *,
    titles: Sequence[str | None] | None = None,
    logprobs: bool = False,
    chat_hint: str | None = None,
    hide_thinking: bool = False,
) -> dict[str, str]:
    """The streams as cards side by side (HTML) and as plain text."""
    titles = list(titles) if titles is not None else [None] * len(streams)
    cards = [
        render.stream_card(s, title=t, logprobs=logprobs, chat_hint=chat_hint, hide_thinking=hide_thinking)
        for s, t in zip(streams, titles, strict=True)
    ]
    return {
        "text/html": render.side_by_side(cards),
        "text/plain": render.plain_summary(streams, chat_hint=chat_hint, hide_thinking=hide_thinking),
    }


def panel_bundle(
    status_text: str, prompt: str, history_html: str, streams: Sequence[Stream], **view: object
) -> dict[str, str]:
    """The panel as it stands: its engine line, the chat so far or the prompt, the columns."""
    shown = streams_bundle(streams, **view) if streams else {"text/html": "", "text/plain": ""}  # type: ignore[arg-type]
    prompt_html = "" if history_html or not prompt else render.text_block(prompt)
    html = (
        '<div class="vstream-panel-static">'
        f'<div class="vstream-engine-status" style="font-size:0.9em;color:var(--jp-ui-font-color2,#666)">'
        f"{render.escape(status_text)}</div>{history_html}{prompt_html}{shown['text/html']}</div>"
    )
    plain = "\n".join(part for part in (f"vstream.Panel · {status_text}", prompt, shown["text/plain"]) if part)
    return {"text/html": html, "text/plain": plain}
