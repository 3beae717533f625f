"""Tools that tests and benchmarks share: a comm that records what widgets send, and the text
that a page shows in vstream's static HTML (``shown_texts``).

ipywidgets' own tests replace the kernel comm with one that keeps messages instead of sending them
(their ``DummyComm``); this is the same idea with a clock and a byte count, so a test can assert
how much the panel sends for an answer and a benchmark can report it::

    with record_widget_messages() as log:
        panel.run(); panel.wait()
    log.bytes()        # what would have crossed the comm, JSON plus binary buffers

It lives in the package (not under ``tests/``) because ``benchmarks/`` imports it too, on machines
where only the package and the benchmark are copied.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Message:
    """One message a widget sent: when, on which comm, its data and binary buffers, and the
    sending thread with its CPU time then (``time.thread_time``: what that thread spent between
    two of its messages is the kernel's work for a repaint)."""

    t: float
    comm_id: str
    data: Any
    buffers: tuple[bytes, ...] = ()
    thread: int = 0
    cpu: float = 0.0

    @property
    def nbytes(self) -> int:
        """The message's size on the wire, as the kernel would serialize it (compact JSON)."""
        return json_bytes(self.data) + sum(len(memoryview(b).cast("B")) for b in self.buffers)

    @property
    def content(self) -> dict[str, Any] | None:
        """What ``widget.send(content)`` sent, for a custom message; None for state messages."""
        data = self.data if isinstance(self.data, dict) else {}
        content = data.get("content") if data.get("method") == "custom" else None
        return content if isinstance(content, dict) else None

    @property
    def state(self) -> dict[str, Any]:
        """The trait values this message carries ({} for custom messages)."""
        data = self.data if isinstance(self.data, dict) else {}
        state = data.get("state")
        return state if isinstance(state, dict) else {}


def json_bytes(data: Any) -> int:
    """``data``'s size as compact JSON: how a widget message or a display bundle is counted."""
    return len(json.dumps(data, separators=(",", ":"), default=str).encode())


@dataclass
class MessageLog:
    messages: list[Message] = field(default_factory=list)

    def clear(self) -> None:
        self.messages.clear()

    def of(self, comm_id: str) -> list[Message]:
        return [m for m in self.messages if m.comm_id == comm_id]

    def custom(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The contents of the custom messages (``widget.send``), of one ``type`` if given."""
        contents = [m.content for m in self.messages if m.content is not None]
        return [c for c in contents if c is not None and (kind is None or c.get("type") == kind)]

    def bytes(self, comm_id: str | None = None) -> int:
        chosen = self.messages if comm_id is None else self.of(comm_id)
        return sum(m.nbytes for m in chosen)


class RecordingComm:
    """Stands in for a kernel comm and keeps what its widget sends, with the time."""

    kernel = "recording"  # ipywidgets only sends when the comm has a kernel

    def __init__(self, log: MessageLog, **kwargs: Any) -> None:
        self.comm_id = kwargs.get("comm_id") or uuid.uuid4().hex
        self.log = log
        if kwargs.get("data") is not None:  # the comm_open message carries the initial state
            self.send(kwargs["data"], buffers=kwargs.get("buffers"))

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        now, thread, cpu = time.perf_counter(), threading.get_ident(), time.thread_time()
        self.log.messages.append(Message(now, self.comm_id, data, tuple(buffers or ()), thread, cpu))

    def on_msg(self, callback: Any) -> None:
        pass

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def record_widget_messages() -> Iterator[MessageLog]:
    """Every widget made inside the block sends into the returned log instead of a kernel."""
    import ipywidgets.widgets.widget as widget_module

    log = MessageLog()
    before = widget_module.comm.create_comm
    widget_module.comm.create_comm = lambda **kw: RecordingComm(log, **kw)
    try:
        yield log
    finally:
        widget_module.comm.create_comm = before


_TEXT_BLOCK = re.compile(r'<pre class="vstream-text"[^>]*>(.*?)</pre>', re.S)


def shown_texts(page: str) -> list[str]:
    """The text of each ``vstream-text`` block in this HTML as a browser shows it: entities read,
    and the one newline right after ``<pre>`` dropped, as HTML parsers do."""
    texts = [html.unescape(body) for body in _TEXT_BLOCK.findall(page)]
    return [text[1:] if text.startswith("\n") else text for text in texts]
