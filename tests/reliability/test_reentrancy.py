"""Re-running cells and reloading the extension never starts a second engine."""

from __future__ import annotations

import psutil
import pytest
from IPython.core.interactiveshell import InteractiveShell

import vstream

pytestmark = [pytest.mark.engine, pytest.mark.reliability]


def _engine_processes():
    return sorted(
        p.pid for p in psutil.Process().children(recursive=True)
        if not any("resource_tracker" in part for part in p.cmdline())
    )


def test_panels_reload_ext_and_two_notebooks_of_calls_share_one_engine(host):
    shell = InteractiveShell.instance()
    before = _engine_processes()
    pids = host.process_ids()
    for _ in range(3):  # the cell that creates a panel, run three times
        shell.run_cell("import vstream\npanel = vstream.Panel()", store_history=False).raise_error()
    shell.run_line_magic("load_ext", "vstream")
    shell.run_cell("%reload_ext vstream", store_history=False).raise_error()
    shell.run_cell("%reload_ext vstream", store_history=False).raise_error()
    # "two notebooks' worth" of calls: the API, the magic and the engine() entry point, twice over
    for _ in range(2):
        shell.run_cell("%%vstream -m 3 --out r\nHello", store_history=False).raise_error()
        shell.run_cell("h = vstream.engine(); s = h.generate('Hi', max_tokens=3)", store_history=False).raise_error()
    assert vstream.engine() is host
    assert host.process_ids() == pids
    assert _engine_processes() == before
