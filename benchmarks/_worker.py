"""One engine mode in a fresh process: start-up as a user meets it, then every path, then memory.

Run by ``benchmarks.stream`` as ``python -m benchmarks._worker SPEC.json OUT.json``. In order:

1. memory before anything starts;
2. ``%load_ext vstream`` on a real InteractiveShell (starts the engine in the background), a user
   who types for ``typing_s`` seconds, then a ``%%vstream`` cell: start-up to first token;
3. with ``server``: ``vllm serve`` started beside the engine (its own share of GPU memory), so
   the openai client's runs are paired with raw runs like vstream's own paths;
4. for each size: one unrecorded warm-up, then ``reps`` rounds in which every path runs next to
   its own raw run, raw first in even rounds and second in odd ones, so drift favours no side;
5. memory when ready (before the server starts), after the benchmarks (the server stopped),
   after ``shutdown()``, after ``restart()`` and after the final shutdown.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from . import _alternatives, _paths, _probes, _stats
from ._stats import combine, summarise


def log(mode: str, message: str) -> None:
    print(f"[{mode} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def startup(spec: dict[str, Any], shell: Any) -> tuple[Any, dict[str, Any]]:
    """``%load_ext`` → (user types for typing_s) → ``%%vstream`` cell → first token on screen."""
    shell.config.VStreamMagics.engine_options = spec["engine"]
    t_load = time.perf_counter()
    shell.run_line_magic("load_ext", "vstream")
    returned = time.perf_counter() - t_load
    import vstream

    host = vstream.current()
    if host is None:
        raise RuntimeError("%load_ext vstream created no engine host")
    time.sleep(max(0.0, t_load + spec["typing_s"] - time.perf_counter()))
    t_typed = time.perf_counter()
    sampling = _paths.sampling_for(spec["startup_tokens"], spec["temperature"])
    rec = _paths.run_magic(shell, spec["prompt"], 1, sampling, spec["timeout_s"])[0]
    status = host.status()
    ready_at = host._started_at + status.elapsed_s - t_load
    return host, {
        "load_ext_returns_s": returned,
        "engine_ready_s": ready_at,  # since %load_ext
        "load_ext_to_first_token_s": rec["first"] - t_load if rec["first"] else None,
        "typing_s": spec["typing_s"],
        "wait_after_typing_s": rec["first"] - t_typed if rec["first"] else None,
        "ready_before_typing_done": ready_at <= spec["typing_s"],
        "first_cell_tokens": rec["tokens"],
    }


def _ui_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["updates_per_s"] for r in records if r.get("updates_per_s") is not None]
    overall = [
        r["updates_per_s_overall"] for r in records if r.get("updates_per_s_overall") is not None
    ]
    gaps = [r["min_gap_ms"] for r in records if r.get("min_gap_ms") is not None]
    out = {
        "updates_max": max(r["updates"] for r in records),
        "updates_per_s_max": max(rates) if rates else None,
        "updates_per_s_overall_max": max(overall) if overall else None,
        "min_gap_ms": min(gaps) if gaps else None,
        "final_text_matches": all(r["final_text_matches"] for r in records),
    }
    if "sampling_matches" in records[0]:
        out["sampling_matches"] = all(r["sampling_matches"] for r in records)
    return out


Runner = Callable[[], list[dict[str, Any]]]


def _runners(
    host: Any, shell: Any, rig: Any, server: Any, prompts: list[str], ids: list[list[int]],
    sampling: dict[str, Any], timeout: float, only: list[str] | None,
) -> dict[str, Runner]:  # fmt: skip
    n = len(prompts)
    runners: dict[str, Runner] = {
        "raw": lambda: _paths.run_raw(host, prompts, sampling, timeout),
        "raw_ids": lambda: _paths.run_raw(host, ids, sampling, timeout),
        "api": lambda: _paths.run_api(host, prompts, sampling, timeout),
    }
    if n > 1:
        runners["api_threads"] = lambda: _paths.run_api_threads(host, prompts, sampling, timeout)
    if n <= 8:  # %%vstream -n goes to 8; the panel has 4 columns, so 8 = two panels
        runners["magic"] = lambda: _paths.run_magic(shell, prompts[0], n, sampling, timeout)
        if rig is not None:
            panels, columns = math.ceil(n / 4), min(n, 4)
            runners["panel"] = lambda: rig.run(prompts[0], panels, columns, sampling, timeout)
    if server is not None:
        runners["server"] = lambda: server.run(prompts[0], n, sampling, timeout)
    if only:
        runners = {p: r for p, r in runners.items() if p == "raw" or p in only}
    return runners


def benchmark(
    spec: dict[str, Any], host: Any, shell: Any, mode: str, server: Any = None
) -> tuple[dict[str, Any], list[str]]:
    sizes, reps, timeout = spec["sizes"], spec["reps"], spec["timeout_s"]
    errors: list[str] = []
    rig: Any = None
    panel_reason = None
    try:
        rig = _paths.PanelRig(host)
    except Exception as exc:  # the panel is being written: say why it is missing
        panel_reason = f"vstream.Panel not usable: {type(exc).__name__}: {exc}"
        errors.append(panel_reason)
    results: dict[str, dict[str, Any]] = {
        "raw": {},
        "raw_ids": {},
        "api": {},
        "api_threads": {},
        "magic": {},
        "panel": {},
        "server": {},
        "mixed": {},
        "mixed_magic": {},
        "mixed_panel": {},
    }
    texts: dict[str, dict[str, list[str]]] = {p: {} for p in results}
    for size in sizes:
        n, tokens = size["streams"], size["tokens"]
        prompts = _paths.prompts_for(n, spec["prompt"])
        ids = [host.render(p).token_ids for p in prompts]
        sampling = _paths.sampling_for(tokens, spec["temperature"])
        runners = _runners(host, shell, rig, server, prompts, ids, sampling, timeout, spec.get("paths"))
        log(
            mode,
            f"{n} streams x {tokens} tokens: warm-up, then {reps} rounds of raw next to each of"
            f" {', '.join(p for p in runners if p != 'raw')}",
        )
        _paths.run_raw(host, prompts, sampling, timeout)
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in runners}
        failed: set[str] = set()
        others = [p for p in runners if p != "raw"]
        mixers = _mixers(host, shell, rig, prompts, sampling, timeout, spec.get("paths"))
        mixed: dict[str, list[dict[str, Any] | None]] = {name: [] for name in mixers}
        for rep in range(reps):
            for name, mixer in mixers.items():
                mixed[name].append(_measure_mixed(name, mixer, tokens, n, errors))
            # Every path runs right next to a raw run, before it in one round and after it in the
            # next: its ratio is taken against that neighbour, so drift between rounds cancels.
            order = others if rep % 2 == 0 else list(reversed(others))
            for path in order:
                if path in failed:
                    continue
                pair = ("raw", path) if rep % 2 == 0 else (path, "raw")
                measured = {}
                for p in pair:
                    if path == "server" and spec["device"] == "cpu":
                        # Two engines take turns on 2 cores: let the one that just ran go idle
                        # (measured: a vLLM engine keeps a core busy for ~1 s after its last
                        # request; on a GPU host with 16 cores that costs the other nothing).
                        time.sleep(CPU_SETTLE_S)
                    measured[p] = _measure(p, runners[p], tokens, n, errors, texts)
                raw, other = measured["raw"], measured[path]
                if raw is not None:
                    runs["raw"].append(raw)
                if other is None:
                    failed.add(path)
                    continue
                if raw is not None:
                    other.update({f"raw_{k}": raw[k] for k in _PAIRED})
                runs[path].append(other)
        for name, measured in mixed.items():
            if any(m is not None for m in measured):
                results[name][str(n)] = combine([m for m in measured if m is not None])
        for path, path_runs in runs.items():
            if path_runs:
                results[path][str(n)] = combine(path_runs)
                if path != "raw" and str(n) in texts["raw"]:
                    same = sum(
                        a == b
                        for a, b in zip(texts[path][str(n)], texts["raw"][str(n)], strict=False)
                    )
                    results[path][str(n)]["same_text_as_raw"] = same / len(texts[path][str(n)])
    out: dict[str, Any] = {k: v or None for k, v in results.items()}
    if rig is None:
        out["panel"] = None
        out["panel_reason"] = panel_reason
    return out, errors


CPU_SETTLE_S = 1.2
_PAIRED = ("agg_tok_s", "decode_tok_s", "ttft_ms_p50", "cpu_us_per_token")


Mixer = Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]


def _mixers(
    host: Any, shell: Any, rig: Any, prompts: list[str], sampling: dict[str, Any], timeout: float,
    only: list[str] | None,
) -> dict[str, Mixer]:  # fmt: skip
    """vstream's paths beside raw streams in one batch: the API (half and half; one of each for
    one stream), the magic and the panel (n of theirs beside n raw streams)."""
    n, prompt = len(prompts), prompts[0]
    mixers: dict[str, Mixer] = {"mixed": lambda: _paths.run_mixed(host, prompts, sampling, timeout)}
    if n <= 8:
        mixers["mixed_magic"] = lambda: _paths.beside_raw(
            host, n, prompt, sampling, timeout,
            lambda before: _paths.run_magic(shell, prompt, n, sampling, timeout, start=before()),
        )  # fmt: skip
        if rig is not None:
            panels, columns = math.ceil(n / 4), min(n, 4)
            mixers["mixed_panel"] = lambda: _paths.beside_raw(
                host, n, prompt, sampling, timeout,
                lambda before: rig.run(prompt, panels, columns, sampling, timeout, before=before),
            )  # fmt: skip
    return {name: m for name, m in mixers.items() if not only or name in only}


def _measure_mixed(name: str, mixer: Mixer, tokens: int, n: int, errors: list[str]) -> dict[str, Any] | None:
    """One mixed batch → vstream's streams against the raw streams of the same batch."""
    try:
        raw_records, api_records = mixer()
    except Exception as exc:
        errors.append(f"{name} at {n} streams: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return None
    raw, api = summarise(raw_records, tokens), summarise(api_records, tokens)
    return {
        "agg_ratio": _stats.ratio(api["agg_tok_s"], raw["agg_tok_s"]),
        "decode_ratio": _stats.ratio(api["decode_tok_s"], raw["decode_tok_s"]),
        "ttft_diff_ms": api["ttft_ms_p50"] - raw["ttft_ms_p50"],
        "last_token_diff_ms": 1000 * (
            max(r["last"] for r in api_records) - max(r["last"] for r in raw_records)
        ),
        "raw_agg_tok_s": raw["agg_tok_s"],
        "api_agg_tok_s": api["agg_tok_s"],
        "raw_ttft_ms_p50": raw["ttft_ms_p50"],
        "api_ttft_ms_p50": api["ttft_ms_p50"],
        "tokens_ok": raw["tokens_ok"] and api["tokens_ok"],
        "same_text": [r["text"] for r in raw_records] == [r["text"] for r in api_records],
    }


def _measure(
    path: str, runner: Runner, tokens: int, n: int, errors: list[str], texts: dict[str, dict[str, list[str]]]
) -> dict[str, Any] | None:
    """One run of one path → its summary (None if it failed: the error is recorded)."""
    cpu = time.process_time()
    try:
        records = runner()
    except Exception as exc:
        errors.append(f"{path} at {n} streams: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return None
    cpu = records[0].get("cpu_s", time.process_time() - cpu) if records else 0.0  # a runner may time its own
    summary = summarise(records, tokens)
    # CPU time of this whole process (every thread: the engine's loop, readers, painting); vLLM's
    # engine core runs in a process of its own, so this is the work done between it and the
    # reader, which the host's drift moves far less than wall-clock speed. The server path's own
    # work is in the server's process: only its client shows here.
    summary["cpu_us_per_token"] = cpu * 1e6 / max(1, summary["tokens"])
    summary["ttft_ms"] = [round((r["first"] - r["start"]) * 1000, 3) if r["first"] else None for r in records]
    fed = [r for r in records if r.get("fed_first") and r["first"]]
    if fed:  # where the engine's loop fed the Stream vs when the reader got it
        summary["fed_ttft_ms_p50"] = _stats.percentile([(r["fed_first"] - r["start"]) * 1000 for r in fed], 50)
        summary["handoff_ms_p50"] = _stats.percentile([(r["first"] - r["fed_first"]) * 1000 for r in fed], 50)
    if path in ("magic", "panel"):
        summary.update(_ui_summary(records))
    if path == "panel":
        summary["seeds"] = [r.get("seed") for r in records]
    texts[path].setdefault(str(n), [r["text"] for r in records])
    return summary


def settle_gpu(device: str, seconds: float = 10.0) -> None:
    """Give the driver a moment to report freed memory (it lags a process's exit)."""
    if device != "cuda":
        time.sleep(1.0)
        return
    last, end = None, time.time() + seconds
    while time.time() < end:
        used = _probes.memory_point("", device).get("gpu_used_gib")
        if last is not None and used is not None and abs(used - last) < 0.01:
            return
        last = used
        time.sleep(1.0)


def main(spec_path: str, out_path: str) -> int:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    mode, device = spec["mode"], spec["device"]
    result: dict[str, Any] = {"mode": mode, "errors": []}
    memory = [_probes.memory_point("before start", device)]
    t0 = time.time()
    host = None
    try:
        shell = _paths.make_shell()
        log(mode, "%load_ext vstream, simulated typing, first %%vstream cell")
        host, result["startup"] = startup(spec, shell)
        info = host.info
        result["engine"] = {
            "config": {k: v for k, v in vars(host.config).items()},
            "engine_args": host._backend._engine_kwargs(info.model_path),
            "model_path": info.model_path,
            "max_model_len": info.max_model_len,
            "kv_cache_tokens": info.kv_cache_tokens,
            "mode": info.mode,
        }
        result["versions"] = {
            "vllm": info.vllm_version,
            "torch": info.torch_version,
            "python": sys.version.split()[0],
        }
        result["device_name_engine"] = info.device_name
        log(
            mode,
            f"engine ready at {result['startup']['engine_ready_s']:.1f} s; first token at "
            f"{result['startup']['load_ext_to_first_token_s']:.1f} s after %load_ext",
        )
        memory.append(_probes.memory_point("ready", device, host.process_ids()))
        server = None
        if spec.get("server"):
            log(mode, "vllm serve beside the engine")
            try:
                server = _alternatives.ServerRig(
                    result["engine"]["engine_args"], dict(os.environ), spec["timeout_s"], lambda m: log(mode, m)
                )
                result["server"] = server.describe()
            except Exception as exc:
                result["server"] = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            result["paths"], result["errors"] = benchmark(spec, host, shell, mode, server)
        finally:
            if server is not None:
                server.close()
        settle_gpu(device)
        memory.append(_probes.memory_point("after benchmarks", device, host.process_ids()))
        pids = host.process_ids()
        host.shutdown()
        settle_gpu(device)
        memory.append(_probes.memory_point("after shutdown", device, pids))
        if spec["restart"]:
            log(mode, "restart()")
            t = time.perf_counter()
            host.restart()
            host.wait_ready(spec["timeout_s"])
            result["restart_ready_s"] = time.perf_counter() - t
            memory.append(_probes.memory_point("after restart", device, host.process_ids()))
            pids = host.process_ids()
            host.shutdown()
            settle_gpu(device)
            memory.append(_probes.memory_point("after final shutdown", device, pids))
    except Exception as exc:
        result["errors"].append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        if host is not None:
            host.shutdown()
    result["memory"] = memory
    result["wall_s"] = time.time() - t0
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=str)
    log(mode, f"done in {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    sys.exit(main(sys.argv[1], sys.argv[2]))
