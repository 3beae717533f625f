"""The notebooks under notebooks/ run top to bottom on a real kernel, and their data holds up.

Each notebook runs in a fresh kernel (nbclient), which starts its own engine, exactly as a
person's Run All would. After the last cell the test runs one more cell in the same kernel that
prints, as JSON, the variables behind the notebook's prints and plots (``PROBES``), and checks
them: the number of points, tokens and tokens/s > 0, what each demonstration claims.

The concurrency notebook's figure is saved as concurrency.png in tests/artifacts/, or in docs/
(the README shows it) with VSTREAM_UPDATE_DOCS=1 (``make docs-images``), as the browser tests do
for panel.png and quickstart.png. Execution times go to stdout and to
tests/artifacts/notebook-times.json (CI budget).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
DOCS = ROOT / "docs"
ARTIFACTS = ROOT / "tests" / "artifacts"
UPDATE_DOCS = "VSTREAM_UPDATE_DOCS"

# Adding a notebook means adding it here (and, ideally, a probe and a check below).
EXPECTED = (
    "01_quickstart.ipynb",
    "02_sampling.ipynb",
    "03_concurrency.ipynb",
    "04_chat.ipynb",
    "05_output_kinds.ipynb",
    "06_classroom.ipynb",
)
# These start an in-process engine and print what it runs on (vstream.engine().info.describe()).
IN_PROCESS = EXPECTED[:5]

MARK = "__VSTREAM_NOTEBOOK_DATA__"

# A Python expression, evaluated in the executed notebook's kernel, that gathers its data.
PROBES: dict[str, str] = {
    "01_quickstart.ipynb": "{'results': results, 'asyncio_run_error': asyncio_run_error}",
    "02_sampling.ipynb": (
        "{'distributions': distributions, 'side_by_side': side_by_side, 'top_mass': float(p.sum()),"
        " 'coloured': {'tokens': coloured.metrics.tokens, 'logprobs': len(coloured.logprobs)}}"
    ),
    "03_concurrency.ipynb": "{'results': results, 'max_tokens': MAX_TOKENS}",
    "04_chat.ipynb": (
        "{'plain': plain.text, 'chat': chat.text, 'question': QUESTION, 'as_chat': as_chat.text,"
        " 'history': history, 'second_prompt': second_prompt.text, 'stops': stops,"
        " 'first_line': {'text': first_line.text, 'finish_reason': first_line.finish_reason,"
        " 'stop_reason': first_line.stop_reason}}"
    ),
    "05_output_kinds.ipynb": (
        "{'kinds': kinds, 'cancel': cancel_result, 'raw_abort': raw_abort, 'chosen_id': chosen.request_id}"
    ),
    "06_classroom.ipynb": (
        "{'answer': answer.text, 'panel': [s.metrics.tokens for s in panel.streams],"
        " 'streams': [s.metrics.tokens for s in streams]}"
    ),
}


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


# --- static checks (no kernel: they run in every tier) ------------------------------------------


def test_every_notebook_is_in_the_expected_list() -> None:
    found = tuple(path.name for path in _notebooks())
    assert found == EXPECTED, (
        "notebooks/ and EXPECTED in tests/kernel/test_notebooks.py differ: a new notebook must be "
        f"listed (and given a probe) so that it is executed and checked; found {found}"
    )


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in the metadata"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    if path.name in IN_PROCESS:
        assert any("info.describe()" in cell.source for cell in nb.cells if cell.cell_type == "code")


# --- execution ------------------------------------------------------------------------------------


def _run(path: Path, probe: str | None, extra: list[str]) -> tuple[dict[str, Any] | None, dict[str, float], Any]:
    """Execute every cell in a fresh kernel; then ``extra`` cells and the probe in the same one."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    times: dict[str, float] = {}
    data = None
    started = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t = time.perf_counter()
            client.execute_cell(cell, index)
            if "host.wait_ready()" in cell.source:
                times["engine_wait_s"] = time.perf_counter() - t
        times["cells_s"] = time.perf_counter() - started
        for source in extra:
            nb.cells.append(new_code_cell(source))  # nbclient stores each result by its index
            client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
        if probe is not None:
            cell = new_code_cell(f"import json as _json\nprint({MARK!r} + _json.dumps({probe}, default=str))")
            nb.cells.append(cell)
            client.execute_cell(cell, len(nb.cells) - 1)
            printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            data = json.loads(printed.split(MARK, 1)[1])
    times["total_s"] = time.perf_counter() - started
    return data, times, nb


def _concurrency_figure() -> Path:
    """Where 03_concurrency's figure is saved: docs/ with $VSTREAM_UPDATE_DOCS set, else artifacts."""
    update = os.environ.get(UPDATE_DOCS, "").strip().lower() not in ("", "0", "false", "no")
    return (DOCS if update else ARTIFACTS) / "concurrency.png"


def _record_time(name: str, times: dict[str, float]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "notebook-times.json"
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        recorded = {}
    recorded[name] = {k: round(v, 1) for k, v in times.items()}
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True))


@pytest.mark.engine
@pytest.mark.kernel
@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = []
    if path.name == "03_concurrency.ipynb":
        figure = _concurrency_figure()
        figure.parent.mkdir(parents=True, exist_ok=True)
        extra.append(f"fig.savefig({str(figure)!r}, dpi=100, bbox_inches='tight')")
    data, times, nb = _run(path, PROBES.get(path.name), extra)

    with capsys.disabled():
        print(
            f"\n[notebook time] {path.name}: {times['total_s']:.1f} s "
            f"(engine start wait {times.get('engine_wait_s', 0):.1f} s)"
        )
    _record_time(path.name, times)

    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            assert "Traceback" not in text, f"{path.name} cell {index} printed a traceback:\n{text}"

    check = CHECKS.get(path.name)
    if check is not None:
        assert data is not None
        check(data)


# --- what each notebook's data must show ----------------------------------------------------------


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def check_quickstart(data: dict[str, Any]) -> None:
    assert "cannot be called from a running event loop" in (data["asyncio_run_error"] or "")
    rows = data["results"]
    assert [row["method"] for row in rows] == ["%%vstream", "async for", "async for", "async for", "for", "panel"]
    assert [row["request_id"] for row in rows[1:4]] == [f"stream-example-{i}" for i in (1, 2, 3)]
    for row in rows:
        assert row["text"].strip() and row["finish_reason"] in ("stop", "length"), row
        assert 0 < row["tokens"] <= 100, row
        assert _positive(row["tokens_per_s"]) and _positive(row["ttft_s"]), row


def check_sampling(data: dict[str, Any]) -> None:
    assert data["coloured"]["tokens"] > 0 and data["coloured"]["logprobs"] == data["coloured"]["tokens"]
    assert 0 < data["top_mass"] <= 1.0 + 1e-6
    by_name = {d["name"].splitlines()[0]: d for d in data["distributions"]}
    assert len(by_name) == 6
    for d in by_name.values():
        assert len(d["tokens"]) == len(d["before"]) == len(d["after"]) == 20, d["name"]
        assert math.isclose(sum(d["before"]), 1.0, abs_tol=1e-6)
        assert math.isclose(sum(d["after"]), 1.0, abs_tol=1e-6)
        assert d["before"] == sorted(d["before"], reverse=True)
        assert 1 <= d["kept"] <= 20
    assert by_name["top-k 5"]["kept"] == 5
    assert by_name["temperature 0.5"]["kept"] == by_name["temperature 1.5"]["kept"] == 20
    top = by_name["top-k 5"]["before"][0]
    assert by_name["temperature 0.5"]["after"][0] > top > by_name["temperature 1.5"]["after"][0]
    for name in ("top-k 5", "top-p 0.5", "min-p 0.1"):
        after = by_name[name]["after"]  # filters keep the most likely tokens and drop the rest
        assert all(q > 0 for q in after[: by_name[name]["kept"]])
        assert all(q == 0 for q in after[by_name[name]["kept"] :])
    columns = data["side_by_side"]
    assert len(columns) == 4
    assert columns[1]["settings"]["temperature"] == 0.0  # the greedy preset
    for column in columns:
        assert column["text"].strip() and column["tokens"] > 0 and _positive(column["tokens_per_s"])


def check_concurrency(data: dict[str, Any]) -> None:
    rows = data["results"]
    assert [row["streams"] for row in rows] == [1, 2, 4, 8, 16]
    for row in rows:
        assert row["tokens"] == row["streams"] * data["max_tokens"], row  # ignore_eos: all tokens
        assert _positive(row["tokens_per_s"]) and _positive(row["ttft_median_s"]), row
        assert _positive(row["stream_tokens_per_s"]), row
    # Continuous batching: 16 streams at once produce more tokens per second than one.
    assert rows[-1]["tokens_per_s"] > rows[0]["tokens_per_s"], rows
    assert _concurrency_figure().stat().st_size > 10_000


def check_chat(data: dict[str, Any]) -> None:
    assert data["plain"] == data["question"]
    assert data["question"] in data["chat"] and len(data["chat"]) > len(data["plain"])
    assert "Paris" in data["as_chat"]
    assert [m["role"] for m in data["history"]] == ["user", "assistant", "user", "assistant"]
    assert all(m["content"].strip() for m in data["history"])
    assert data["history"][0]["content"] in data["second_prompt"]
    assert data["history"][1]["content"] in data["second_prompt"]
    stops = {s["name"]: s for s in data["stops"]}
    full, cut, short = stops["no stop"], stops['stop=[" is"]'], stops["max_tokens=3"]
    assert full["finish_reason"] == "stop" and full["stop_reason"] is None  # end of turn
    if " is" in full["text"]:
        assert cut["finish_reason"] == "stop" and cut["stop_reason"] == " is"
        assert full["text"].startswith(cut["text"]) and not cut["text"].endswith(" is")
    assert short["finish_reason"] == "length" and short["tokens"] == 3
    line = data["first_line"]
    assert line["text"].strip() and "\n" not in line["text"]
    assert line["finish_reason"] == "stop" and line["stop_reason"] == "\n"


def check_output_kinds(data: dict[str, Any]) -> None:
    kinds = {k["kind"]: k for k in data["kinds"]}
    assert set(kinds) == {"DELTA", "CUMULATIVE", "FINAL_ONLY"}
    assert kinds["DELTA"]["outputs"] > 1 and kinds["CUMULATIVE"]["outputs"] > 1
    assert kinds["FINAL_ONLY"]["outputs"] == 1
    assert len({k["final_text"] for k in kinds.values()}) == 1  # greedy: the same text three ways
    assert kinds["CUMULATIVE"]["characters_sent"] > kinds["DELTA"]["characters_sent"]
    assert kinds["DELTA"]["characters_sent"] == len(kinds["DELTA"]["final_text"])
    assert kinds["FINAL_ONLY"]["first_output_ms"] >= kinds["DELTA"]["first_output_ms"]
    assert data["chosen_id"] == "my-request-1"
    cancel = data["cancel"]
    assert cancel["during"] == 1 and cancel["after"] == 0, cancel
    assert cancel["finish_reason"] == "cancelled" and 0 < cancel["tokens"] < 2000, cancel
    raw = data["raw_abort"]
    assert raw["finished"] is True and raw["finish_reason"] == "abort" and raw["tokens"] < 2000


def check_classroom(data: dict[str, Any]) -> None:
    assert "Paris" in data["answer"]
    assert len(data["panel"]) == 2 and all(tokens > 0 for tokens in data["panel"])
    assert data["streams"] == [20] * 10  # ignore_eos: every stream gets all its tokens


CHECKS = {
    "01_quickstart.ipynb": check_quickstart,
    "02_sampling.ipynb": check_sampling,
    "03_concurrency.ipynb": check_concurrency,
    "04_chat.ipynb": check_chat,
    "05_output_kinds.ipynb": check_output_kinds,
    "06_classroom.ipynb": check_classroom,
}
