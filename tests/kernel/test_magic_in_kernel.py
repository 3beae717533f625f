"""%%vstream in a real Jupyter kernel (nbclient): saved outputs, interrupts, unload."""

from __future__ import annotations

import asyncio
import threading
import time

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

pytestmark = [pytest.mark.engine, pytest.mark.kernel]

CELLS = [
    "import vstream\nvstream.engine()",
    "%load_ext vstream",
    "%%vstream --seed 42 --max-tokens 40 --out first\nThe key to happiness is",
    "print(repr(first.text))",
    "%%vstream --max-tokens 1500 --ignore-eos --out long\nWrite a very long story about a lighthouse:",
    "import time\ntime.sleep(0.5)\n"
    "print('unfinished', vstream.engine().unfinished_requests(), long.finish_reason, len(long.token_ids))",
    "%%vstream -t 0 -m 20 --chat --out paris\nWhat is the capital of France?",
    "pids = vstream.engine().process_ids()\n%reload_ext vstream\n"
    "print('same engine after reload', vstream.engine().process_ids() == pids)",
    "%unload_ext vstream",
    "import psutil\nprint('alive after unload', [p for p in pids if psutil.pid_exists(p)], vstream.current().state)",
]


def _text(outputs):
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def test_notebook_runs_interrupt_aborts_in_engine_and_outputs_survive_saving(tmp_path):
    nb = new_notebook(cells=[new_code_cell(source) for source in CELLS])
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False)
    with client.setup_kernel():
        for index in range(4):
            client.execute_cell(nb.cells[index], index)

        # Interrupt the long generation once it is streaming, as the notebook's stop button does.
        def interrupt_when_streaming():
            time.sleep(6)
            asyncio.run(client.km.interrupt_kernel())

        timer = threading.Thread(target=interrupt_when_streaming)
        timer.start()
        started = time.monotonic()
        with pytest.raises(CellExecutionError) as info:
            client.execute_cell(nb.cells[4], 4)
        timer.join()
        assert "KeyboardInterrupt" in str(info.value)
        assert time.monotonic() - started < 60  # 1500 tokens would take a minute or more here

        for index in range(5, len(nb.cells)):
            client.execute_cell(nb.cells[index], index)

    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)

    first_text = eval(_text(saved.cells[3].outputs).strip())  # repr printed by the kernel
    assert first_text and first_text in _text(saved.cells[2].outputs)
    html = "".join(o["data"].get("text/html", "") for o in saved.cells[2].outputs if "data" in o)
    assert 'class="vstream-card"' in html and "finish: " in html

    after_interrupt = _text(saved.cells[5].outputs).split()
    assert after_interrupt[:3] == ["unfinished", "0", "cancelled"]
    assert 0 < int(after_interrupt[3]) < 1500
    partial = _text(saved.cells[4].outputs)
    assert "finish: cancelled" in partial

    assert "Paris" in _text(saved.cells[6].outputs)
    assert "same engine after reload True" in _text(saved.cells[7].outputs)
    assert "alive after unload [] stopped" in _text(saved.cells[9].outputs)
