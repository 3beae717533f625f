"""``python -m benchmarks.stream --device cpu|cuda --mode eager|graphs --out FILE.json``

One engine, the same prompt and token counts (``ignore_eos``, greedy): every path a user can
take to its tokens, each run right next to a raw run (raw first in even rounds, second in odd
ones, so drift favours no side), and with ``--beside`` in one batch with raw streams.
``--model qwen2-1.5b`` swaps the embedded model for a 1.5B-parameter Qwen2 of dummy weights.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Any

from . import paths
from .models import engine_config
from .records import Cell, Result, Run, save
from .report import fmt, fmt_interval

UI_PATHS = ("magic", "panel")  # -n and the panels' columns stop at 8 streams


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stream", description=__doc__.split("\n\n")[1])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--mode", choices=["eager", "graphs"], default="eager")
    p.add_argument("--model", choices=["embedded", "qwen2-1.5b"], default="embedded")
    p.add_argument("--sizes", default="1x64,8x32,64x16", help="streams x tokens, e.g. 1x128,8x128,64x128")
    p.add_argument("--paths", default="api,magic,panel", help="beside raw: api, magic, panel, server")
    p.add_argument("--rounds", type=int, default=6, help="pairs per cell (6 or more give a 95 %% interval)")
    p.add_argument("--beside", action=argparse.BooleanOptionalAction, default=True, help="one-batch runs too")
    p.add_argument("--logprobs", default="off", choices=["off", "on", "both"], help="the logprob view (top 5)")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import vstream

    result = Result.begin(args.device, " ".join(sys.argv))
    config = engine_config(args.model, eager=args.mode == "eager")
    log(f"engine: {args.mode}, {args.model}")
    t = time.perf_counter()
    host = vstream.engine(wait=True, **config)
    info = host.info
    result.engine = {
        "config": config, "engine_args": info.engine_args, "ready_s": time.perf_counter() - t, "model": args.model,
        "max_model_len": info.max_model_len, "kv_cache_tokens": info.kv_cache_tokens,
    }  # fmt: skip
    result.versions = {"vllm": info.vllm_version, "torch": info.torch_version, "python": sys.version.split()[0]}
    wanted = args.paths.split(",")
    runners: dict[str, Any] = {"api": functools.partial(paths.api, host)}
    if "magic" in wanted:
        runners["magic"] = functools.partial(paths.magic, paths.make_shell())
    if "panel" in wanted:
        runners["panel"] = functools.partial(paths.panel, host)
    server = None
    if "server" in wanted:
        from .server import Server

        log("vllm serve beside the engine")
        server = Server(dict(info.engine_args or {}), args.timeout)
        result.notes.append(f"vllm serve ready in {server.ready_s:.1f} s beside the engine")
        runners["server"] = server.run
    runners = {name: r for name, r in runners.items() if name in wanted}
    for runner in runners.values():  # once, unrecorded: a path's first use imports and builds its parts
        runner(n=1, sampling=paths.sampling_for(4), timeout=args.timeout)
    lps = {"off": [None], "on": [5], "both": [None, 5]}[args.logprobs]
    try:
        for size in args.sizes.split(","):
            n, tokens = map(int, size.split("x"))
            for lp in lps:
                sampling = paths.sampling_for(tokens, lp)
                cells = [Cell(name, n, tokens, args.mode, logprobs=lp is not None)
                         for name in runners if not (name in UI_PATHS and n > 8)]  # fmt: skip
                result.cells.extend(cells)
                measure(host, runners, cells, sampling, args)
                save(result, args.out)  # a run cut short keeps what it measured
    finally:
        if server is not None:
            server.close()
        host.shutdown()
    result.finish()
    save(result, args.out)
    print("\n".join(summary_lines(result)))
    print(f"wrote {args.out}")
    return 0


def measure(
    host: Any, runners: dict[str, Any], cells: list[Cell], sampling: dict[str, Any], args: argparse.Namespace
) -> None:
    n, tokens, timeout = cells[0].streams, cells[0].tokens, args.timeout
    log(f"{n} x {tokens}{' logprobs' if sampling.get('logprobs') else ''}: {args.rounds} rounds of raw beside "
        + ", ".join(c.path for c in cells))  # fmt: skip
    paths.raw(host, n, sampling, timeout)  # warm-up at this batch size, unrecorded
    for i in range(args.rounds):
        order = cells if i % 2 == 0 else cells[::-1]
        for cell in order:
            runner = runners[cell.path]
            try:
                if args.beside and cell.path != "server":
                    cell.beside.append(paths.beside(host, runner, n, sampling, timeout, half=cell.path == "api"))
                pair = {}
                for name in ("raw", cell.path) if i % 2 == 0 else (cell.path, "raw"):
                    records, cpu = (
                        paths.raw(host, n, sampling, timeout)
                        if name == "raw"
                        else runner(n=n, sampling=sampling, timeout=timeout)
                    )
                    pair[name] = Run.of(name, records, cpu)
                    short = [r.tokens for r in records if r.tokens != tokens]
                    if short:
                        cell.errors.append(f"round {i}: {name} streams got {short} tokens, not {tokens}")
                cell.pairs.append((pair["raw"], pair[cell.path]))
            except Exception as exc:  # a failing path is reported, the others go on
                cell.errors.append(f"round {i}: {type(exc).__name__}: {exc}")
                log(f"{cell.key}: {cell.errors[-1]}")


def summary_lines(result: Result) -> list[str]:
    out = []
    for c in result.cells:
        (ratio, interval), (cpu, cpu_iv) = c.ratio("agg_tok_s"), c.extra("cpu_us_per_token")
        line = f"{c.key}: tok/s {fmt(c.raw('agg_tok_s'))} raw, x{fmt(ratio, 3)}{fmt_interval(interval, 3)}; CPU"
        line += f" us/token raw {fmt(c.raw('cpu_us_per_token'))} {fmt(cpu, 1, True)}{fmt_interval(cpu_iv, 1, True)}"
        if c.beside:
            decode, lag = c.beside_median("decode_ratio"), c.beside_median("last_lag_ms")
            line += f"; one batch: decode x{fmt(decode, 3)}, last {fmt(lag, 1, True)} ms"
        if c.path in UI_PATHS and c.pairs:
            kib, early, late = (c.value(f) for f in ("bytes_per_stream", "paint_us_early", "paint_us_late"))
            line += f"; {fmt(c.value('paints_per_stream'))} paints, {fmt((kib or 0) / 1024)} KiB/stream"
            line += f", CPU us/paint {fmt(early)} early, {fmt(late)} late"
        out.append(line + (f"  ERRORS: {c.errors[:2]}" if c.errors else ""))
    return out


if __name__ == "__main__":
    sys.exit(main())
