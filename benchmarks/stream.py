"""``python -m benchmarks.stream --device cpu|cuda --out FILE.json [--quick]``

Against one engine configuration, the same prompt and token counts (``ignore_eos``, no seeds):
the raw AsyncLLM DELTA loop vs the Stream API vs ``%%vstream`` vs ``vstream.Panel`` at 1, 8 and
64 streams (magic and panel up to 8), start-up from ``%load_ext`` in a fresh process (eager, and
compiled on CUDA), memory around ``shutdown()``/``restart()``, and with ``--alternatives``
``vllm serve`` + openai (beside the engine, paired with raw like every path) and transformers'
TextIteratorStreamer. Ends with PASS/FAIL lines for the issue's targets and a compact table;
the JSON has every number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _alternatives, _paths, _probes, _verdicts

ROOT = Path(__file__).resolve().parent.parent

# streams x tokens per stream; full GPU sizes keep an H100 run (both modes, alternatives) < 8 min.
QUICK = {"sizes": "1x64,8x32,64x16", "reps": 4, "startup_tokens": 16}
FULL = {
    "cuda": {"sizes": "1x256,8x256,64x256", "reps": 2, "startup_tokens": 32},
    "cpu": {"sizes": "1x128,8x64,64x32", "reps": 4, "startup_tokens": 16},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.stream", description=__doc__.split("\n\n")[1]
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="default: cuda if nvidia-smi is found",
    )
    p.add_argument(
        "--out", required=True, help="JSON file to write (e.g. benchmarks/results/h100.json)"
    )
    p.add_argument(
        "--quick", action="store_true", help=f"small sizes ({QUICK['sizes']}), for CPU and CI"
    )
    p.add_argument("--sizes", help="streams x tokens list, e.g. 1x64,8x32,64x16")
    p.add_argument(
        "--reps",
        type=int,
        help="rounds per path and size (each path next to its own raw run; order reversed in odd rounds)",
    )
    p.add_argument("--modes", help="eager,compiled (default: eager on cpu, eager,compiled on cuda)")
    p.add_argument(
        "--alternatives",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also vllm serve + openai and transformers (default: on for cuda, off for cpu)",
    )
    p.add_argument(
        "--transformers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --alternatives: also transformers' TextIteratorStreamer (off: the server only)",
    )
    p.add_argument(
        "--paths",
        help="only these paths next to raw, e.g. api,magic,panel,mixed,server (default: all)",
    )
    p.add_argument("--temperature", type=float, default=0.0, help="same for every path (0: greedy)")
    p.add_argument("--prompt", default=_paths.PROMPT)
    p.add_argument(
        "--typing-s", type=float, default=10.0, help="simulated typing time after %%load_ext"
    )
    p.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=None,
        help="default: 0.1 on cpu, vstream's default on cuda",
    )
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument(
        "--restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure restart() in the first mode",
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per request batch / server start"
    )
    return p.parse_args(argv)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(device: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    env.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if device == "cuda":
        env.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # the GPU image has no flashinfer
    else:
        env["VSTREAM_DEVICE"] = "cpu"
    return env


def run_mode(spec: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One engine mode in a fresh process (``_worker``), so start-up is what a new kernel sees."""
    with tempfile.TemporaryDirectory(prefix="vstream-bench-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "benchmarks._worker", str(spec_path), str(out_path)]
        try:
            subprocess.run(cmd, env=env, cwd=ROOT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"mode": spec["mode"], "errors": [f"worker took over {timeout:.0f} s"]}
        if not out_path.exists():
            return {
                "mode": spec["mode"],
                "errors": ["worker wrote no result (see its output above)"],
            }
        return json.loads(out_path.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    device = args.device or ("cuda" if _probes.nvidia_smi("name") else "cpu")
    preset = QUICK if args.quick else FULL[device]
    sizes = [
        {"streams": int(a), "tokens": int(b)}
        for a, b in (s.split("x") for s in (args.sizes or preset["sizes"]).split(","))
    ]
    reps = args.reps or preset["reps"]
    modes = (args.modes or ("eager,compiled" if device == "cuda" else "eager")).split(",")
    alternatives = args.alternatives if args.alternatives is not None else device == "cuda"
    engine: dict[str, Any] = {}
    # vstream's default engine (weights + a notebook-sized KV budget) unless a share is asked for.
    if args.gpu_memory_utilization is not None:
        engine["gpu_memory_utilization"] = args.gpu_memory_utilization
    if args.max_model_len:
        engine["max_model_len"] = args.max_model_len
    env = child_env(device)
    result: dict[str, Any] = {
        "device": device,
        "device_name": _probes.device_name(device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "quick": args.quick,
        "sizes": sizes,
        "reps": reps,
        "temperature": args.temperature,
        "prompt": args.prompt,
        "seeds": "none (panel draws one per request: ignored by greedy)",
        "order": "per size: 1 unrecorded raw warm-up, then rounds in which every other path runs next "
        "to its own raw run (raw first in even rounds, second and in reverse path order in odd "
        "ones); ratios are medians of each run against its neighbouring raw run",
        "load_avg_start": os.getloadavg(),  # other people's engines share a CPU machine
        "modes": {},
        "alternatives": {} if alternatives else None,
    }
    for i, mode in enumerate(modes):
        spec = {
            "mode": mode,
            "device": device,
            "engine": {**engine, "enforce_eager": mode == "eager"},
            "sizes": sizes,
            "reps": reps,
            "temperature": args.temperature,
            "prompt": args.prompt,
            "typing_s": args.typing_s,
            "startup_tokens": preset["startup_tokens"],
            "timeout_s": args.timeout,
            "restart": args.restart and i == 0,
            "server": alternatives,
            "paths": args.paths.split(",") if args.paths else None,
        }
        log(f"mode {mode}: fresh process")
        result["modes"][mode] = run_mode(spec, env, timeout=args.timeout * 3)
        info = result["modes"][mode]
        result.setdefault("vllm", (info.get("versions") or {}).get("vllm"))
        result.setdefault("torch", (info.get("versions") or {}).get("torch"))
        result["engine_config"] = result.get("engine_config") or info.get("engine")
        save(result, args.out, t0)  # a run cut short still leaves what it measured
    if alternatives and args.transformers:
        run_alternatives(result, modes, sizes, reps, args, env)
    out = save(result, args.out, t0)
    print("\n".join(_verdicts.table(result)))
    print(f"wrote {out}")
    return 0


def save(result: dict[str, Any], path: str, t0: float) -> Path:
    result["wall_s"] = time.time() - t0
    result["load_avg_end"] = os.getloadavg()
    result["targets"] = _verdicts.verdicts(result)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    return out


def run_alternatives(
    result: dict[str, Any],
    modes: list[str],
    sizes: list[dict[str, int]],
    reps: int,
    args: argparse.Namespace,
    env: dict[str, str],
) -> None:
    """transformers' TextIteratorStreamer (``vllm serve`` runs inside each mode's worker)."""
    model_path = next(
        (
            ((result["modes"][m].get("engine") or {}).get("engine_args") or {}).get("model")
            for m in modes
        ),
        None,
    )
    if model_path is None:
        result["alternatives"]["transformers"] = {"error": "no engine settings from the worker"}
        return
    log("transformers TextIteratorStreamer")
    spec = {
        "device": result["device"],
        "model_path": model_path,
        "prompt": args.prompt,
        "tokens": sizes[0]["tokens"],
        "reps": min(reps, 2),
    }
    result["alternatives"]["transformers"] = _alternatives.run_transformers(
        spec, args.timeout, log, env
    )


if __name__ == "__main__":
    sys.exit(main())
