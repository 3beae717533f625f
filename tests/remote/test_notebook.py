"""notebooks/06_classroom.ipynb runs top to bottom in a real kernel, as CI and a student do."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = [pytest.mark.engine, pytest.mark.remote, pytest.mark.kernel]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "06_classroom.ipynb"


def _outputs_text(nb) -> str:
    return json.dumps([cell.get("outputs", []) for cell in nb.cells])


def test_the_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(
        not cell.get("outputs") and cell.get("execution_count") is None
        for cell in nb.cells
        if cell.cell_type == "code"
    )


def test_the_classroom_notebook_starts_its_server_streams_and_never_shows_the_key(
    monkeypatch, tmp_path
):
    """CI's path: no $VSTREAM_BASE_URL, so the notebook starts (and stops) its own `vllm serve`.

    The student's path ($VSTREAM_BASE_URL set) is test_kernels'; the key is set here so the
    test knows what must never appear in the saved notebook.
    """
    monkeypatch.delenv("VSTREAM_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    key = "sk-notebook-" + secrets.token_hex(12)
    monkeypatch.setenv("VSTREAM_API_KEY", key)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    saved = nbformat.writes(nb)
    assert key not in saved and "Bearer" not in saved
    text = _outputs_text(nb)
    assert "started a local vllm serve at http://127.0.0.1:" in text
    assert "connected to http://127.0.0.1:" in text and "remote" in text
    assert "The capital of France is Paris." in text
    assert (
        "sample 3" in text and text.count('class=\\"vstream-token\\"') >= 3 * 5
    )  # compare + logprobs
    assert "200 tokens from 10 streams" in text
    assert "local server stopped" in text
