"""vstream.Panel in a real JupyterLab + Chromium: what a person sees and does.

Each test's kernel starts its own engine (~30-60 s on 2 cores), so the first waits are long.
The panel's screenshot (panel.png) goes to tests/artifacts/, or to docs/ for the README with
VSTREAM_UPDATE_DOCS=1 (``make docs-images``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import expect

from .lab import LabPage, LabServer

ENGINE_MS = 240_000  # engine start inside the browser's kernel, plus the first request

SETUP = """\
import vstream
vstream.engine()
panel = vstream.Panel({prompt!r}, {options})
panel"""

# Records every distinct text the first output shows, from inside the page (no polling gaps).
RECORD_JS = """
() => {
  window.__vstreamStates = [];
  const out = document.querySelector('.vstream-output');
  const record = () => {
    const pre = out.querySelector('.vstream-text');
    const text = pre ? pre.textContent : '';
    const states = window.__vstreamStates;
    if (states.length === 0 || states[states.length - 1] !== text) states.push(text);
  };
  new MutationObserver(record).observe(out, {subtree: true, childList: true, characterData: true});
}
"""


def _open_panel(
    lab: LabServer, lab_page: LabPage, name: str, prompt: str, options: str, extra: list[str]
) -> object:
    nb = lab.write_notebook(name, [SETUP.format(prompt=prompt, options=options), *extra])
    lab_page.open_notebook(nb.name)
    lab_page.run_current_cell(0)
    panel = lab_page.cell(0).locator(".vstream-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".vstream-engine-status")).to_contain_text(
        "engine ready", timeout=ENGINE_MS
    )
    return panel


def _status(panel: object) -> object:
    return panel.locator(".vstream-output .vstream-status").first  # type: ignore[attr-defined]


def test_panel_streams_stops_exports_and_keeps_the_kernel_free(
    lab: LabServer, lab_page: LabPage, docs_images: Path
) -> None:
    page = lab_page.page
    panel = _open_panel(
        lab, lab_page, "panel.ipynb", "", "chat=True, max_tokens=120",
        ["import time\ntime.sleep(3)\nprint('slept')", "print(6 * 7)"],
    )  # fmt: skip

    # 1. Type a prompt, Generate: the text grows through several states and ends with metrics.
    panel.locator(".vstream-prompt textarea").fill(
        "Write a short poem about a lighthouse by the sea."
    )
    page.evaluate(RECORD_JS)
    t0 = time.monotonic()
    panel.locator(".vstream-generate").click()
    expect(_status(panel)).to_contain_text("finish:", timeout=ENGINE_MS)
    took = time.monotonic() - t0
    status = _status(panel).inner_text()
    states = page.evaluate("window.__vstreamStates")
    final = panel.locator(".vstream-output .vstream-text").first.inner_text()
    intermediate = [s for s in states if s and s != final]
    print(f"\nfirst generation: {took:.1f} s, {len(states)} distinct states, status: {status}")
    assert len(intermediate) >= 3, states
    assert all(final.startswith(s.rstrip("▌")) for s in intermediate)  # it grew, never rewrote
    assert re.search(r"TTFT \d+ ms · \d+ tokens · [\d.]+ tok/s · finish: (stop|length)", status)
    assert "You" in panel.locator(".vstream-history-view").inner_text()
    expect(panel.locator(".vstream-generate")).to_be_enabled()
    page.set_viewport_size({"width": 1400, "height": 1500})  # room for the whole panel
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(docs_images / "panel.png"))
    page.set_viewport_size({"width": 1400, "height": 900})

    # 2. A long generation: a cell that blocks for 3 s does not freeze it; another cell runs
    #    while it streams; Stop ends it and keeps the text.
    panel.locator(".vstream-ctl-max-tokens input").fill("2000")
    panel.locator(".vstream-ctl-max-tokens input").press("Enter")
    # A sampled story can end by itself before the steps below are done (seen: 120 tokens).
    panel.locator(".vstream-ctl-ignore-eos input").check()
    panel.locator(".vstream-prompt textarea").fill(
        "Tell me a very long story about a dragon and a knight."
    )
    panel.locator(".vstream-generate").click()
    expect(_status(panel)).to_contain_text(
        re.compile(r"[1-9]\d* tokens · .*streaming"), timeout=60_000
    )
    lab_page.select_cell(1)
    page.keyboard.press("Shift+Enter")  # time.sleep(3) in the kernel's main thread
    time.sleep(0.5)
    before = len(panel.locator(".vstream-output .vstream-text").first.inner_text())
    time.sleep(1.5)
    after = len(panel.locator(".vstream-output .vstream-text").first.inner_text())
    assert after > before, "the panel froze while a cell blocked the kernel"
    expect(lab_page.cell(1).locator(".jp-OutputArea")).to_contain_text("slept", timeout=30_000)
    lab_page.select_cell(2)
    page.keyboard.press("Shift+Enter")
    expect(lab_page.cell(2).locator(".jp-OutputArea")).to_contain_text("42", timeout=10_000)
    assert "streaming" in _status(panel).inner_text()  # print(6*7) ran while the panel streamed
    partial = panel.locator(".vstream-output .vstream-text").first.inner_text()
    panel.locator(".vstream-stop").click()
    expect(_status(panel)).to_contain_text("finish: cancelled", timeout=10_000)
    kept = panel.locator(".vstream-output .vstream-text").first.inner_text()
    assert kept.startswith(partial.rstrip("▌")) and len(kept) >= len(partial.rstrip("▌"))
    assert int(re.search(r"(\d+) tokens", _status(panel).inner_text()).group(1)) < 2000
    expect(panel.locator(".vstream-generate")).to_be_enabled()
    expect(panel.locator(".vstream-stop")).to_be_disabled()

    # 3. Drag the temperature slider to its left end: the export shows temperature 0.
    slider = panel.locator(".vstream-ctl-temperature input[type=range]")
    # The chat above it is as long as the sampled answers: the slider can sit below the window,
    # where a mouse drag lands on nothing (seen once in CI).
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    thumb_x = box["x"] + box["width"] * 0.8 / 2  # temperature 0.8 on a 0..2 track
    page.mouse.move(thumb_x, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 40, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    expect(panel.locator(".vstream-ctl-temperature .vstream-readout")).to_have_text("0.00")
    panel.locator(".vstream-export").click()
    code = panel.locator(".vstream-code textarea")
    expect(code).to_have_value(
        re.compile(r"^%%vstream --chat --temperature 0 --top-p 0\.95 --max-tokens 2000 ")
    )


def test_markup_in_chat_prompts_shows_literally_and_runs_nothing(
    lab: LabServer, lab_page: LabPage
) -> None:
    page = lab_page.page
    panel = _open_panel(
        lab, lab_page, "inject.ipynb", "", "chat=True, temperature=0.0, max_tokens=16", []
    )
    title = page.title()
    payloads = [
        "<img src=x onerror=\"document.title='pwned'\">",
        "<script>document.title='pwned2'</script>",
    ]
    history = panel.locator(".vstream-history-view")
    for payload in payloads:
        panel.locator(".vstream-prompt textarea").fill(payload)
        panel.locator(".vstream-generate").click()
        # The turn is in the history once its request starts. (Not "Generate is disabled": a
        # 16-token answer can start and end between two of the locator's polls, 500 ms apart;
        # a fresh-clone run failed so.)
        expect(history).to_contain_text(payload, timeout=ENGINE_MS)
        expect(panel.locator(".vstream-generate")).to_be_enabled(timeout=ENGINE_MS)
    for payload in payloads:
        expect(history).to_contain_text(payload)
    time.sleep(0.5)  # an onerror handler would have fired by now
    assert page.title() == title and "pwned" not in page.title()
    assert panel.locator(".vstream-history-view img, .vstream-history-view script").count() == 0


# Records every distinct title of the first output's thinking block, from inside the page.
RECORD_THINKING_JS = """
() => {
  window.__vstreamThinking = [];
  const out = document.querySelector('.vstream-output');
  const record = () => {
    const block = out.querySelector('.vstream-thinking');
    const title = block ? (block.querySelector('summary') || block).textContent : '';
    const seen = window.__vstreamThinking;
    if (title && seen[seen.length - 1] !== title) seen.push(title);
  };
  new MutationObserver(record).observe(out, {subtree: true, childList: true, characterData: true});
}
"""


def test_a_reasoning_answer_shows_a_collapsible_thinking_block(
    lab: LabServer, lab_page: LabPage, artifacts: Path
) -> None:
    # The embedded model is no thinking model: a regex constraint makes it write a think block.
    options = (
        r"chat=True, reasoning=True, regex=r'<think>[a-z ]{8,60}</think>[A-Za-z ]{3,40}', "
        "temperature=0.7, seed=4, max_tokens=80"
    )
    panel = _open_panel(lab, lab_page, "thinking.ipynb", "Think about the sea, then name a colour.", options, [])
    lab_page.page.evaluate(RECORD_THINKING_JS)
    panel.locator(".vstream-generate").click()
    expect(_status(panel)).to_contain_text("finish:", timeout=ENGINE_MS)
    block = panel.locator(".vstream-output details.vstream-thinking").first
    expect(block.locator("summary")).to_contain_text(re.compile(r"Thought for \d+\.\d s \(\d+ tokens\)"))
    titles = lab_page.page.evaluate("window.__vstreamThinking")
    print(f"\nthinking block titles seen: {titles}")
    assert titles[0].startswith("Thinking…") and titles[-1].startswith("Thought for")
    reasoning = block.locator(".vstream-reasoning")
    expect(reasoning).to_be_hidden()  # collapsed once the answer started
    block.locator("summary").click()
    expect(reasoning).to_be_visible()
    assert re.fullmatch(r"[a-z ]{8,60}", reasoning.inner_text().strip())
    answer = panel.locator(".vstream-output .vstream-text").first.inner_text()
    assert "<think>" not in answer and answer.strip()
    panel.screenshot(path=str(artifacts / "panel-thinking.png"))
    panel.locator(".vstream-show-thinking input").uncheck()
    expect(panel.locator(".vstream-output .vstream-thinking-hidden")).to_contain_text("Thought for")
    expect(panel.locator(".vstream-output .vstream-reasoning")).to_have_count(0)


def test_compare_columns_presets_logprobs_rendered_prompt_and_clear_in_the_browser(
    lab: LabServer, lab_page: LabPage, artifacts: Path
) -> None:
    panel = _open_panel(lab, lab_page, "compare.ipynb", "The sea is", "max_tokens=12, ignore_eos=True", [])
    # Two columns from the columns menu; the second starts from the greedy preset, then creative.
    panel.locator(".vstream-column-count").select_option("2")
    expect(panel.locator(".vstream-column")).to_have_count(2)
    second = panel.locator(".vstream-column").nth(1)
    expect(second.locator(".vstream-preset-select")).to_have_value("greedy")
    second.locator(".vstream-preset-select").select_option("creative")
    expect(second.locator(".vstream-ctl-temperature .vstream-readout")).to_have_text("1.10")
    panel.locator(".vstream-logprob-view input").check()
    panel.locator(".vstream-generate").click()
    for column in (panel.locator(".vstream-column").nth(i) for i in range(2)):
        expect(column.locator(".vstream-status")).to_contain_text("12 tokens", timeout=ENGINE_MS)
        expect(column.locator(".vstream-status")).to_contain_text("finish: length")
        expect(column.locator(".vstream-token")).to_have_count(12)  # coloured, one span per token
    hover = second.locator(".vstream-token").first.get_attribute("title")
    assert hover and re.search(r"p = \d+\.\d%", hover) and "\n" in hover  # the alternatives, one a line
    expect(second.locator(".vstream-title")).to_have_text("creative")

    panel.locator(".vstream-show-prompt").click()
    expect(panel.locator(".vstream-rendered")).to_contain_text(re.compile(r"rendered prompt · \d+ tokens"))
    expect(panel.locator(".vstream-rendered")).to_contain_text("The sea is")
    panel.screenshot(path=str(artifacts / "panel-compare.png"))

    panel.locator(".vstream-clear").click()
    expect(panel.locator(".vstream-output .vstream-token")).to_have_count(0)
    expect(panel.locator(".vstream-output .vstream-status")).to_have_count(0)
