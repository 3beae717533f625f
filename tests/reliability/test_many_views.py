"""Eight panels and eight magic cells streaming at once from the one engine: nothing mixed or lost."""

from __future__ import annotations

import threading

import pytest
from IPython.core.interactiveshell import InteractiveShell

from in_flight import InFlight
from vstream.panel import Panel
from vstream.testing import record_widget_messages

pytestmark = [pytest.mark.engine, pytest.mark.reliability]


def test_eight_panels_at_once(idle_host):
    # Each panel asks for its own length, so a delta that went to the wrong view shows as a wrong count.
    with record_widget_messages() as log:
        panels = [
            Panel(f"Panel {i}, tell me a story:", host=idle_host, max_tokens=10 + 3 * i, ignore_eos=True)
            for i in range(8)
        ]
        with InFlight(idle_host) as seen:
            for panel in panels:
                panel._handle_custom_msg({"action": "generate"}, [])  # the Generate button
            for panel in panels:
                panel.wait(300)
    for i, panel in enumerate(panels):
        (stream,) = panel.streams
        assert stream.finish_reason == "length" and len(stream.token_ids) == 10 + 3 * i
        sent = [m.content for m in log.of(panel.comm.comm_id) if m.content is not None]
        assert "".join(c["text"] for c in sent if c["type"] == "delta") == stream.text  # its own deltas only
        assert panel.results[0]["text"] == stream.text
        panel.close()
    assert seen.peak >= 4, seen.peak  # they really ran together (one at a time would be 1)
    assert idle_host.unfinished_requests() == 0


def test_eight_magic_cells_at_once(idle_host):
    shell = InteractiveShell.instance()
    if "vstream" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "vstream")
    errors = []

    def cell(i):
        try:
            shell.run_cell_magic("vstream", f"-m {10 + 3 * i} --ignore-eos --out many_{i}", f"Cell {i}, a story:")
        except Exception as exc:  # surfaced below with the cell's number
            errors.append((i, exc))

    # Cells run one at a time in a kernel; threads stand in for eight notebooks sharing the engine.
    threads = [threading.Thread(target=cell, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    streams = [shell.user_ns[f"many_{i}"] for i in range(8)]
    assert [len(s.token_ids) for s in streams] == [10 + 3 * i for i in range(8)]
    assert len({s.request_id for s in streams}) == 8
    assert all("".join(s.deltas) == s.text for s in streams)
    assert idle_host.unfinished_requests() == 0
