"""``StreamView``: the ``%%vstream`` magic's live view, the panel's columns and nothing else.

It runs the panel's front end (``panel.js``, view ``"stream"``), fed by the same delta messages
(``feed.py``), so there is one renderer for both. The magic replaces it with a static display
(text/html + text/plain) when the streams end, so its final text is not sent to it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import anywidget
import traitlets as t

from ..streaming import Stream
from .feed import ColumnFeed, send_changes, start_message
from .widget import HERE


class StreamView(anywidget.AnyWidget):
    """Live columns for ``streams``: ``paint(final)`` sends each column's delta (and its end)."""

    _esm = HERE / "panel.js"
    _css = HERE / "panel.css"

    view = t.Unicode("stream").tag(sync=True)
    instance_id = t.Unicode().tag(sync=True)
    show_thinking = t.Bool(True).tag(sync=True)
    results = t.List().tag(sync=True)  # stays empty: the magic puts a static display in its place

    def __init__(
        self,
        streams: Sequence[Stream],
        *,
        titles: Sequence[str | None],
        logprobs: bool,
        chat_hint: str | None,
        hide_thinking: bool,
    ) -> None:
        super().__init__(instance_id=uuid.uuid4().hex, show_thinking=not hide_thinking)
        self.titles = list(titles)
        self.logprobs = logprobs
        self.feeds = [ColumnFeed(s, i, logprobs=logprobs, chat_hint=chat_hint) for i, s in enumerate(streams)]
        self._started = False

    @property
    def live(self) -> bool:
        """Whether a front end can receive it (a kernel's comm; not a terminal's stand-in)."""
        return getattr(self.comm, "kernel", None) is not None

    def paint(self, final: bool) -> None:
        if not self._started:
            self._started = True
            self.send(start_message(self.feeds, self.titles, logprobs=self.logprobs))
        send_changes(self.send, self.feeds, final)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data, metadata = super()._repr_mimebundle_(**kwargs)
        return {**data, "text/html": '<div class="vstream-live">streaming…</div>'}, metadata
