"""notebooks/01_quickstart.ipynb in a real JupyterLab + Chromium: Run All, and the panel streams.

The notebook is copied into the lab's root, opened, and run with Run ▸ Run All Cells, as a
person would. Its kernel starts its own engine (~30-60 s on 2 cores). A recorder installed
before Lab loads notes every distinct text the panel's output shows, so the test can tell a
stream that grew in the page from text that appeared at once. The page is saved as
quickstart.png in tests/artifacts/ (docs/ with VSTREAM_UPDATE_DOCS=1: ``make docs-images``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from playwright.sync_api import expect

from .lab import LabPage, LabServer

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_quickstart.ipynb"
RUN_ALL_MS = 480_000  # engine start in the lab's kernel plus ~600 streamed tokens on 2 cores

# Installed before any page script: records each distinct text of the panel's first column.
RECORD_JS = """
window.__vstreamStates = [];
const record = () => {
  const pre = document.querySelector('.vstream-panel .vstream-output .vstream-text');
  if (!pre) return;
  const states = window.__vstreamStates;
  const text = pre.textContent;
  if (states.length === 0 || states[states.length - 1] !== text) states.push(text);
};
document.addEventListener('DOMContentLoaded', () => {
  new MutationObserver(record).observe(document.body,
    {subtree: true, childList: true, characterData: true});
});
"""


def test_quickstart_runs_in_lab_and_the_panel_streams(
    lab: LabServer, lab_page: LabPage, docs_images: Path
) -> None:
    page = lab_page.page
    shutil.copy(NOTEBOOK, lab.root_dir / NOTEBOOK.name)
    page.add_init_script(RECORD_JS)
    lab_page.open_notebook(NOTEBOOK.name)
    lab_page.run_all(timeout_ms=RUN_ALL_MS)

    notebook = lab_page.notebook
    expect(notebook).to_contain_text("asyncio.run() cannot be called from a running event loop")
    expect(notebook).to_contain_text(re.compile(r"ran on: .+ on .+"))
    # The magic's card: streamed text and its status line.
    expect(notebook.locator(".vstream-card .vstream-status").first).to_contain_text("finish:")

    panel = notebook.locator(".vstream-panel").first
    expect(panel.locator(".vstream-engine-status")).to_contain_text("engine ready")
    status = panel.locator(".vstream-output .vstream-status").first
    expect(status).to_contain_text(re.compile(r"\d+ tokens · [\d.]+ tok/s · finish: (stop|length)"))
    final = panel.locator(".vstream-output .vstream-text").first.inner_text()
    assert final.strip(), "the panel shows no text"

    states = page.evaluate("window.__vstreamStates")
    intermediate = [s for s in states if s.strip() and s.rstrip("▌") != final.rstrip("▌")]
    print(f"\npanel: {len(states)} distinct states, final {len(final)} chars: {status.inner_text()}")
    assert len(intermediate) >= 3, f"the panel's text did not grow in the page: {states}"
    assert all(final.startswith(s.rstrip("▌")) for s in intermediate), states

    page.set_viewport_size({"width": 1400, "height": 1100})
    # The panel's cell at the top of the view: its code, then the panel with the streamed text.
    lab_page.cell(_panel_cell_index(lab_page)).evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)  # let Lab finish laying out the scrolled view
    page.screenshot(path=str(docs_images / "quickstart.png"))


def _panel_cell_index(lab_page: LabPage) -> int:
    """The index of the cell whose output holds the panel (to bring its code into view too)."""
    index = lab_page.notebook.evaluate(
        """(nb) => Array.from(nb.querySelectorAll('.jp-Cell'))
                     .findIndex(c => c.querySelector('.vstream-panel') !== null)"""
    )
    assert index >= 0, "no panel in the notebook"
    return int(index)
