"""The four ways to the same tokens, each run as one batch of N concurrent streams.

* ``raw``: the seed's loop, ``async for out in engine.generate(prompt, ..., DELTA)``, as coroutines
  on the host's own loop against the host's own AsyncLLM (so every path shares one engine);
  ``raw_ids``: the same with the prompt tokenized beforehand, outside the clock (for reference:
  it shows what tokenizing costs, which every other path pays);
* ``api``: ``host.stream(...)`` read by a plain ``for`` in the main thread (N > 1: ``stream_many`` and ``async for``
  on one event loop in the main thread); ``api_threads``: N > 1, one plain-``for`` thread each;
* ``mixed``: N/2 streams of the seed's loop and N/2 of ``stream_many`` in one batch, to compare
  the two under the very same engine steps;
* ``magic``: ``%%vstream -n N`` on a real InteractiveShell whose display publisher records messages;
* ``panel``: ``vstream.Panel`` Generate clicks, widget messages recorded by a stand-in comm.

Each returns one record per stream (see ``_stats``); UI paths add the messages they sent and
whether the last one shows exactly the Stream's text.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vstream import options

PROMPT = (
    "The key to happiness is"  # every stream of every path: the magic and panel take one prompt
)

# Everything the panel's controls send, at neutral values, so all paths ask for the same thing
# (temperature, max_tokens and ignore_eos are set by sampling_for).
NEUTRAL = {
    o.name: o.neutral
    for o in options.OPTIONS
    if o.control is not None and o.control.kind in ("slider", "number", "check") and o.neutral is not None
    and o.name not in ("temperature", "max_tokens", "ignore_eos")
}

_TEXT = re.compile(r'<pre class="vstream-text[^"]*"[^>]*>([^<]*)')


def prompts_for(n: int, prompt: str = PROMPT) -> list[str]:
    return [prompt] * n


def sampling_for(max_tokens: int, temperature: float) -> dict[str, Any]:
    return {"max_tokens": max_tokens, "temperature": temperature, "ignore_eos": True, **NEUTRAL}


def _record(start: float) -> dict[str, Any]:
    return {"start": start, "first": None, "last": None, "done": None, "tokens": 0, "text": ""}


# --- raw AsyncLLM ---------------------------------------------------------------------------------


def _seed_batch(
    host: Any, prompts: Sequence[str | list[int]], sampling: dict[str, Any], start: float
) -> Any:
    """The seed's loop for every prompt, gathered: a coroutine for the host's engine loop."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    engine = host.async_llm
    tag = uuid.uuid4().hex[:8]

    async def one(i: int, prompt: str | list[int]) -> dict[str, Any]:
        rec, pieces = _record(start), []
        params = SamplingParams(**sampling, output_kind=RequestOutputKind.DELTA)
        request = prompt if isinstance(prompt, str) else {"prompt_token_ids": prompt}
        async for out in engine.generate(request, params, f"raw-{tag}-{i}"):
            now = time.perf_counter()
            completion = out.outputs[0]
            if completion.token_ids:
                rec["first"] = rec["first"] or now
                rec["last"] = now
                rec["tokens"] += len(completion.token_ids)
            pieces.append(completion.text)
        rec["done"], rec["text"] = time.perf_counter(), "".join(pieces)
        return rec

    async def batch() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(one(i, prompt) for i, prompt in enumerate(prompts))))

    return batch()


def run_raw(
    host: Any, prompts: Sequence[str | list[int]], sampling: dict[str, Any], timeout: float
) -> list[dict[str, Any]]:
    """``prompts``: text (tokenized by vLLM, as the seed does) or token ids (tokenized before)."""
    start = time.perf_counter()
    return asyncio.run_coroutine_threadsafe(_seed_batch(host, prompts, sampling, start), host.engine_loop).result(
        timeout
    )


# --- vstream Stream API ---------------------------------------------------------------------------


def _seen(rec: dict[str, Any], pieces: list[str], delta: str) -> None:
    now = time.perf_counter()
    rec["first"] = rec["first"] or now
    rec["last"] = now
    pieces.append(delta)


def _ended(rec: dict[str, Any], pieces: list[str], stream: Any) -> None:
    rec["done"], rec["text"], rec["tokens"] = time.perf_counter(), "".join(pieces), stream.metrics.tokens
    m = stream.metrics  # where the engine's loop fed the Stream: the API's own hand-off cost
    rec["fed_first"], rec["fed_last"] = m.first_token_at, m.last_token_at


def _consume(stream: Any, rec: dict[str, Any]) -> None:
    pieces: list[str] = []
    for delta in stream:
        _seen(rec, pieces, delta)
    _ended(rec, pieces, stream)


async def _consume_async(stream: Any, rec: dict[str, Any]) -> None:
    pieces: list[str] = []
    async for delta in stream:
        _seen(rec, pieces, delta)
    _ended(rec, pieces, stream)


async def _read_all(streams: Sequence[Any], start: float, timeout: float) -> list[dict[str, Any]]:
    """``async for`` over every stream at once, on the caller's event loop."""
    records = [_record(start) for _ in streams]
    tasks = [asyncio.ensure_future(_consume_async(s, r)) for s, r in zip(streams, records, strict=True)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    return records


def run_api(
    host: Any, prompts: Sequence[str], sampling: dict[str, Any], timeout: float
) -> list[dict[str, Any]]:
    """One stream: a plain ``for`` in this thread. Several: ``async for`` each, on one event loop in
    this thread (one consumer thread, as the raw loop has); ``run_api_threads`` is the other way."""
    start = time.perf_counter()
    if len(prompts) == 1:
        rec = _record(start)
        _consume(host.stream(prompts[0], **sampling), rec)
        return [rec]

    async def batch() -> list[dict[str, Any]]:
        # stream_many is the API for a batch: one hand-over to the engine, like raw's one callback.
        streams = host.stream_many([{"prompt": prompt, **sampling} for prompt in prompts])
        return await _read_all(streams, start, timeout)

    return asyncio.run(batch())


def beside_raw(
    host: Any, n: int, prompt: str, sampling: dict[str, Any], timeout: float, ui: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` streams of the seed's loop handed to the engine, then ``ui(start)`` (the magic or the
    panel, ``n`` streams) run at once, so both share the engine's steps (raw goes first: no head
    start for vstream). Returns (raw records, UI records)."""
    handed: dict[str, Any] = {}

    def hand_raw_over() -> float:
        start = time.perf_counter()
        batch = _seed_batch(host, [prompt] * n, sampling, start)
        handed["raw"] = asyncio.run_coroutine_threadsafe(batch, host.engine_loop)
        return start

    ui_records = ui(hand_raw_over)
    if "raw" not in handed:
        raise RuntimeError("the UI path never handed the raw streams over")
    return handed["raw"].result(timeout), ui_records


def run_mixed(
    host: Any, prompts: Sequence[str], sampling: dict[str, Any], timeout: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Half the streams through the seed's loop, half through ``stream_many``, in one batch.

    The same engine steps serve both halves, so whatever the host does to the engine's speed
    hits both alike: what differs is what vstream adds between the engine and the reader.
    Raw is handed to the engine first: whichever half comes first can get a whole engine step
    ahead (measured on CPU at 64 streams: the API half 327 ms ahead when it went first), so the
    API gets no head start. Returns (raw records, API records).
    """
    half = max(1, len(prompts) // 2)  # one stream: one of each, beside each other
    raw_prompts, api_prompts = prompts[:half], prompts[half:] or prompts[:1]

    start = time.perf_counter()
    raw_future = asyncio.run_coroutine_threadsafe(_seed_batch(host, raw_prompts, sampling, start), host.engine_loop)
    streams = host.stream_many([{"prompt": prompt, **sampling} for prompt in api_prompts])
    api_records = asyncio.run(_read_all(streams, start, timeout))
    return raw_future.result(timeout), api_records


def run_api_threads(
    host: Any, prompts: Sequence[str], sampling: dict[str, Any], timeout: float
) -> list[dict[str, Any]]:
    """Several streams, each read by a plain ``for`` in its own thread, started at submission."""
    start = time.perf_counter()
    records, threads = [], []
    for prompt in prompts:
        rec = _record(start)
        thread = threading.Thread(
            target=_consume, args=(host.stream(prompt, **sampling), rec), daemon=True
        )
        thread.start()
        records.append(rec)
        threads.append(thread)
    deadline = start + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()))
    if any(t.is_alive() for t in threads):
        raise TimeoutError(f"API run of {len(prompts)} streams still going after {timeout} s")
    return records


# --- shared by the UI paths -----------------------------------------------------------------------


def _texts(markup: str) -> list[str]:
    return [html.unescape(t) for t in _TEXT.findall(markup)]


def _ui_records(
    start: float, streams: Sequence[Any], shown: Sequence[list[tuple[float, str]]]
) -> list[dict[str, Any]]:
    """``shown[i]``: (time, text shown for stream i) for each message that repainted stream i."""
    records = []
    for stream, paints in zip(streams, shown, strict=True):
        final = stream.text
        rec = _record(start)
        rec["first"] = next((t for t, text in paints if text), None)
        rec["last"] = next((t for t, text in paints if text == final), None)
        rec["done"] = paints[-1][0] if paints else None
        rec["tokens"], rec["text"] = stream.metrics.tokens, final
        rec["updates"] = len(paints)
        rec["final_text_matches"] = bool(paints) and paints[-1][1] == final
        span = (rec["done"] or start) - start
        rec["updates_per_s_overall"] = len(paints) / span if span > 0 else None
        # The throttled rate: paints that showed text, less the final flush (always sent).
        timed = [t for t, text in paints[:-1] if text]
        gaps = [b - a for a, b in itertools.pairwise(timed)]
        rec["updates_per_s"] = (
            (len(timed) - 1) / (timed[-1] - timed[0])
            if len(timed) > 2 and timed[-1] > timed[0]
            else None
        )
        rec["min_gap_ms"] = min(gaps) * 1000 if gaps else None
        records.append(rec)
    return records


# --- %%vstream ------------------------------------------------------------------------------------


class _Publisher:
    """Built on IPython's DisplayPublisher at first use (IPython is imported lazily)."""

    @staticmethod
    def make(shell: Any) -> Any:
        from IPython.core.displaypub import DisplayPublisher

        class Recording(DisplayPublisher):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.messages: list[tuple[float, dict[str, Any], dict[str, Any]]] = []

            def publish(
                self, data, metadata=None, source=None, *, transient=None, update=False, **kw
            ):  # type: ignore[no-untyped-def]
                self.messages.append((time.perf_counter(), data, transient or {}))

            def clear_output(self, wait: bool = False) -> None:
                pass

        return Recording(shell=shell)


def make_shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.display_pub = _Publisher.make(shell)
    return shell


def run_magic(
    shell: Any, prompt: str, n: int, sampling: dict[str, Any], timeout: float, start: float | None = None
) -> list[dict[str, Any]]:
    """``start``: the clock's zero when the batch began earlier (a mixed batch); default now."""
    line = (
        f"%%vstream -t {sampling['temperature']} --top-p {sampling['top_p']}"
        f" -m {sampling['max_tokens']} --ignore-eos -n {n} --out _vstream_bench"
    )
    recorder = shell.display_pub
    recorder.messages.clear()
    start = time.perf_counter() if start is None else start
    result = shell.run_cell(f"{line}\n{prompt}\n", store_history=False)
    result.raise_error()
    out = shell.user_ns.pop("_vstream_bench")
    streams = out if isinstance(out, list) else [out]
    shown: list[list[tuple[float, str]]] = [[] for _ in streams]
    for t, data, _transient in recorder.messages:
        texts = _texts(data.get("text/html", ""))
        if len(texts) == len(streams):  # a repaint of the cell's cards (not a status line)
            for i, text in enumerate(texts):
                shown[i].append((t, text))
    return _ui_records(start, streams, shown)


# --- vstream.Panel --------------------------------------------------------------------------------


class PanelRig:
    """Panels over the benchmark's host, with every widget message recorded."""

    def __init__(self, host: Any) -> None:
        import ipywidgets.widgets.widget as widget_module

        from vstream.panel import Panel
        from vstream.panel_presets import PresetStore
        from vstream.testing import MessageLog, RecordingComm

        self.log = MessageLog()
        widget_module.comm.create_comm = lambda **kw: RecordingComm(self.log, **kw)
        self.host, self.panel_cls = host, Panel
        self.store = PresetStore(Path(tempfile.mkdtemp(prefix="vstream-bench-")) / "presets.json")

    def run(
        self, prompt: str, panels: int, columns: int, sampling: dict[str, Any], timeout: float,
        before: Any = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """``before``: called just before the clicks, returning the clock's zero (a mixed batch
        hands its raw half to the engine there); default: the clock starts at the clicks."""
        made = [
            self.panel_cls(prompt, host=self.host, columns=columns, presets=self.store, **sampling)
            for _ in range(panels)
        ]
        try:
            cols = [c for p in made for c in p.columns]
            for col in cols:  # compare columns start from presets: ask every column for the same
                col.controls.apply(sampling)
            asked = [col.controls.sampling(draw_seed=False) for col in cols]
            self.log.clear()
            start = before() if before is not None else time.perf_counter()
            cpu = time.process_time()
            for p in made:
                p.generate.click()
            for p in made:
                p.wait(timeout)
            cpu = time.process_time() - cpu  # from the clicks: building the panels is not per token
            streams = [s for p in made for s in p.streams]
            if len(streams) != len(cols) or any(p.running for p in made):
                raise RuntimeError(
                    f"panel made {len(streams)} streams for {len(cols)} columns: "
                    f"{[p.error.value for p in made]}"
                )
            by_comm = {col.output.comm.comm_id: i for i, col in enumerate(cols)}
            shown: list[list[tuple[float, str]]] = [[] for _ in cols]
            for message in self.log.messages:
                t, i, state = message.t, by_comm.get(message.comm_id), message.state
                if i is not None and "value" in state:
                    texts = _texts(state["value"])
                    if texts:
                        shown[i].append((t, texts[0]))
            records = _ui_records(start, streams, shown)
            for rec, stream, settings in zip(records, streams, asked, strict=True):
                rec["seed"] = stream.sampling.get("seed")
                rec["sampling_matches"] = all(settings.get(k) == v for k, v in sampling.items())
                rec["cpu_s"] = cpu
            return records
        finally:
            for p in made:
                p.close()
