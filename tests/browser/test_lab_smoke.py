"""Smoke test of the browser tier: JupyterLab runs a notebook and renders a widget."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import expect

from .lab import LabPage, LabServer


def test_lab_runs_notebook_and_renders_widget(
    lab: LabServer, lab_page: LabPage, artifacts: Path
) -> None:
    nb = lab.write_notebook(
        "smoke.ipynb",
        [
            "print(6*7)",
            "import ipywidgets as w\nw.IntSlider(value=3)",
        ],
    )

    t0 = time.monotonic()
    lab_page.open_notebook(nb.name)  # waits for "Python 3 (ipykernel) | Idle" in the status bar
    t_kernel = time.monotonic() - t0
    lab_page.run_all()
    t_run = time.monotonic() - t0 - t_kernel

    # print(6*7) -> 42 in the first cell's output.
    first_out = lab_page.cell(0).locator(".jp-OutputArea-output")
    expect(first_out).to_have_text(re.compile(r"^\s*42\s*$"))

    # The slider is rendered by the widget manager (not the "IntSlider(value=3)" text repr).
    slider = lab_page.cell(1).locator(".jp-OutputArea .widget-slider")
    expect(slider).to_be_visible()
    expect(lab_page.cell(1).locator(".jp-OutputArea .widget-readout")).to_have_text("3")
    assert "IntSlider(" not in lab_page.output_text(1)

    shot = lab_page.screenshot(artifacts / "lab-smoke.png")
    assert shot.stat().st_size > 10_000
    print(f"kernel idle after {t_kernel:.1f} s, run all took {t_run:.1f} s, screenshot {shot}")


def test_shift_enter_runs_the_selected_cell(lab: LabServer, lab_page: LabPage) -> None:
    nb = lab.write_notebook("shift_enter.ipynb", ["x = 20", "print(x + 1)"])
    lab_page.open_notebook(nb.name)

    lab_page.run_current_cell(0)  # Shift+Enter runs it and moves to the next cell
    assert lab_page.active_cell_index() == 1
    lab_page.run_current_cell()  # the active cell: print(x + 1) sees the kernel's x
    expect(lab_page.cell(1).locator(".jp-OutputArea-output")).to_have_text(
        re.compile(r"^\s*21\s*$")
    )
    assert lab_page.output_text(0).strip() == ""

    # Run All on cells that already show counts: the helper clears them first and waits for
    # the new run (not the old counts).
    lab_page.run_all()
    expect(lab_page.cell(1).locator(".jp-OutputArea-output")).to_have_text(
        re.compile(r"^\s*21\s*$")
    )
    assert lab_page.cell(1).locator(".jp-InputPrompt").inner_text().strip() == "[4]:"
