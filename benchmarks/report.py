"""``python -m benchmarks.report [--write README.md] [FILES...]``: results JSON → Markdown table.

Reads ``benchmarks/results/*.json`` (or the files given), prints one table row per file, mode and
size, and with ``--write`` replaces what lies between ``<!-- bench:start -->`` and
``<!-- bench:end -->`` in that file (the markers are appended if the file has none).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from . import _verdicts
from ._stats import vs_raw

RESULTS = Path(__file__).resolve().parent / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _f(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _at(paths: dict[str, Any], path: str, n: str) -> dict[str, Any] | None:
    section = paths.get(path)
    return section.get(n) if isinstance(section, dict) else None


def rows(result: dict[str, Any], name: str) -> list[str]:
    out = []
    device = result.get("device_name", "?").split(",")[0]
    versions = f"vLLM {result.get('vllm')}"
    for mode, data in (result.get("modes") or {}).items():
        paths = data.get("paths") or {}
        server = (((result.get("alternatives") or {}).get(mode) or {}).get("server") or {}).get(
            "sizes"
        ) or {}
        start = data.get("startup") or {}
        sizes = {n for name in ("raw", "mixed") for n in paths.get(name) or {}}
        for n in sorted(sizes, key=int):
            key = "decode_tok_s" if n == "1" else "agg_tok_s"
            raw = _at(paths, "raw", n) or {}
            api, magic, panel, ids = (_at(paths, p, n) for p in ("api", "magic", "panel", "raw_ids"))
            srv = _at(paths, "server", n) or server.get(n)  # beside the engine, or (older) after it
            tokens = next(
                (s["tokens"] for s in result.get("sizes", []) if str(s["streams"]) == n), "?"
            )
            out.append(
                " | ".join(
                    [
                        f"| {name}",
                        device,
                        versions,
                        mode,
                        f"{n}x{tokens}",
                        _f(raw.get(key)),
                        _f(vs_raw(api, raw, key), 3),
                        _f(vs_raw(magic, raw, "agg_tok_s"), 3),
                        _f(vs_raw(panel, raw, "agg_tok_s"), 3),
                        " / ".join(_f(x and x["ttft_ms_p50"]) for x in (raw or None, ids, api)),
                        one_batch(paths, n),
                        cpu(paths, n),
                        _f(srv and (srv[key]), 1)
                        + (f" / {_f(srv['ttft_ms_p50'])} ms" if srv else ""),
                        _f(start.get("load_ext_to_first_token_s")) if n == "1" else "",
                    ]
                )
                + " |"
            )
    return out


def one_batch(paths: dict[str, Any], n: str) -> str:
    """vstream's streams beside raw ones in one batch: API aggregate ratio and TTFT difference,
    then the magic's and the panel's decode ratio (as shown)."""
    parts = []
    api = _at(paths, "mixed", n)
    if api and api.get("agg_ratio") is not None:
        parts.append(f"API {_f(api['agg_ratio'], 3)} / {api['ttft_diff_ms']:+.1f} ms")
    for name in ("magic", "panel"):
        ui = _at(paths, f"mixed_{name}", n)
        if ui and ui.get("decode_ratio") is not None:
            parts.append(f"{name} {_f(ui['decode_ratio'], 3)}")
    return "; ".join(parts) or "-"


def cpu(paths: dict[str, Any], n: str) -> str:
    """CPU µs per token: raw's, then what the API, the magic and the panel spent over it."""
    measured = _verdicts.cpu_per_token({"paths": paths}, n, ("api", "magic", "panel"))
    if measured is None:
        return "-"
    raw, extra = measured
    return f"{raw:.0f}; " + ", ".join(f"{name} {'-' if v is None else f'{v:+.0f}'}" for name, v in extra)


def table(files: list[Path]) -> str:
    head = (
        "| run | device | versions | mode | streams x tokens | raw tok/s | API/raw | magic/raw "
        "| panel/raw | TTFT p50 raw / ids / API ms "
        "| one batch beside raw: API tok/s ratio / ΔTTFT; magic, panel decode "
        "| CPU µs/token: raw; extra "
        "| vllm serve tok/s / TTFT | start → 1st token s |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    verdicts, checks_on_gpu = [], []
    for path in files:
        result = json.loads(path.read_text())
        if "modes" not in result:  # a GPU test's record (memory, multi-GPU), not a benchmark run
            checks_on_gpu.append(gpu_check(result, path.stem))
            continue
        lines += rows(result, path.stem)
        checks = _verdicts.verdicts(result)  # today's rules on the stored measurements
        failed = [
            c["target"] + (" (unresolved)" if c.get("resolved") is False else "")
            for c in checks
            if c.get("pass") is False
        ]
        unresolved = sum(c.get("resolved") is False for c in checks)
        verdicts.append(
            f"- `{path.stem}` ({result.get('date', '?')}): "
            f"{sum(c.get('pass') is True for c in checks)}/{len(checks)} targets pass"
            + (f" ({unresolved} of all {len(checks)} unresolved)" if unresolved else "")
            + (f"; failing: {'; '.join(failed)}" if failed else "")
        )
    note = (
        "Tok/s: 1 stream = decode speed; 8/64 = aggregate until the last token was seen "
        "(UI paths: shown). TTFT ids = raw with the prompt tokenized beforehand, as vstream sends it"
        " (token ids). "
        "One batch: vstream's streams and the seed's loop's side by side in the same batch (API: half"
        " and half; magic and panel: n beside n raw), so both see the same engine steps and the"
        " host's drift cancels out; raw is handed to the engine first. "
        "Ratios are measured side by side in one run: each is the median, over rounds, of a run"
        " against the raw run next to it (in files written before that: the raw run of the same round)."
        " CPU µs/token: CPU time of the benchmark's process (vLLM's engine core runs in its own)"
        " per token for raw, and the paired median of what each path spent over it."
        " Unresolved: the 95 % interval of that median (order statistics of the pairs) straddles"
        " the target, so the host's noise in that run is larger than the target's margin."
    )
    gpu = ["", "GPU checks from `pytest -m gpu` on the device machine (GiB in use per GPU):", "", *checks_on_gpu]
    return "\n".join([*lines, "", note, "", *verdicts, *(gpu if checks_on_gpu else [])])


def gpu_check(result: dict[str, Any], name: str) -> str:
    """One line per GPU test record: what ran, on what, and the memory before / loaded / after."""
    where = f"- `{name}` ({result.get('card', '?')}, {result.get('date', '?')[:10]}): "
    if "kernels" in result:  # tests/gpu/test_gpu_memory.py: many kernels at once
        ready = result["ready_s"]
        return where + (
            f"{result['kernels']} kernels with default engines at once: {result['failures']} failures, "
            f"ready in {_f(min(ready))}-{_f(max(ready))} s, KV {', '.join(map(str, result['kv_tokens']))} "
            f"tokens each, {_f(result['peak_gib'])} GiB at peak, {_f(result['after_gib'])} after"
        )
    if "freed_share" in result:  # tests/gpu/test_gpu_memory.py: sleep and the idle timer
        awake = statistics.median(result["ttft_awake_ms"])
        return where + (
            f"default engine {_f(result['engine_gib'])} GiB → asleep {_f(result['asleep_gib'])} "
            f"({result['freed_share']:.0%} freed); sleep {_f(result['sleep_s'])} s, wake {result['wake_s']:.3f} s; "
            f"TTFT after an automatic wake {_f(min(result['ttft_after_automatic_wake_ms']))}-"
            f"{_f(max(result['ttft_after_automatic_wake_ms']))} ms (awake: {_f(awake)} ms)"
        )

    def gib(key: str) -> str:
        value = result.get(key)
        if value is None:
            return "-"
        return "/".join(_f(v) for v in value) if isinstance(value, list) else _f(value)

    after = "gpu_used_after_gib" if "gpu_used_after_gib" in result else "gpu_used_after_shutdown_gib"
    extra = [
        f"{label} {_f(result[key])}{unit}"
        for key, label, unit in (
            ("startup_s", "start", " s"), ("release_s", "freed in", " s"), ("tokens_per_s", "", " tok/s"),
        )
        if result.get(key) is not None
    ]
    return (
        where + f"{gib('gpu_used_before_gib')} → {gib('gpu_used_loaded_gib')} → {gib(after)} GiB"
        + (f"; {', '.join(e.strip() for e in extra)}" if extra else "")
    )


def write(target: Path, text: str) -> None:
    block = f"{START}\n{text}\n{END}"
    content = target.read_text() if target.exists() else ""
    if START in content and END in content:
        before, rest = content.split(START, 1)
        after = rest.split(END, 1)[1]
        content = before + block + after
    else:
        content = (
            content.rstrip("\n") + ("\n\n" if content else "") + "## Benchmarks\n\n" + block + "\n"
        )
    target.write_text(content)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "files", nargs="*", type=Path, help="result files (default: benchmarks/results/*.json)"
    )
    p.add_argument("--write", type=Path, help="file whose bench:start/bench:end block is replaced")
    args = p.parse_args(argv)
    files = args.files or sorted(RESULTS.glob("*.json"))
    if not files:
        print(f"no results in {RESULTS}", file=sys.stderr)
        return 1
    text = table(files)
    if args.write:
        write(args.write, text)
        print(f"wrote the benchmark block of {args.write}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
