"""Start-up to the first token, each in a fresh process: raw AsyncLLM vs ``vstream.engine()``.

``python -m benchmarks.startup --device cpu|cuda --modes eager,graphs --rounds 2 --out FILE.json``

Per mode: one cold vstream start (an empty vLLM cache), one cold raw start, then ``rounds`` warm
starts of each, alternated. Raw builds ``AsyncLLM.from_engine_args`` with the very keyword
arguments vstream's engine was built with (``EngineInfo.engine_args``) and vLLM's own process
start method; vstream's phases are the status it shows while starting. ``--import-probe`` also
times ``import vllm`` twice (the second with a warm page cache) and lists what the first spent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .records import ImportProbe, Result, Startup, StartupRun, now_iso, save

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The key to happiness is"


def _since_process_start() -> float:
    import psutil

    return time.time() - psutil.Process().create_time()


def child_raw(kwargs: dict[str, Any], tokens: int) -> dict[str, Any]:
    marks = {"process": -_since_process_start()}
    t0 = time.perf_counter()
    import asyncio

    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    marks["import vLLM"] = time.perf_counter() - t0
    if isinstance(kwargs.get("structured_outputs_config"), dict):
        from vllm.config import StructuredOutputsConfig

        kwargs["structured_outputs_config"] = StructuredOutputsConfig(**kwargs["structured_outputs_config"])

    async def main() -> None:
        engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
        marks["engine built"] = time.perf_counter() - t0
        params = SamplingParams(
            max_tokens=tokens, ignore_eos=True, temperature=0.0, output_kind=RequestOutputKind.DELTA
        )
        async for out in engine.generate(PROMPT, params, "startup"):
            if out.outputs[0].token_ids and "first token" not in marks:
                marks["first token"] = time.perf_counter() - t0
        engine.shutdown()

    asyncio.run(main())
    return {"marks": marks, "method": os.environ.get("VLLM_WORKER_MULTIPROC_METHOD", "fork (vLLM's default)")}


def child_vstream(config: dict[str, Any], tokens: int) -> dict[str, Any]:
    marks = {"process": -_since_process_start()}
    t0 = time.perf_counter()
    import vstream

    marks["import vstream"] = time.perf_counter() - t0
    phases: list[tuple[str, float]] = []
    host = vstream.engine(**config)
    host.add_listener(lambda status: phases.append((status.phase, time.perf_counter() - t0)))
    info = host.wait_ready()
    kept = phases[: next((i for i, p in enumerate(phases) if p[0] == "ready"), len(phases))]
    marks["ready"] = time.perf_counter() - t0
    for _ in host.stream(PROMPT, max_tokens=tokens, ignore_eos=True, temperature=0.0):
        marks.setdefault("first token", time.perf_counter() - t0)
    host.shutdown()
    # Consecutive duplicates (a phase re-announced by a status change) are one phase.
    seen = [p for i, p in enumerate(kept) if i == 0 or p[0] != kept[i - 1][0]]
    return {
        "marks": marks,
        "phases": seen,
        "engine_args": info.engine_args,
        "method": os.environ.get("VLLM_WORKER_MULTIPROC_METHOD"),
    }


def _env(device: str, cache: str | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if device == "cpu":
        env["VSTREAM_DEVICE"] = "cpu"
    if cache is not None:  # a cold start: vLLM's compile cache starts empty
        env["VLLM_CACHE_ROOT"] = cache
    return env


def _run_child(kind: str, payload: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(payload, f, default=str)
    cmd = [sys.executable, "-m", "benchmarks.startup", "--child", kind, f.name]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} start failed (rc {done.returncode}): {done.stderr[-1500:]}")
    print(f"[startup] {kind}: {lines[-1][:700]}", file=sys.stderr, flush=True)  # the log keeps each run
    return json.loads(lines[-1])


def _as_run(kind: str, mode: str, cold: bool, out: dict[str, Any]) -> StartupRun:
    marks = out["marks"]
    offset = marks.pop("process")  # the interpreter's own start, before t0
    total = marks["first token"] - offset
    phases = [(name, t - offset) for name, t in out.get("phases", [])]
    return StartupRun(kind, mode, cold, total, {k: v - offset for k, v in marks.items()}, phases, out.get("method"))


# Levers, each a warm vstream start with one thing changed: the plain spawn (vstream before the
# forkserver), and CUDA-graph capture sizes fitted to max_num_seqs (64; vLLM captures up to 128).
LEVERS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "vstream-spawn": ({"VSTREAM_START_METHOD": "spawn"}, {}),
    "vstream-fit": ({}, {"engine_args": {"max_cudagraph_capture_size": 64}}),
}


def measure(
    device: str, modes: list[str], rounds: int, tokens: int, timeout: float, levers: list[str], log: Any,
    cold_too: bool = True,
) -> Startup:  # fmt: skip
    runs: list[StartupRun] = []
    for mode in modes:
        config: dict[str, Any] = {"enforce_eager": mode == "eager"}
        with tempfile.TemporaryDirectory(prefix="vstream-cold-") as cold:
            log(f"start-up {mode}: vstream {'cold' if cold_too else 'warm'}")
            env = _env(device, cold + "/v" if cold_too else None)
            first = _run_child("vstream", {"config": config, "tokens": tokens}, env, timeout)
            runs.append(_as_run("vstream", mode, cold_too, first))
            kwargs = first["engine_args"]
            log(f"start-up {mode}: raw cold")
            runs += (
                []
                if not cold_too
                else [
                    _as_run(
                        "raw",
                        mode,
                        True,
                        _run_child("raw", {"kwargs": kwargs, "tokens": tokens}, _env(device, cold + "/r"), timeout),
                    )
                ]
            )
        for i in range(rounds):
            for kind in ("raw", "vstream") if i % 2 == 0 else ("vstream", "raw"):
                log(f"start-up {mode}: {kind} warm, round {i + 1}")
                payload = (
                    {"kwargs": kwargs, "tokens": tokens} if kind == "raw" else {"config": config, "tokens": tokens}
                )
                runs.append(_as_run(kind, mode, False, _run_child(kind, payload, _env(device, None), timeout)))
        for lever in levers:
            if lever == "vstream-fit" and mode == "eager":
                continue
            env, extra = LEVERS[lever]
            log(f"start-up {mode}: {lever} warm")
            out = _run_child(
                "vstream", {"config": {**config, **extra}, "tokens": tokens}, {**_env(device, None), **env}, timeout
            )
            runs.append(_as_run(lever, mode, False, out))
    return Startup(runs)


def import_probe(module: str = "vllm.v1.engine.async_llm") -> ImportProbe:
    """``import vllm`` twice in fresh interpreters (the second finds the files in the page cache),
    the first under ``-X importtime``: its slowest top-level packages, cumulative seconds; then
    two interpreters importing it at once, as a kernel and vstream's forkserver do."""
    walls, top, argv = [], {}, [sys.executable, "-c", f"import {module}"]
    for i in range(2):
        t = time.perf_counter()
        done = subprocess.run(argv[:1] + ["-X", "importtime"] * (i == 0) + argv[1:], capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        for line in done.stderr.splitlines() if i == 0 else []:  # "import time: self [us] | cumulative | name"
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() and not parts[2].startswith("  ") and parts[1].strip().isdigit():
                name = parts[2].strip().split(".")[0]
                top[name] = max(top.get(name, 0.0), int(parts[1]) / 1e6)
    t = time.perf_counter()
    for proc in [subprocess.Popen(argv) for _ in range(2)]:
        proc.wait()
    ranked = sorted(top.items(), key=lambda kv: -kv[1])[:8]
    return ImportProbe(module, walls[0], walls[1], ranked, time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    p.add_argument("--child", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--modes", default="eager")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--timeout", type=float, default=400.0)
    p.add_argument("--import-probe", action="store_true")
    p.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True, help="cold starts first")
    p.add_argument("--levers", default="", help=f"also warm vstream starts with: {', '.join(LEVERS)}")
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.child:
        spec = json.loads(Path(args.child[1]).read_text())
        out = (
            child_raw(spec["kwargs"], spec["tokens"])
            if args.child[0] == "raw"
            else child_vstream(spec["config"], spec["tokens"])
        )
        print(json.dumps(out, default=str), flush=True)
        return 0

    def log(message: str) -> None:
        print(f"[startup {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    result = Result.begin(args.device, " ".join(sys.argv))
    if args.import_probe:
        log("import probe")
        result.imports = import_probe()
    result.startup = measure(
        args.device,
        args.modes.split(","),
        args.rounds,
        args.tokens,
        args.timeout,
        [x for x in args.levers.split(",") if x],
        log,
        args.cold,
    )
    import importlib.metadata

    for name in ("vllm", "torch"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            result.versions[name] = importlib.metadata.version(name)
    result.finish()
    if args.out:
        save(result, args.out)
    print("\n".join(result.startup.lines()))
    if result.imports:
        print(result.imports.line())
    print(f"(finished {now_iso()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
