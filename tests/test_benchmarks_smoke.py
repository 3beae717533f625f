"""The benchmark entry point works end to end with tiny sizes (it checks the script, not speed).

Runs ``python -m benchmarks.stream --quick``-like sizes in a subprocess, as CI or the GPU machine
would, and checks the JSON has every section with numbers > 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.stream",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quick",
        "--sizes",
        "1x8,8x4,64x2",
        "--reps",
        "2",
        "--typing-s",
        "1",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "-- targets:" in done.stdout, done.stdout[-3000:]
    return json.loads(out.read_text())


def test_header_names_the_machine_versions_and_sizes(result):
    assert result["device"] == "cpu" and result["device_name"]
    assert result["vllm"] and result["torch"] and result["date"].endswith("+00:00")
    assert [s["streams"] for s in result["sizes"]] == [1, 8, 64]
    # vstream's default engine: an explicit KV budget, no share of memory
    assert result["engine_config"]["engine_args"]["kv_cache_memory_bytes"] > 0
    assert "gpu_memory_utilization" not in result["engine_config"]["engine_args"]


def test_every_path_has_positive_numbers_at_every_size(result):
    mode = result["modes"]["eager"]
    assert mode["errors"] == []
    paths = mode["paths"]
    expected = {
        "raw": ["1", "8", "64"],
        "api": ["1", "8", "64"],
        "api_threads": ["8", "64"],
        "magic": ["1", "8"],
        "panel": ["1", "8"],  # the panel really ran (its worker turns any failure into a reason)
    }
    assert paths.get("panel") is not None, paths.get("panel_reason")
    for path, sizes in expected.items():
        assert sorted(paths[path], key=int) == sizes, path
        for n in sizes:
            s = paths[path][n]
            assert s["tokens_ok"], (path, n)
            for key in ("agg_tok_s", "ttft_ms_p50", "ttft_ms_p95", "e2e_s", "cpu_us_per_token"):
                assert s[key] > 0, (path, n, key)
            if path != "raw":  # paired with the raw run next to it, CPU time included
                assert all(r["raw_cpu_us_per_token"] > 0 for r in s["runs"]), (path, n)
            if path in ("magic", "panel"):
                assert s["final_text_matches"] and s["updates_max"] > 0, (path, n)
    assert paths["raw"]["1"]["decode_tok_s"] > 0
    # vstream's paths beside raw streams in one batch: every stream got every token, and the
    # same greedy text as its raw neighbours.
    assert sorted(paths["mixed"], key=int) == ["1", "8", "64"]
    assert sorted(paths["mixed_magic"], key=int) == ["1", "8"]
    for name in ("mixed", "mixed_magic", "mixed_panel"):
        for n, mixed in (paths[name] or {}).items():
            assert mixed["tokens_ok"] and mixed["same_text"], (name, n)
            assert mixed["decode_ratio"] > 0 and mixed["raw_agg_tok_s"] > 0, (name, n)


def test_startup_memory_and_verdicts_are_reported(result):
    mode = result["modes"]["eager"]
    start = mode["startup"]
    assert start["load_ext_to_first_token_s"] > start["engine_ready_s"] > 0
    assert start["wait_after_typing_s"] > 0
    labels = [p["label"] for p in mode["memory"]]
    assert labels == [
        "before start",
        "ready",
        "after benchmarks",
        "after shutdown",
        "after restart",
        "after final shutdown",
    ]
    assert (
        mode["memory"][1]["engine_rss_gib"] > 0 and mode["memory"][3]["engine_processes_alive"] == 0
    )
    assert mode["restart_ready_s"] > 0
    # every target was judged on a measurement: a pass or a miss, each with what was measured
    assert result["targets"] and all(t["pass"] in (True, False) and t["detail"] for t in result["targets"])


def test_report_turns_the_result_into_markdown(result, tmp_path):
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(result))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench:start -->\nold\n<!-- bench:end -->\ntail\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    cmd = [sys.executable, "-m", "benchmarks.report", str(path), "--write", str(readme)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    text = readme.read_text()
    assert "old" not in text and text.endswith("<!-- bench:end -->\ntail\n")
    assert "| cpu | " in text and "64x2" in text
