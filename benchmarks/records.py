"""The benchmark's records: what one run measured, typed, and how it is saved and read back.

A ``Result`` (one JSON file under ``benchmarks/results/``) holds the machine, the engine and the
measurements: ``Cell``s (one path at one size, paired with raw round by round), a ``Startup``
and an ``ImportProbe``. ``load`` reads only this format; older files are in ``results/archive``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

from .stats import median, median_interval, percentile

FORMAT = 2


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class StreamRecord:
    """One stream of one run, ``perf_counter`` seconds; ``first``/``last``: when the reader saw
    (a UI path: painted) its first/last token; ``done``: when the path reported the end."""

    start: float
    first: float | None = None
    last: float | None = None
    done: float | None = None
    tokens: int = 0
    text: str = ""
    paints: int = 0  # UI paths: messages that changed what this stream shows
    nbytes: int = 0  # UI paths: bytes sent for this stream (comm or display messages)
    final_matches: bool | None = None  # UI paths: the last paint shows exactly the Stream's text
    paint_cpu_us: list[float] = dataclasses.field(default_factory=list)  # UI: sender's thread CPU per delta


@dataclasses.dataclass
class Run:
    """One batch of ``streams`` concurrent streams through one path."""

    path: str
    streams: int
    tokens: int  # every stream's, when all got the same number; else -1
    agg_tok_s: float
    decode_tok_s: float
    ttft_ms: float  # median over the batch
    last_s: float  # submission to the last token seen (UI: painted)
    cpu_us_per_token: float  # this process, every thread
    paints_per_stream: float = 0.0
    bytes_per_stream: float = 0.0
    final_matches: bool | None = None
    paint_us_early: float | None = None  # UI paths: the painting thread's CPU per repaint, first tenth
    paint_us_late: float | None = None  # ... and last tenth of each stream's repaints (median of streams)

    @classmethod
    def of(cls, path: str, records: list[StreamRecord], cpu_s: float) -> Run:
        start = min(r.start for r in records)
        last = max(r.last or r.done or start for r in records)
        total = sum(r.tokens for r in records)
        counts = {r.tokens for r in records}
        decode = [(r.tokens - 1) / (r.last - r.first) for r in records if r.first and r.last and r.last > r.first]
        ttft = [(r.first - r.start) * 1000 for r in records if r.first]
        matches = [r.final_matches for r in records if r.final_matches is not None]
        tenths = [_tenths(r.paint_cpu_us[1:]) for r in records if len(r.paint_cpu_us) > 2]  # [0]: the first paint
        return cls(
            path, len(records), counts.pop() if len(counts) == 1 else -1,
            total / (last - start) if last > start else 0.0, median(decode) or 0.0,
            percentile(ttft, 50) or 0.0, last - start, cpu_s * 1e6 / max(1, total),
            sum(r.paints for r in records) / len(records), sum(r.nbytes for r in records) / len(records),
            all(matches) if matches else None, median(a for a, _ in tenths), median(b for _, b in tenths),
        )  # fmt: skip


def _tenths(values: list[float]) -> tuple[float | None, float | None]:
    """Medians of the first and the last tenth (at least 3): does a repaint cost more late in an answer?"""
    k = max(3, len(values) // 10)
    return median(values[:k]), median(values[-k:])


@dataclasses.dataclass
class Beside:
    """One batch with vstream's streams beside raw streams: the same engine steps serve both."""

    decode_ratio: float  # vstream's per-stream decode speed over raw's
    last_lag_ms: float  # vstream's last token seen (UI: painted) after raw's last token
    ttft_diff_ms: float
    same_text: bool
    bytes_per_stream: float = 0.0


@dataclasses.dataclass
class Cell:
    """One path at one size: ``pairs`` (round by round, the path's run and the raw run beside it)
    and ``beside`` (one-batch runs)."""

    path: str
    streams: int
    tokens: int
    mode: str
    logprobs: bool = False
    pairs: list[tuple[Run, Run]] = dataclasses.field(default_factory=list)  # (raw, path)
    beside: list[Beside] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.mode} {self.path} {self.streams}x{self.tokens}{' logprobs' if self.logprobs else ''}"

    def raw(self, field: str) -> float | None:
        return median(getattr(raw, field) for raw, _ in self.pairs)

    def value(self, field: str) -> float | None:
        return median(getattr(run, field) for _, run in self.pairs)

    def ratio(self, field: str) -> tuple[float | None, tuple[float, float] | None]:
        """The median of per-round ratios path ÷ raw, with its 95 % interval."""
        values = [getattr(run, field) / getattr(raw, field) for raw, run in self.pairs if getattr(raw, field)]
        return median(values), median_interval(values)

    def extra(self, field: str) -> tuple[float | None, tuple[float, float] | None]:
        """The median of per-round differences path - raw, with its 95 % interval."""
        values = [getattr(run, field) - getattr(raw, field) for raw, run in self.pairs]
        return median(values), median_interval(values)

    def beside_median(self, field: str) -> float | None:
        return median(getattr(b, field) for b in self.beside)


@dataclasses.dataclass
class StartupRun:
    kind: str  # "raw" or "vstream"
    mode: str  # "eager" or "graphs"
    cold: bool
    first_token_s: float  # since the process was created
    marks: dict[str, float]  # seconds since the process was created
    phases: list[tuple[str, float]]  # vstream's status phases as they began
    method: str | None = None  # how vLLM started its EngineCore


@dataclasses.dataclass
class Startup:
    runs: list[StartupRun]

    def warm(self, kind: str, mode: str) -> list[float]:
        return [r.first_token_s for r in self.runs if r.kind == kind and r.mode == mode and not r.cold]

    def lines(self) -> list[str]:
        out = []
        for mode in dict.fromkeys(r.mode for r in self.runs):
            cold = {r.kind: r.first_token_s for r in self.runs if r.mode == mode and r.cold}
            raw, ours = self.warm("raw", mode), self.warm("vstream", mode)
            out.append(
                f"start-up {mode}: warm raw {_list(raw)} s, vstream {_list(ours)} s; cold raw"
                f" {cold.get('raw', 0):.1f} s, vstream {cold.get('vstream', 0):.1f} s"
            )
            for run in self.runs:
                if run.mode == mode and run.kind == "vstream" and not run.cold:
                    out.append("  phases: " + phase_text(run))
                    break
            for run in self.runs:
                if run.mode == mode and run.kind not in ("raw", "vstream"):
                    out.append(f"  {run.kind}: {run.first_token_s:.1f} s ({phase_text(run)})")
        return out


def phase_text(run: StartupRun) -> str:
    ends = [t for _, t in run.phases[1:]] + [run.marks.get("ready", run.first_token_s)]
    parts = [f"{name} {end - t:.1f}" for (name, t), end in zip(run.phases, ends, strict=True)]
    head = run.phases[0][1] if run.phases else 0.0
    tail = run.first_token_s - run.marks.get("ready", run.first_token_s)
    return f"process + import {head:.1f}, " + ", ".join(parts) + f", first token {tail:.2f} s"


def _list(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values) or "-"


@dataclasses.dataclass
class ImportProbe:
    module: str
    first_s: float
    second_s: float  # the files now in the page cache
    slowest: list[tuple[str, float]]  # top-level packages, cumulative seconds, from -X importtime
    pair_s: float = 0.0  # two interpreters importing it at once, until both are done

    def line(self) -> str:
        slow = ", ".join(f"{name} {s:.1f}" for name, s in self.slowest[:5])
        pair = f", two at once {self.pair_s:.1f} s" if self.pair_s else ""
        return f"import {self.module}: {self.first_s:.1f} s, again {self.second_s:.1f} s{pair} (slowest: {slow})"


@dataclasses.dataclass
class Result:
    device: str
    device_name: str
    date: str
    command: str
    load_avg: list[float]  # at the start and the end: other people's work on a shared machine
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    engine: dict[str, Any] = dataclasses.field(default_factory=dict)
    cells: list[Cell] = dataclasses.field(default_factory=list)
    startup: Startup | None = None
    imports: ImportProbe | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    format: int = FORMAT

    @classmethod
    def begin(cls, device: str, command: str) -> Result:
        from .probes import device_name

        return cls(device, device_name(device), now_iso(), command, [os.getloadavg()[0]])

    def finish(self) -> None:
        self.load_avg.append(os.getloadavg()[0])

    def cell(self, key: str) -> Cell | None:
        return next((c for c in self.cells if c.key == key), None)


def save(result: Result, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dataclasses.asdict(result), indent=1, default=str))
    return out


def load(path: str | Path) -> Result:
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a format-{FORMAT} result (older files are in benchmarks/results/archive)")
    return _build(Result, data)


def _build(kind: Any, data: Any) -> Any:
    """JSON back into the typed records, following the dataclasses' annotations."""
    if data is None:
        return None
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return _build(next(a for a in args if a is not type(None)), data)
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: _build(hints[f.name], data[f.name]) for f in dataclasses.fields(kind) if f.name in data})
    if origin is list:
        return [_build(args[0], item) for item in data]
    if origin is tuple:
        return tuple(_build(a, item) for a, item in zip(args, data, strict=True))
    return data
