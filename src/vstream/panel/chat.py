"""A panel's chat transcript: the turns so far, the messages for the next request, and what shows.

The widget's front end shows ``shown()`` as text (never markup); ``html()`` is the static
fallback's, escaped by ``render`` (user prompts are as untrusted as model output).
"""

from __future__ import annotations

from .. import render


class ChatHistory:
    """Completed turns plus the user turn being answered (``pending``)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self.pending: str | None = None

    def request(self, prompt: str) -> list[dict[str, str]]:
        """Start a turn: the messages to send (history + this prompt)."""
        self.pending = prompt
        return [*self.messages, {"role": "user", "content": prompt}]

    def commit(self, answer: str) -> None:
        """The pending turn got ``answer`` (possibly partial, after Stop)."""
        if self.pending is not None:
            self.messages += [
                {"role": "user", "content": self.pending},
                {"role": "assistant", "content": answer},
            ]
        self.pending = None

    def drop(self) -> str | None:
        """The pending turn failed: forget it and give its prompt back."""
        prompt, self.pending = self.pending, None
        return prompt

    def clear(self) -> None:
        self.messages, self.pending = [], None

    @property
    def turns(self) -> int:
        return len(self.messages) // 2

    def shown(self, *, hide_last_answer: bool = False) -> list[dict[str, str]]:
        """The turns to show; ``hide_last_answer`` omits the latest answer (its column shows it)."""
        messages = self.messages
        if hide_last_answer and self.pending is None and messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        rows = [dict(m) for m in messages]
        if self.pending is not None:
            rows.append({"role": "user", "content": self.pending})
        return rows

    def html(self, *, hide_last_answer: bool = False) -> str:
        """The transcript as escaped HTML (the static fallback's)."""
        rows = [_bubble(m["role"], m["content"]) for m in self.shown(hide_last_answer=hide_last_answer)]
        if not rows:
            return ""
        return (
            '<div class="vstream-history" style="display:flex;flex-direction:column;gap:4px">'
            + "".join(rows)
            + "</div>"
        )


def _bubble(role: str, text: str) -> str:
    label = {"user": "You", "assistant": "Model", "system": "System"}.get(role, role)
    background = "var(--jp-layout-color2,#f3f3f3)" if role == "user" else "transparent"
    return (
        f'<div class="vstream-turn vstream-{render.escape(role)}" '
        f'style="background:{background};padding:2px 6px;'
        'border-radius:4px"><b style="font-size:0.85em">'
        f"{render.escape(label)}</b>{render.text_block(text)}</div>"
    )
