"""The benchmark runs end to end on tiny sizes (it checks the script and its records, not speed).

``python -m benchmarks.stream`` in a subprocess, as the GPU machine runs it, then the report over
its file: every path ran every round (a failing path is an error in its cell, which fails here),
every stream got every token, the UI paths painted exactly the Stream's text, and the typed
records read back from the JSON.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.records import Result, load

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 1  # a smoke test of the script and its records: one pair per cell
SIZES = {(1, 32), (8, 16)}  # enough tokens that every path paints more than once


def _env() -> dict[str, str]:
    return dict(os.environ, VSTREAM_DEVICE="cpu", PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Result:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    sizes = ",".join(f"{n}x{t}" for n, t in sorted(SIZES))
    cmd = [sys.executable, "-m", "benchmarks.stream", "--out", str(out), "--sizes", sizes, "--rounds", str(ROUNDS)]
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return load(out)


def test_the_header_names_the_machine_versions_and_engine(result):
    assert result.device == "cpu" and "cores" in result.device_name
    assert result.versions["vllm"] and result.versions["torch"] and result.date.endswith("+00:00")
    # vstream's default engine: an explicit KV budget, no share of memory; raw gets the same arguments
    assert result.engine["engine_args"]["kv_cache_memory_bytes"] > 0
    assert "gpu_memory_utilization" not in result.engine["engine_args"]


def test_every_path_ran_every_round_and_got_every_token(result):
    cells = {(c.path, c.streams, c.tokens): c for c in result.cells}
    assert set(cells) == {(p, n, t) for p in ("api", "magic", "panel") for n, t in SIZES}
    for key, cell in cells.items():
        assert cell.errors == [], key
        assert len(cell.pairs) == ROUNDS and len(cell.beside) == ROUNDS, key
        for raw, run in cell.pairs:
            assert (raw.path, run.path) == ("raw", cell.path)
            assert raw.tokens == run.tokens == cell.tokens, key  # every stream got every token
            assert raw.agg_tok_s > 0 and run.agg_tok_s > 0 and run.cpu_us_per_token > 0, key
        for one_batch in cell.beside:
            assert one_batch.same_text and one_batch.decode_ratio > 0, key


def test_the_ui_paths_painted_exactly_the_streams_text_in_few_messages(result):
    for cell in result.cells:
        if cell.path == "api":
            continue
        for _raw, run in cell.pairs:
            assert run.final_matches is True, cell.key
            assert 1 <= run.paints_per_stream <= cell.tokens, cell.key  # never more than one per token
            assert run.bytes_per_stream > 0, cell.key
            # the painting thread's CPU per repaint, early and late in the answer (recording comm)
            assert (run.paint_us_early or 0) > 0 and (run.paint_us_late or 0) > 0, cell.key


def test_the_report_turns_the_records_into_the_readmes_tables(result, tmp_path):
    path = tmp_path / "cpu-smoke.json"
    from benchmarks.records import save

    save(result, path)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench:start -->\nold\n<!-- bench:end -->\ntail\n")
    cmd = [sys.executable, "-m", "benchmarks.report", str(path), "--write", str(readme)]
    subprocess.run(cmd, cwd=ROOT, env=_env(), check=True, capture_output=True, timeout=60)
    text = readme.read_text()
    assert "old" not in text and text.endswith("<!-- bench:end -->\ntail\n")
    rows = [line for line in text.splitlines() if line.startswith("| `cpu-smoke`")]
    assert len(rows) == len(result.cells)
    assert all(("| pass" in row or "miss" in row) for row in rows if "| api |" in row)
