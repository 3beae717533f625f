"""``python -m benchmarks.report FILE.json ... [--write README.md]``: the README's performance tables
from result files (``benchmarks.stream`` and ``benchmarks.startup``), each target with its
verdict and, for paired medians, the 95 % interval (order statistics of the pairs).

A verdict is *unresolved* when that interval straddles its target: the host's noise in that
run was larger than the target's margin.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .records import Result, load, phase_text
from .stats import median

CPU_SLACK = 0.10  # CPU per token <= raw + 10 %
LAG_MS = 50.0  # last paint <= 50 ms after raw's last token
STARTUP_SLACK_S = 2.0
STARTUP_GOALS = {("cpu", "eager"): 25.0, ("cuda", "eager"): 15.0, ("cuda", "graphs"): 30.0}
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
STARTUP = (
    "Start-up to the first token, each in a fresh process, seconds (median of the warm runs; raw:"
    " `AsyncLLM.from_engine_args` with vstream's engine arguments):",
    "run | mode | raw warm | vstream warm | ≤ raw + 2 s | goal | cold raw / vstream | vstream's phases (warm)"
    " | levers (warm)",
)
CPU = (
    "CPU per token of the benchmark's process (µs; vLLM's engine core runs in its own), paired with a raw run"
    " round by round, median and 95 % interval; speed: path ÷ raw over the same pairs; one batch: per-stream"
    " decode beside raw streams in the same batch:",
    "run | model | mode | path | streams x tokens | raw tok/s | tok/s ÷ raw | one batch decode ÷ raw"
    " | raw µs/token | extra µs/token | API ≤ raw + 10 %",
)
LONG = (
    "Long answers: one batch beside raw streams (decode ÷ raw; last paint after raw's last token, median and"
    " worst of the rounds), and from the paired runs the painting thread's CPU per repaint (µs, first tenth of"
    " the answer's repaints → last tenth; it must not grow with the answer), repaints and bytes per stream:",
    "run | mode | path | streams x tokens | logprobs | decode ÷ raw | last paint lag ms | ≤ 50 ms"
    " | CPU µs per repaint | repaints per stream | KiB per stream",
)


def _table(spec: tuple[str, str], rows: list[str]) -> list[str]:
    caption, header = spec
    if not rows:
        return []
    return [caption, "", f"| {header} |", "|" + "---|" * (header.count("|") + 1), *rows, ""]


def fmt(value: float | None, digits: int = 1, sign: bool = False) -> str:
    return "-" if value is None else (f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}")


def fmt_interval(interval: tuple[float, float] | None, digits: int = 1, sign: bool = False) -> str:
    return "" if interval is None else f" ({fmt(interval[0], digits, sign)} to {fmt(interval[1], digits, sign)})"


def verdict(ok: bool, interval: tuple[float, float] | None, limit: float) -> str:
    if interval is not None and interval[0] <= limit < interval[1]:
        return "pass (unresolved)" if ok else "miss (unresolved)"
    return "pass" if ok else "**miss**"


def _name(path: Path, result: Result) -> str:
    load = f"load {fmt(result.load_avg[0])}-{fmt(result.load_avg[-1])}"
    return f"`{path.stem}` ({result.device_name}, vLLM {result.versions.get('vllm', '?')}, {load})"


def is_long(result: Result) -> bool:
    """A long-answer run (``--logprobs both``, hundreds of tokens) goes to the long table whole."""
    return any(c.logprobs or c.tokens >= 300 for c in result.cells)


def cpu_rows(name: str, result: Result) -> list[str]:
    rows = []
    for c in result.cells:
        if not c.pairs or is_long(result):
            continue
        raw = c.raw("cpu_us_per_token") or 0.0
        extra, interval = c.extra("cpu_us_per_token")
        speed, speed_iv = c.ratio("agg_tok_s")
        ok = extra is not None and extra <= CPU_SLACK * raw
        decode = c.beside_median("decode_ratio")
        model = result.engine.get("model", "embedded")
        rows.append(
            f"| {name} | {model} | {c.mode} | {c.path} | {c.streams}x{c.tokens} | {fmt(c.raw('agg_tok_s'))} |"
            f" {fmt(speed, 3)}{fmt_interval(speed_iv, 3)} | {fmt(decode, 3)} | {fmt(raw)} |"
            f" {fmt(extra, 1, True)}{fmt_interval(interval, 1, True)}"
            f" | {verdict(ok, interval, CPU_SLACK * raw) if c.path == 'api' else '-'} |"
        )
    return rows


def long_rows(name: str, result: Result) -> list[str]:
    rows = []
    for c in result.cells:
        if not c.pairs or not is_long(result):
            continue
        lag = c.beside_median("last_lag_ms")
        lags = [b.last_lag_ms for b in c.beside]
        paint_cpu = f"{fmt(c.value('paint_us_early'))} → {fmt(c.value('paint_us_late'))}"
        kib = (c.value("bytes_per_stream") or 0) / 1024
        rows.append(
            f"| {name} | {c.mode} | {c.path} | {c.streams}x{c.tokens} | {'yes' if c.logprobs else 'no'} |"
            f" {fmt(c.beside_median('decode_ratio'), 3)} |"
            f" {fmt(lag, 1, True)} (max {fmt(max(lags, default=None), 1, True)}) |"
            f" {'-' if lag is None else ('pass' if lag <= LAG_MS else '**miss**')} |"
            + (
                " - | - | - |"
                if c.path == "api"
                else f" {paint_cpu} | {fmt(c.value('paints_per_stream'), 0)} | {fmt(kib)} |"
            )
        )
    return rows


def startup_rows(name: str, result: Result) -> list[str]:
    if result.startup is None:
        return []
    rows = []
    runs = result.startup.runs
    for mode in dict.fromkeys(r.mode for r in runs):
        raw, ours = median(result.startup.warm("raw", mode)), median(result.startup.warm("vstream", mode))
        cold = {r.kind: r.first_token_s for r in runs if r.mode == mode and r.cold}
        goal = STARTUP_GOALS.get((result.device, mode))
        levers = ", ".join(
            f"{r.kind} {r.first_token_s:.1f}" for r in runs if r.mode == mode and r.kind not in ("raw", "vstream")
        )
        phases = next((r for r in runs if r.mode == mode and r.kind == "vstream" and not r.cold), None)
        ok_gap = raw is not None and ours is not None and ours <= raw + STARTUP_SLACK_S
        ok_goal = goal is not None and ours is not None and ours <= goal
        rows.append(
            f"| {name} | {mode} | {fmt(raw)} | {fmt(ours)} | {'pass' if ok_gap else '**miss**'} |"
            f" {fmt(goal, 0)} s: {'pass' if ok_goal else '**miss**'} |"
            f" {fmt(cold.get('raw'))} / {fmt(cold.get('vstream'))} |"
            f" {phase_text(phases) if phases else '-'} | {levers or '-'} |"
        )
    return rows


def tables(paths: list[Path]) -> list[str]:
    results = [(p, load(p)) for p in paths]
    cpu, long, start, notes = [], [], [], []
    for path, result in results:
        name = _name(path, result)
        cpu += cpu_rows(name, result)
        long += long_rows(name, result)
        start += startup_rows(name, result)
        if result.imports is not None:
            notes.append(f"- {name}: {result.imports.line()}")
        notes += [f"- {name}: {note}" for note in result.notes]
        notes += [f"- {name}: {c.key}: {e}" for c in result.cells for e in c.errors[:2]]
    return _table(STARTUP, start) + _table(CPU, cpu) + _table(LONG, long) + notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--write", type=Path, help="replace the part of this file between the bench markers")
    args = p.parse_args(argv)
    text = "\n".join(tables(sorted(args.files)))
    if args.write is None:
        print(text)
        return 0
    readme = args.write.read_text()
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    args.write.write_text(f"{head}{START}\n{text}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
