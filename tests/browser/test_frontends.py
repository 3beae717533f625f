"""vstream.Panel where notebooks run: Jupyter Notebook 7, Voilà, marimo as a notebook and as an
app (and JupyterLab for the selection and the reopened notebook), in Debian's headless Chromium.

Per front end one server, one page and one kernel with one default engine serve all its tests
(they run in this file's order: stream, stop, markup, reopen). What a person does happens in
the page (typing a prompt, Generate, Stop, dragging a selection); what the kernel knows is read
where the front end lets a cell run (Notebook 7), else from what the kernel sent (the status
line's finish reason). "Reopen" means what it can mean there:

- Notebook 7 / JupyterLab: saved with the widget state (Settings, Save Widget State
  Automatically, off by default in both), kernel shut down, page reloaded, nothing run again.
- Voilà: it never shows saved outputs; a reload runs the notebook again in a new kernel and
  the old kernel (with its engine) goes.
- marimo (``marimo edit``): a notebook file keeps code only; reloading the tab reconnects to
  the running session, which gives the widget its state back.
- marimo app (``marimo run``): a reload is a new session that runs the app again; sessions run
  in the server's process, so the new one finds the engine ready (no second engine).

The harness test (``Ticker``, tests/browser/fixtures/ticker.py) proves each front end renders an
anywidget that streams from a thread, without the engine.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from vstream.testing import shown_texts

from .frontends import (
    FrontendServer,
    MarimoPage,
    NotebookPage,
    VoilaPage,
    copy_fixtures,
    kernel_processes,
    marimo,
    notebook7,
    save_notebook,
    voila,
    write_marimo_app,
)
from .lab import UI_TIMEOUT_MS, LabPage, LabServer, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.kernel]  # and engine: every test but the harness

ENGINE_MS = 240_000  # the kernel's engine start on 2 cores, plus the first request
FRONTENDS = ["notebook7", "voila", "marimo", "marimo-app"]  # marimo-app: ``marimo run``

PROMPT = "Write a short poem about the sea."
MAX_TOKENS = 120  # 2.5-8 s at this CPU's 15-50 tok/s: time to drag a selection while it streams
PANEL = f"panel = vstream.Panel({PROMPT!r}, chat=True, temperature=0, max_tokens={MAX_TOKENS})"
ENGINE = "import vstream\nvstream.engine()"
CARD = ".vstream-panel-static"  # the static card beside the widget (Panel._ipython_display_)
KERNEL_CHECK = "print('kernel:', [s.finish_reason for s in panel.streams], vstream.engine().unfinished_requests())"

# Each payload bumps window.__xss if it ever runs.
IMG = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'
SCRIPT = "<script>window.__xss=(window.__xss||0)+1</script>"

# Records each distinct text of one column's output, from inside the page (no polling gaps).
RECORD_JS = """
(out) => {
  if (window.__vstreamObserver) window.__vstreamObserver.disconnect();
  const states = window.__vstreamStates = [];
  const record = () => {
    const pre = out.querySelector('.vstream-text');
    const text = pre ? pre.textContent.replace('▌', '') : '';
    if (states.length === 0 || states[states.length - 1] !== text) states.push(text);
  };
  window.__vstreamObserver = new MutationObserver(record);
  window.__vstreamObserver.observe(out, {subtree: true, childList: true, characterData: true});
}
"""

# The selection in the element's tree (marimo puts a widget in a shadow root, whose selection
# the document's getSelection does not show).
SELECTION_JS = """
(el) => {
  const root = el.getRootNode();
  const sel = root.getSelection ? root.getSelection() : document.getSelection();
  if (!sel || sel.rangeCount === 0) return {text: '', inside: false, connected: false};
  const range = sel.getRangeAt(0);
  return {text: sel.toString(), inside: el.contains(range.startContainer),
          connected: range.startContainer.isConnected};
}
"""


def _clean(text: str) -> str:
    return text.replace("▌", "")


@dataclass
class Shown:
    """A panel shown in a front end, its engine ready."""

    kind: str
    server: FrontendServer
    page: Any
    driver: Any  # NotebookPage | VoilaPage | MarimoPage
    name: str  # the notebook's file name

    @property
    def panel(self) -> Any:
        return self.page.locator(".vstream-panel").first

    @property
    def output(self) -> Any:
        return self.panel.locator(".vstream-output").first

    @property
    def text(self) -> Any:
        return self.output.locator(".vstream-text")

    @property
    def status(self) -> Any:
        return self.output.locator(".vstream-status")

    def wait_engine_ready(self) -> None:
        expect(self.panel.locator(".vstream-engine-status")).to_contain_text("engine ready", timeout=ENGINE_MS)

    def generate(self) -> None:
        # No pause after typing: Generate's message carries the settings it runs with (panel.js),
        # because ipywidgets' front end may still hold the typed text's state update back (Voila
        # once ran without a system prompt typed just before, when this clicked at once).
        button = self.panel.locator(".vstream-generate")
        button.click()
        try:
            expect(button).to_be_disabled(timeout=15_000)
        except AssertionError:
            # Once in three fresh-clone runs a click in `marimo run` started nothing for 60 s (the
            # stop test's, after typing; no error line). A person clicks again; the tests say so.
            print(f"\n{self.kind}: Generate's click started nothing in 15 s ({self.lines()}); clicking again")
            button.click()
            try:
                expect(button).to_be_disabled()
            except AssertionError as exc:
                raise AssertionError(f"Generate started nothing, twice; the panel showed {self.lines()}") from exc

    def lines(self) -> dict[str, list[str]]:
        """What the panel says about itself: its error line, the engine's status, the answer's."""
        return {
            cls: self.panel.locator(cls).all_inner_texts()
            for cls in (".vstream-error", ".vstream-engine-status", ".vstream-status")
        }

    def wait_finished(self, timeout_ms: int = ENGINE_MS) -> str:
        expect(self.status).to_contain_text("finish:", timeout=timeout_ms)
        expect(self.panel.locator(".vstream-generate")).to_be_enabled()
        return str(self.status.inner_text())

    def set_prompt(self, text: str) -> None:
        self.panel.locator(".vstream-prompt textarea").fill(text)

    def set_max_tokens(self, n: int) -> None:
        field = self.panel.locator(".vstream-ctl-max-tokens input").first
        field.fill(str(n))
        field.press("Enter")

    def set_checkbox(self, cls: str, on: bool) -> None:
        box = self.panel.locator(f"{cls} input").first
        box.check() if on else box.uncheck()

    def select_while_streaming(self) -> tuple[dict[str, Any], int, bool]:
        """Drag across the start of the answer once it has 15 characters, as a person selects
        text; return the selection, the answer's length then, and whether it still streamed."""
        expect(self.text).to_have_text(re.compile(r"\S[\s\S]{14,}"), timeout=ENGINE_MS)
        box = self.text.bounding_box()
        self.page.mouse.move(box["x"] + 1, box["y"] + 8)
        self.page.mouse.down()
        self.page.mouse.move(box["x"] + 90, box["y"] + 8, steps=5)
        self.page.mouse.up()
        picked = self.text.evaluate(SELECTION_JS)
        return picked, len(_clean(self.text.inner_text())), "streaming" in self.status.inner_text()

    def selection(self) -> dict[str, Any]:
        return dict(self.text.evaluate(SELECTION_JS))

    def record(self) -> None:
        self.output.evaluate(RECORD_JS)

    def states(self) -> list[str]:
        return list(self.page.evaluate("window.__vstreamStates"))

    def no_markup_ran(self) -> None:
        assert self.page.evaluate("window.__xss === undefined"), "a payload ran"
        assert self.panel.locator("img, script").count() == 0


def _start(kind: str, stack: contextlib.ExitStack, root: Path, app: str | None = None) -> FrontendServer:
    if kind == "notebook7":
        return stack.enter_context(notebook7(root))
    if kind == "voila":
        return stack.enter_context(voila(root))
    if kind == "marimo-app":
        return stack.enter_context(marimo(root, app=app, mode="run"))
    return stack.enter_context(marimo(root))


def _write(kind: str, root: Path) -> str:
    """The front end's notebook (or marimo file) under ``root``; its name."""
    if kind.startswith("marimo"):
        cells = ["import marimo as mo\n" + ENGINE, PANEL, "widget = mo.ui.anywidget(panel)\nwidget"]
        return write_marimo_app(root / "panel_app.py", cells + ([KERNEL_CHECK] if kind == "marimo" else [])).name
    if kind == "voila":
        return write_notebook(root / "panel_voila.ipynb", [f"{ENGINE}\n{PANEL}\npanel"]).name
    return write_notebook(root / "panel_nb7.ipynb", [f"{ENGINE}\n{PANEL}\npanel", KERNEL_CHECK]).name


def _show(kind: str, server: FrontendServer, page: Any, name: str) -> Shown:
    """Open the notebook and run it as a person would there."""
    driver: Any
    if kind == "marimo":
        driver = MarimoPage(page, server)
        driver.open(name)
        driver.run_all()
    elif kind == "marimo-app":  # an app runs when it opens, each tab a session of its own
        driver = MarimoPage(page, server)
        driver.open_app()
    elif kind == "voila":
        driver = VoilaPage(page, server)
        driver.open(name)
    else:
        driver = NotebookPage(page, server)
        driver.open_notebook(name)
        driver.run_current_cell(0)
    shown = Shown(kind, server, page, driver, name)
    expect(shown.panel).to_be_visible(timeout=ENGINE_MS)
    shown.wait_engine_ready()
    return shown


@pytest.fixture(scope="module", params=FRONTENDS)
def shown(request: pytest.FixtureRequest, browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shown]:
    kind = request.param
    with contextlib.ExitStack() as stack:
        root = tmp_path_factory.mktemp(f"{kind}-root")
        name = _write(kind, root)
        server = _start(kind, stack, root, app=name)
        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        stack.callback(context.close)
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        t0 = time.monotonic()
        yield _show(kind, server, page, name)
        print(f"\n{kind}: {time.monotonic() - t0:.1f} s with the panel shown")


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request: pytest.FixtureRequest, artifacts: Path) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "shown" in request.fixturenames:
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        with contextlib.suppress(Exception):
            request.getfixturevalue("shown").page.screenshot(path=str(artifacts / f"FAILED-{name}.png"))


# --------------------------------------------------------------------------------------
# The harness: an anywidget of our own renders and streams from a thread (no engine)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["notebook7", "voila", "marimo"])
def test_the_front_end_renders_an_anywidget_that_streams_from_a_thread(kind: str, page: Any, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        root = tmp_path / "root"
        root.mkdir()
        server = _start(kind, stack, root)
        copy_fixtures(root, "ticker.py")
        code = ["from ticker import Ticker", "ticker = Ticker(n=5)"]
        if kind == "marimo":
            write_marimo_app(
                root / "ticker_app.py", ["import marimo as mo\n" + code[0], f"{code[1]}\nmo.ui.anywidget(ticker)"]
            )
            driver: Any = MarimoPage(page, server)
            driver.open("ticker_app.py")
            driver.run_all()
        else:
            write_notebook(root / "ticker.ipynb", ["\n".join(code) + "\nticker"])
            if kind == "voila":
                VoilaPage(page, server).open("ticker.ipynb")
            else:
                nb = NotebookPage(page, server)
                nb.open_notebook("ticker.ipynb")
                nb.run_all()
        page.locator(".ticker-start").click()
        expect(page.locator(".ticker-done")).to_have_text("done after 5 ticks")
        assert page.locator(".ticker-log").inner_text().split() == [f"tick{i}" for i in range(5)]


# --------------------------------------------------------------------------------------
# The panel in Notebook 7, Voilà and marimo
# --------------------------------------------------------------------------------------


@pytest.mark.engine
def test_the_panel_streams_keeps_a_selection_and_fills_the_status_line(shown: Shown, artifacts: Path) -> None:
    shown.record()
    shown.generate()
    picked, at_pick, streaming = shown.select_while_streaming()
    status = shown.wait_finished()

    final = _clean(shown.text.inner_text())
    states = shown.states()
    intermediate = [s for s in states if s.strip() and s != final]
    kept = shown.selection()
    print(f"\n{shown.kind}: {len(states)} states, picked {picked['text']!r} at {at_pick}/{len(final)}; {status}")
    assert len(intermediate) >= 3, states
    assert all(final.startswith(s) for s in intermediate), states  # it grew, never rewrote
    assert re.search(r"TTFT \d+ ms · \d+ tokens · [\d.]+ tok/s · finish: (stop|length)", status), status
    assert streaming and len(final) > at_pick, "the selection was not made while the answer streamed"
    assert picked["text"].strip() and picked["inside"], picked
    assert kept == picked, f"the selection did not survive the stream: {picked} -> {kept}"
    assert final.startswith(picked["text"].lstrip()) or picked["text"] in final
    if shown.kind in ("notebook7", "voila"):  # IPython shows the static card too, out of sight here
        expect(shown.page.locator(CARD)).to_have_count(1)
        expect(shown.page.locator(CARD)).to_be_hidden()
    # The screenshot shows the kept selection.
    shown.panel.scroll_into_view_if_needed()
    shown.page.screenshot(path=str(artifacts / f"frontend-{shown.kind}.png"))


@pytest.mark.engine
def test_stop_ends_the_stream_early_and_the_engine_aborts_it(shown: Shown) -> None:
    shown.set_max_tokens(400)
    shown.set_prompt("Tell me a very long story about a dragon and a knight.")
    shown.generate()
    expect(shown.status).to_contain_text(re.compile(r"\b([89]|\d{2,}) tokens · .*streaming"), timeout=ENGINE_MS)
    partial = _clean(shown.text.inner_text())
    shown.panel.locator(".vstream-stop").click()
    status = shown.wait_finished(timeout_ms=20_000)
    kept = _clean(shown.text.inner_text())
    tokens = int(re.search(r"(\d+) tokens", status).group(1))  # type: ignore[union-attr]
    print(f"\n{shown.kind}: stopped at {tokens} tokens: {status}")
    assert "finish: cancelled" in status  # the kernel's Stream ended as cancelled
    assert 8 <= tokens < 400
    assert partial and kept.startswith(partial)
    # Where a cell can run, the kernel says so itself: the stream was cancelled, nothing is
    # left in the engine.
    if shown.kind == "notebook7":
        nb: NotebookPage = shown.driver
        nb.run_current_cell(1)
        expect(nb.cell(1).locator(".jp-OutputArea")).to_contain_text("kernel: ['cancelled'] 0")
    elif shown.kind == "marimo":
        mo: MarimoPage = shown.driver
        check = mo.run_cell(3)
        expect(check).to_contain_text("kernel: ['cancelled'] 0")
    shown.set_max_tokens(MAX_TOKENS)


@pytest.mark.engine
def test_markup_in_prompt_system_prompt_and_model_output_runs_nothing(shown: Shown) -> None:
    page = shown.page
    title = page.title()
    # 1. Chat: payloads in the prompt and the system prompt; the history and the rendered
    #    prompt (the chat template's text) show them.
    shown.set_prompt(f"Say hello. {IMG} {SCRIPT}")
    shown.panel.locator(".vstream-system textarea").fill(f"You are kind. {SCRIPT} {IMG}")
    shown.generate()
    shown.wait_finished()
    expect(shown.panel.locator(".vstream-history-view")).to_contain_text(f"Say hello. {IMG} {SCRIPT}")
    shown.panel.locator(".vstream-show-prompt").click()
    expect(shown.panel.locator(".vstream-rendered")).to_contain_text(f"You are kind. {SCRIPT} {IMG}")
    shown.panel.locator(".vstream-show-prompt").click()
    # 2. Completion: the model continues a prompt made of payloads (greedy: it repeats them).
    shown.set_checkbox(".vstream-chat", False)
    shown.set_checkbox(".vstream-ctl-ignore-eos", True)
    shown.set_prompt((IMG + "\n") * 6)
    shown.generate()
    shown.wait_finished()
    generated = shown.text.inner_text()
    print(f"\n{shown.kind}: the model wrote {generated[:80]!r}")
    assert "<img src=x onerror=" in generated
    page.wait_for_timeout(500)  # an onerror handler would have fired by now
    shown.no_markup_ran()
    assert page.title() == title


@pytest.mark.engine
def test_the_reopened_notebook_shows_the_final_answer(shown: Shown) -> None:
    final = _clean(shown.text.inner_text())
    status = str(shown.status.inner_text())
    assert final.strip() and "finish:" in status
    page = shown.page
    if shown.kind == "notebook7":
        nb: NotebookPage = shown.driver
        saved = nb.save(shown.name)
        states = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
        results = [m["state"]["results"] for m in states.values() if "results" in m["state"]]
        assert results and results[0][0]["text"] == final, results
        shown.server.shutdown_kernels()
        page.reload()
        expect(shown.text).to_contain_text(final.strip()[:40], timeout=UI_TIMEOUT_MS)
        assert _clean(shown.text.inner_text()) == final
        expect(shown.status).to_have_text(status)
    elif shown.kind == "voila":
        kernels = kernel_processes(shown.server)
        assert len(kernels) == 1, kernels
        old = [kernels[0], *kernels[0].children(recursive=True)]  # the kernel and its engine's processes
        shown.driver.open(shown.name)  # the page again: it runs again, in a new kernel
        expect(shown.panel).to_be_visible()
        gone = _wait_gone(old, 30)
        assert gone, f"the old page's kernel or its engine is still running: {old}"
        assert shown.output.locator(".vstream-text").count() == 0 or not _clean(shown.text.inner_text()).strip()
        return
    elif shown.kind == "marimo-app":
        engine = sorted(p.pid for p in _descendants(shown.server))
        page.reload()  # a new session of the app: it runs again, on the process's one engine
        expect(shown.panel).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(shown.panel.locator(".vstream-engine-status")).to_contain_text("engine ready", timeout=20_000)
        assert sorted(p.pid for p in _descendants(shown.server)) == engine, "a second engine started"
        assert shown.output.locator(".vstream-text").count() == 0 or not _clean(shown.text.inner_text()).strip()
        return
    else:
        page.reload()
        expect(shown.panel).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(shown.text).to_contain_text(final.strip()[:40], timeout=UI_TIMEOUT_MS)
        assert _clean(shown.text.inner_text()) == final
        expect(shown.status).to_have_text(status)
    page.wait_for_timeout(300)
    shown.no_markup_ran()  # the last answer is the payload-repeating one: still text


def _descendants(server: FrontendServer) -> list[Any]:
    import psutil

    return list(psutil.Process(server.proc.pid).children(recursive=True))


def _wait_gone(procs: list[Any], timeout: float) -> bool:
    import psutil

    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not alive


# --------------------------------------------------------------------------------------
# JupyterLab: a selection survives the stream; the saved notebook shows the answer, with
# widget state and without it (Lab's default), and so does nbconvert's HTML of it
# --------------------------------------------------------------------------------------

WIDGET_SETTINGS = "/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin"


@pytest.mark.engine
def test_lab_keeps_a_selection_while_the_panel_streams_and_reopens_with_the_answer(
    lab: LabServer, lab_page: LabPage, tmp_path: Path
) -> None:
    page = lab_page.page
    try:
        nb = lab.write_notebook("panel_lab.ipynb", [f"{ENGINE}\n{PANEL}\npanel"])
        lab_page.open_notebook(nb.name)
        lab_page.run_current_cell(0)
        shown = Shown("lab", lab, page, lab_page, nb.name)  # type: ignore[arg-type]
        shown.wait_engine_ready()
        shown.generate()
        picked, at_pick, streaming = shown.select_while_streaming()
        status = shown.wait_finished()
        final = _clean(shown.text.inner_text())
        assert picked["text"].strip() and streaming and len(final) > at_pick
        assert shown.selection() == picked, "the selection did not survive the stream"
        # The card has its answer by now, and stays out of sight where the panel renders.
        expect(page.locator(CARD)).to_have_count(1)
        expect(page.locator(CARD)).to_be_hidden()
        time.sleep(0.5)
        assert shown.selection() == picked, "the card's update disturbed the selection"

        # Saved without widget state (Lab's default): the card holds the final answer ...
        saved = save_notebook(page, lab, nb.name)
        assert "widgets" not in saved["metadata"]
        cards = [
            o["data"]["text/html"]
            for o in saved["cells"][0]["outputs"]
            if CARD[1:] in o.get("data", {}).get("text/html", "")
        ]
        assert len(cards) == 1 and final.strip() in _card_text(cards[0]), cards
        assert "finish:" in cards[0]
        # ... and nbconvert's HTML shows it (no widget state, so no widget view to prefer).
        ipynb = tmp_path / "saved.ipynb"
        ipynb.write_text(json.dumps(saved))
        exported = subprocess.run(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--stdout", str(ipynb)],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        assert final.strip() in _card_text(exported)

        # Saved with widget state: the reopened notebook rebuilds the panel, answer included.
        lab.api("PUT", WIDGET_SETTINGS, {"raw": '{"saveState": true}'})
        lab_page.open_notebook(nb.name, wait_kernel=False)
        expect(shown.text).to_contain_text(final.strip()[:40], timeout=UI_TIMEOUT_MS)
        save_notebook(page, lab, nb.name)
        lab.shutdown_kernels()
        lab_page.open_notebook(nb.name, wait_kernel=False)
        expect(shown.text).to_contain_text(final.strip()[:40], timeout=UI_TIMEOUT_MS)
        assert _clean(shown.text.inner_text()) == final
        expect(shown.status).to_have_text(status)
        expect(page.locator(CARD)).to_be_hidden()

        # Reopened without widget state and without a kernel: the widget cannot render, the card shows.
        lab.api("PUT", f"/api/contents/{nb.name}", {"type": "notebook", "format": "json", "content": saved})
        lab_page.open_notebook(nb.name, wait_kernel=False)
        expect(page.locator(CARD)).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.locator(CARD)).to_contain_text(final.strip()[:60])
        assert page.locator(".vstream-panel").count() == 0
    finally:
        lab.api("PUT", WIDGET_SETTINGS, {"raw": "{}"})


def _card_text(page_html: str) -> str:
    """The answers' text in a static card (or a page holding one), markup gone, entities read."""
    return "\n".join(shown_texts(card)[0] for card in page_html.split('<div class="vstream-card"')[1:])
