"""The ways to the same tokens, each one batch of N concurrent streams on the host's engine.

* ``raw``: the seed's loop, ``async for out in engine.generate(prompt, params, id)`` (DELTA) on the
  host's own loop and AsyncLLM (``host.async_llm``), so every path shares one engine;
* ``api``: ``host.stream`` read by a plain ``for`` (one stream), or ``stream_many`` read by
  ``async for`` on one event loop in this thread (several);
* ``magic``: ``%%vstream -n N --out VAR`` on a real InteractiveShell, what it sends recorded;
* ``panel``: ``vstream.Panel(...).run()``, up to 4 columns a panel, its comm recorded.

Each runner returns one ``StreamRecord`` per stream and this process's CPU seconds from the
submission to the end. ``beside`` runs a path's streams and raw streams in one batch.
"""

from __future__ import annotations

import asyncio
import html
import math
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vstream import options
from vstream.testing import MessageLog, record_widget_messages

from .records import Beside, StreamRecord
from .stats import median

PROMPT = "The key to happiness is"
# Everything the panel's controls send, at neutral values, so all paths ask for the same thing.
NEUTRAL = {
    o.name: o.neutral
    for o in options.OPTIONS
    if o.control is not None and o.control.kind in ("slider", "number", "check") and o.neutral is not None
    and o.name not in ("temperature", "max_tokens", "ignore_eos")
}  # fmt: skip
Records = tuple[list[StreamRecord], float]


def sampling_for(tokens: int, logprobs: int | None = None) -> dict[str, Any]:
    extra = {"logprobs": logprobs} if logprobs is not None else {}
    return {"max_tokens": tokens, "temperature": 0.0, "ignore_eos": True, **NEUTRAL, **extra}


# --- raw AsyncLLM ---------------------------------------------------------------------------------


async def _seed_loop(engine: Any, params: Any, n: int, start: float) -> list[StreamRecord]:
    tag = uuid.uuid4().hex[:8]

    async def one(i: int) -> StreamRecord:
        rec, pieces = StreamRecord(start), []
        async for out in engine.generate(PROMPT, params, f"raw-{tag}-{i}"):
            now = time.perf_counter()
            completion = out.outputs[0]
            if completion.token_ids:
                rec.first = rec.first or now
                rec.last = now
                rec.tokens += len(completion.token_ids)
            pieces.append(completion.text)
        rec.done, rec.text = time.perf_counter(), "".join(pieces)
        return rec

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def raw_params(sampling: dict[str, Any]) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(**options.engine_arguments(sampling), output_kind=RequestOutputKind.DELTA)


def hand_raw(host: Any, n: int, sampling: dict[str, Any]) -> tuple[float, Any]:
    """Submit ``n`` raw streams on the engine's loop; (their start, a future of their records)."""
    params, engine = raw_params(sampling), host.async_llm
    start = time.perf_counter()
    return start, asyncio.run_coroutine_threadsafe(_seed_loop(engine, params, n, start), host.engine_loop)


def raw(host: Any, n: int, sampling: dict[str, Any], timeout: float) -> Records:
    cpu = time.process_time()
    _, future = hand_raw(host, n, sampling)
    records = future.result(timeout)
    return records, time.process_time() - cpu


# --- the Stream API -------------------------------------------------------------------------------


def _read(stream: Any, rec: StreamRecord) -> None:
    pieces = []
    for delta in stream:
        rec.last = time.perf_counter()
        rec.first = rec.first or rec.last
        pieces.append(delta)
    rec.done, rec.text, rec.tokens = time.perf_counter(), "".join(pieces), stream.metrics.tokens


async def _aread(stream: Any, rec: StreamRecord) -> None:
    pieces = []
    async for delta in stream:
        rec.last = time.perf_counter()
        rec.first = rec.first or rec.last
        pieces.append(delta)
    rec.done, rec.text, rec.tokens = time.perf_counter(), "".join(pieces), stream.metrics.tokens


def api(host: Any, n: int, sampling: dict[str, Any], timeout: float, start: float | None = None) -> Records:
    cpu = time.process_time()
    start = start or time.perf_counter()
    if n == 1:
        rec = StreamRecord(start)
        _read(host.stream(PROMPT, **sampling), rec)
        return [rec], time.process_time() - cpu

    async def batch() -> list[StreamRecord]:
        streams = host.stream_many([{"prompt": PROMPT, **sampling}] * n)
        records = [StreamRecord(start) for _ in streams]
        await asyncio.wait_for(asyncio.gather(*(_aread(s, r) for s, r in zip(streams, records, strict=True))), timeout)
        return records

    records = asyncio.run(batch())
    return records, time.process_time() - cpu


# --- what the UI paths sent -----------------------------------------------------------------------


def _from_deltas(
    log: MessageLog, comms: list[tuple[str, int]], streams: Sequence[Any], start: float
) -> list[StreamRecord]:
    """Streams painted by delta messages: ``{"type": "delta", "column": i, "text": ...}``, then
    ``{"type": "done", "column": i}``. ``comms``: (comm id, its columns), in the streams' order."""
    slots = {(comm, i): k for k, (comm, i) in enumerate((c, i) for c, count in comms for i in range(count))}
    records = [StreamRecord(start, tokens=s.metrics.tokens) for s in streams]
    shown = [""] * len(streams)
    spent: dict[int, float] = {}  # each sending thread's CPU time at its last message
    for m in log.messages:
        cpu, spent[m.thread] = m.cpu - spent.get(m.thread, m.cpu), m.cpu
        content = (m.data or {}).get("content") if isinstance(m.data, dict) else None
        k = slots.get((m.comm_id, content.get("column"))) if isinstance(content, dict) else None
        if k is None or k >= len(streams):
            continue
        rec = records[k]
        rec.nbytes += m.nbytes
        if content.get("type") == "delta" and content.get("text"):
            shown[k] += content["text"]
            rec.paint_cpu_us.append(cpu * 1e6)
            rec.paints += 1
            rec.first = rec.first or m.t
            rec.last = m.t
        elif content.get("type") == "done":
            rec.done = m.t
    for rec, stream, text in zip(records, streams, shown, strict=True):
        rec.text, rec.final_matches = text, text == stream.text
        rec.done = rec.done or rec.last
    return records


_CARD_TEXT = re.compile(r'<pre class="vstream-text[^"]*"[^>]*>([^<]*)')


def _from_repaints(
    messages: list[tuple[float, dict[str, Any]]], streams: Sequence[Any], start: float
) -> list[StreamRecord]:
    """Streams painted by whole-card HTML repaints (the magic before it sent deltas)."""
    records = [StreamRecord(start, tokens=s.metrics.tokens) for s in streams]
    for t, data in messages:
        markup = data.get("text/html", "")
        texts = [html.unescape(x) for x in _CARD_TEXT.findall(markup)]
        if len(texts) != len(streams):
            continue
        for rec, text, stream in zip(records, texts, streams, strict=True):
            rec.nbytes += len(markup.encode()) // len(streams)
            if text and text != rec.text:
                rec.paints += 1
                rec.first = rec.first or t
                rec.text = text
                if text == stream.text:
                    rec.last = t
            rec.done = t
    for rec, stream in zip(records, streams, strict=True):
        rec.final_matches = rec.text == stream.text
    return records


# --- %%vstream ------------------------------------------------------------------------------------


def make_shell() -> Any:
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class Recording(DisplayPublisher):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.messages: list[tuple[float, dict[str, Any]]] = []

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):  # type: ignore[no-untyped-def]
            self.messages.append((time.perf_counter(), data))

        def clear_output(self, wait: bool = False) -> None:
            pass

    shell = InteractiveShell.instance()
    shell.display_pub = Recording(shell=shell)
    shell.run_line_magic("load_ext", "vstream")
    return shell


def magic(shell: Any, n: int, sampling: dict[str, Any], timeout: float, start: float | None = None) -> Records:
    line = f"%%vstream -t 0 --top-p {sampling['top_p']} -m {sampling['max_tokens']} --ignore-eos -n {n} --out _bench"
    if sampling.get("logprobs") is not None:
        line += f" --logprobs {sampling['logprobs']}"
    shell.display_pub.messages.clear()
    with record_widget_messages() as log:
        cpu = time.process_time()
        start = start or time.perf_counter()
        shell.run_cell(f"{line}\n{PROMPT}\n", store_history=False).raise_error()
        cpu = time.process_time() - cpu
    out = shell.user_ns.pop("_bench")
    streams = out if isinstance(out, list) else [out]
    comms = list(dict.fromkeys(m.comm_id for m in log.messages if _is_delta(m.data)))
    if len(comms) == 1:  # the live view: one widget, a column per sample
        return _from_deltas(log, [(comms[0], len(streams))], streams, start), cpu
    return _from_repaints(shell.display_pub.messages, streams, start), cpu


def _is_delta(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("content"), dict) and data["content"].get("type") == "delta"


# --- vstream.Panel --------------------------------------------------------------------------------


_STORE = Path(tempfile.mkdtemp(prefix="vstream-bench-")) / "presets.json"


def panel(host: Any, n: int, sampling: dict[str, Any], timeout: float, start: float | None = None) -> Records:
    from vstream.panel import Panel, PresetStore

    settings = {k: v for k, v in sampling.items() if k != "logprobs"}
    with record_widget_messages() as log:
        count = math.ceil(n / 4)
        made = [
            Panel(
                PROMPT,
                host=host,
                columns=min(n, 4),
                logprobs=sampling.get("logprobs"),
                presets=PresetStore(_STORE),
                **settings,
            )
            for _ in range(count)
        ]
        try:
            for col in (c for p in made for c in p.columns):  # compare columns start from presets
                col.settings.update(settings)
            log.clear()
            cpu = time.process_time()
            start = start or time.perf_counter()
            streams = [s for p in made for s in p.run(timeout)]
            for p in made:
                p.wait(timeout)
            cpu = time.process_time() - cpu
            if len(streams) != n:
                raise RuntimeError(f"{count} panel(s) made {len(streams)} streams for {n}")
            asked = [s.sampling.get(k) == v for s in streams for k, v in settings.items() if k != "seed"]
            if not all(asked):
                raise RuntimeError("a panel column asked the engine for other settings than the benchmark's")
            comms = [(p.comm.comm_id, len(p.streams)) for p in made]
            return _from_deltas(log, comms, streams, start), cpu
        finally:
            for p in made:
                p.close()


# --- one batch, beside raw ------------------------------------------------------------------------

Runner = Callable[..., Records]


def beside(host: Any, runner: Runner, n: int, sampling: dict[str, Any], timeout: float, *, half: bool) -> Beside:
    """Raw streams handed to the engine first, then the path's: ``n`` beside ``n``, or with
    ``half`` (the API) half and half (one each for one stream). Both see the same engine steps."""
    mine = max(1, n // 2) if half else n
    start, future = hand_raw(host, max(1, n - mine) if half else n, sampling)
    records, _cpu = runner(n=mine, sampling=sampling, timeout=timeout, start=start)
    raws = future.result(timeout)

    def decode(recs: list[StreamRecord]) -> float:
        return (
            median((r.tokens - 1) / (r.last - r.first) for r in recs if r.first and r.last and r.last > r.first) or 0.0
        )

    def ttft(recs: list[StreamRecord]) -> float:
        return median((r.first - r.start) * 1000 for r in recs if r.first) or 0.0

    last = max(r.last or 0.0 for r in records) - max(r.last or 0.0 for r in raws)
    return Beside(
        decode(records) / (decode(raws) or 1.0), last * 1000, ttft(records) - ttft(raws),
        all(r.text == raws[0].text for r in records + raws), sum(r.nbytes for r in records) / len(records),
    )  # fmt: skip
