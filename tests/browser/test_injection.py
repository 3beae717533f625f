"""Markup in prompts, system prompts, stop strings and generated text shows as text in JupyterLab.

The model repeats a prompt made of payloads (greedy, checked on this model), so the generated
text carries live-looking HTML too; nothing of it may become an element or run.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .lab import LabPage, LabServer

pytestmark = [pytest.mark.browser, pytest.mark.engine, pytest.mark.reliability]

IMG = "<img src=x onerror=\"document.title='pwned-img'\">"
SCRIPT = "<script>document.title='pwned-script'</script>"
SCRIPT_RE = r"(<script>document[.]title='pwned-script'</script>\n)+"
ENGINE_MS = 240_000

CELLS = [
    "import vstream\nvstream.engine()\n%load_ext vstream",
    # payloads in the prompt, the stop string and (repeated by the model) the generated text
    "%%vstream -t 0 -m 40 --ignore-eos --stop '<b>never</b>' --out a\n" + (IMG + "\n") * 6,
    # payloads in the system prompt and chat prompt; logprob view puts tokens into title attributes;
    # the regex makes the model write the payload itself, whatever its weights and dtype prefer
    f'%%vstream --system "{SCRIPT}" --logprobs 3 -t 0 -m 30 --regex "{SCRIPT_RE}" --out b\n' + (SCRIPT + "\n") * 6,
    "print(repr(a.text[:60]), repr(b.text[:60]))",
]


def test_markup_renders_as_text_and_runs_nothing(lab: LabServer, lab_page: LabPage, artifacts) -> None:
    page = lab_page.page
    nb = lab.write_notebook("injection.ipynb", CELLS)
    lab_page.open_notebook(nb.name)
    title = page.title()
    lab_page.run_all(timeout_ms=ENGINE_MS * 2)
    for index in (1, 2):
        expect(lab_page.cell(index).locator(".vstream-status")).to_contain_text("finish:", timeout=ENGINE_MS)
    outputs = page.locator(".jp-OutputArea")
    # the generated text shows the payloads literally ...
    generated = lab_page.cell(1).locator(".vstream-text").inner_text()
    assert "<img src=x onerror=" in generated
    tokens = lab_page.cell(2).locator(".vstream-logprobs").inner_text()
    assert "<script>" in tokens
    # ... and none of it became an element or ran
    assert outputs.locator("img").count() == 0
    assert outputs.locator("script").count() == 0
    assert outputs.locator("b").count() == 0
    assert "pwned" not in page.title() and page.title() == title
    hover = lab_page.cell(2).locator(".vstream-token").first.get_attribute("title")
    assert hover and "p =" in hover
    lab_page.screenshot(artifacts / "injection.png")
