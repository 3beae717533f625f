"""``%%vstream`` in a real JupyterLab + Chromium: the answer grows in a live view, then stays as a
static display (what a saved notebook, nbconvert and GitHub show)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from .lab import LabPage, LabServer

ENGINE_MS = 240_000

# Installed before any page script: each distinct text of the magic's live view, and whether the
# static card replaced it.
RECORD_JS = """
window.__vstreamLive = [];
const record = () => {
  const pre = document.querySelector('.vstream-stream-view .vstream-text');
  if (!pre) return;
  const states = window.__vstreamLive;
  const text = pre.textContent.replace(/▌$/, '');
  if (states.length === 0 || states[states.length - 1] !== text) states.push(text);
};
document.addEventListener('DOMContentLoaded', () => {
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
});
"""

CELLS = [
    "import vstream\nvstream.engine().wait_ready()\n%load_ext vstream",
    "%%vstream -t 0 -m 150 --ignore-eos --out story\nTell me a long story about a lighthouse keeper.",
    "print(len(story.text), story.finish_reason)",
]


def test_the_magic_streams_into_a_live_view_then_leaves_a_static_answer(
    lab: LabServer, lab_page: LabPage, artifacts: Path
) -> None:
    page = lab_page.page
    page.add_init_script(RECORD_JS)
    nb = lab.write_notebook("magic.ipynb", CELLS)
    lab_page.open_notebook(nb.name)
    lab_page.run_current_cell(0, timeout_ms=ENGINE_MS)
    lab_page.run_current_cell(1, timeout_ms=ENGINE_MS)
    lab_page.run_current_cell(2)

    output = lab_page.cell(1).locator(".jp-OutputArea")
    expect(output.locator(".vstream-card .vstream-status")).to_contain_text(re.compile(r"150 tokens .* finish: length"))
    expect(output.locator(".vstream-stream-view")).to_have_count(0)  # the live view made way
    # The card keeps an answer's first newline too (render.text_block gives the parser one to drop).
    final = output.locator(".vstream-card .vstream-text").evaluate("el => el.textContent")
    states = list(page.evaluate("window.__vstreamLive"))
    intermediate = [s for s in states if s and s != final]
    print(f"\nmagic: {len(states)} distinct live states, final {len(final)} chars")
    assert len(intermediate) >= 3, states
    assert all(final.startswith(s) for s in intermediate), states  # it grew, never rewrote
    expect(lab_page.cell(2).locator(".jp-OutputArea")).to_contain_text(re.compile(r"^\d+ length"))
    lab_page.cell(1).screenshot(path=str(artifacts / "magic.png"))
