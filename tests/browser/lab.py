"""Drive a real JupyterLab in Debian's headless Chromium (test tier 4, see DESIGN.md §5).

Pieces:

- :func:`jupyter_lab` — context manager: a throwaway ``jupyter lab`` server on 127.0.0.1
  (free port, random token, temp root/workspace/settings dirs, news and update checks off),
  stopped with ``POST /api/shutdown`` and killed if it lingers.
- :func:`launch_chromium` — Playwright's Chromium driver on ``/usr/bin/chromium`` with flags
  that keep it offline (only 127.0.0.1 resolves) and quiet.
- :class:`LabPage` — what a person does in Lab: open a notebook, wait for the kernel, run
  cells (menu *Run All Cells* or Shift+Enter), read outputs, take screenshots.

Everything waits with explicit timeouts: Playwright's 5 s default is far too short for a
kernel start on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Debian's Chromium (apt-get install chromium); VSTREAM_CHROMIUM overrides the path.
CHROMIUM = os.environ.get("VSTREAM_CHROMIUM", "/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing but the Lab server resolves: no outside lookups from the browser.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]

# Generous defaults (milliseconds) for Playwright waits.
KERNEL_TIMEOUT_MS = 120_000  # kernel start / idle after a run
UI_TIMEOUT_MS = 60_000  # Lab page load, menus, outputs

# The status bar item reads e.g. "Python 3 (ipykernel) | Idle". The notebook toolbar shows an
# idle circle before any kernel exists, so only the status bar text is trusted.
KERNEL_IDLE_RE = re.compile(r"\S \| Idle")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


@dataclass
class LabServer:
    """A running ``jupyter lab``; ``root_dir`` is what its file browser shows."""

    host: str
    port: int
    token: str
    root_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/lab", **query: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in {**query, "token": self.token}.items())
        return f"{self.base_url}{path}?{q}"

    def notebook_url(self, nb_path: str, workspace: str | None = None) -> str:
        """URL that opens ``nb_path`` (relative to root_dir) in a fresh Lab workspace, so tabs
        left open by an earlier test are not restored."""
        ws = workspace or f"t-{uuid.uuid4().hex[:10]}"
        return self.url(f"/lab/workspaces/{ws}/tree/{nb_path.lstrip('/')}")

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def kernels(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/api/kernels"))

    def shutdown_kernels(self) -> None:
        """Stop every session and kernel (tests run one after another on a shared server)."""
        with contextlib.suppress(Exception):
            for s in self.api("GET", "/api/sessions"):
                with contextlib.suppress(Exception):
                    self.api("DELETE", f"/api/sessions/{s['id']}", timeout=30)
        with contextlib.suppress(Exception):
            for k in self.kernels():
                with contextlib.suppress(Exception):
                    self.api("DELETE", f"/api/kernels/{k['id']}", timeout=30)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def write_notebook(self, name: str, sources: Sequence[str]) -> Path:
        """Write a notebook of code cells under root_dir, with a python3 kernelspec (without
        one, Lab asks which kernel to use)."""
        return write_notebook(self.root_dir / name, sources)


def write_notebook(path: Path, sources: Sequence[str]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM the server when the test process dies (even by SIGKILL), so an
    interrupted run leaves no orphan server; the server then stops its kernels."""
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _write_lab_settings(settings_dir: Path) -> None:
    notif = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True, exist_ok=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@contextlib.contextmanager
def jupyter_lab(
    root_dir: Path | None = None,
    *,
    startup_timeout: float = 120.0,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Iterator[LabServer]:
    """Start ``python -m jupyter lab`` from this interpreter's environment; yield a LabServer."""
    tmp = Path(tempfile.mkdtemp(prefix="vstream-lab-"))
    root = Path(root_dir) if root_dir is not None else tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    settings_dir = tmp / "user-settings"
    workspaces_dir = tmp / "workspaces"
    workspaces_dir.mkdir()
    _write_lab_settings(settings_dir)

    host, port, token = "127.0.0.1", free_port(), secrets.token_hex(24)
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser",
        "--allow-root",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={workspaces_dir}",
        f"--LabApp.user_settings_dir={settings_dir}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        *extra_args,
    ]  # fmt: skip
    run_env = {
        **os.environ,
        # Keep the user's Jupyter config and runtime files out of it.
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log_path = tmp / "jupyter-lab.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=run_env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # no Ctrl-C from the test runner's terminal
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    server = LabServer(host, port, token, root, log_path, proc)
    try:
        _wait_ready(server, startup_timeout)
        yield server
    finally:
        _stop(server)
        log.close()
        if os.environ.get("VSTREAM_KEEP_LAB_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


def _wait_ready(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with {server.proc.returncode} during startup:\n"
                f"{server.log_tail()}"
            )
        try:
            server.api("GET", "/api/status", timeout=5)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            last = e
        time.sleep(0.25)
    raise TimeoutError(
        f"jupyter lab did not answer /api/status within {timeout:.0f} s ({last!r}):\n"
        f"{server.log_tail()}"
    )


def _stop(server: LabServer, grace: float = 15.0) -> None:
    """POST /api/shutdown (stops kernels too); then kill what is left of the processes this
    server started, by pid: kernels run in their own sessions, so a process-group kill of the
    server would miss them."""
    import psutil

    proc = server.proc
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    if proc.poll() is None:
        with contextlib.suppress(Exception):
            server.api("POST", "/api/shutdown", timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    alive = [p for p in family if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(alive, timeout=5)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


# --------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def launch_chromium(playwright: Any, **kwargs: Any) -> Any:
    """Launch Debian's Chromium through Playwright (a fresh temporary profile each time)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        **kwargs,
    )


def configure_expect(timeout_ms: int = UI_TIMEOUT_MS) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=timeout_ms)


# --------------------------------------------------------------------------------------
# What a person does in Lab
# --------------------------------------------------------------------------------------

# The input prompts of the notebook's non-empty code cells (an empty code cell is never sent
# to the kernel, so its prompt stays "[ ]:" after Run All).
_CODE_PROMPTS_JS = r"""
(nbSel) => {
  const nb = document.querySelector(nbSel);
  if (!nb) return [];
  const source = (cell) => Array.from(cell.querySelectorAll('.cm-line')).map(line =>
    Array.from(line.childNodes)
      .filter(n => !(n.classList && n.classList.contains('cm-placeholder')))
      .map(n => n.textContent).join('')).join('\n');
  return Array.from(nb.querySelectorAll('.jp-CodeCell'))
    .filter(cell => source(cell).trim() !== '')
    .map(cell => cell.querySelector('.jp-InputPrompt'))
    .filter(p => p !== null);
}
"""

# Every non-empty code cell shows "[n]:".
_PROMPT_DONE_JS = f"""
(nbSel) => {{
  const prompts = ({_CODE_PROMPTS_JS})(nbSel);
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}}
"""

# Some code cell shows "[n]:" (or "[*]:").
_PROMPT_ANY_COUNT_JS = r"""
(nbSel) => {
  const nb = document.querySelector(nbSel);
  return !!nb && Array.from(nb.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))
    .some(p => /\[(\d+|\*)\]/.test(p.textContent));
}
"""


class LabPage:
    """A Playwright ``Page`` showing JupyterLab on ``server``."""

    NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"

    def __init__(self, page: Any, server: LabServer) -> None:
        self.page = page
        self.server = server

    # -- navigation ---------------------------------------------------------------------
    def open_notebook(self, nb_path: str | Path, *, wait_kernel: bool = True) -> None:
        """Open a notebook (path relative to the server's root_dir) in a fresh workspace."""
        rel = Path(nb_path)
        if rel.is_absolute():
            rel = rel.relative_to(self.server.root_dir)
        self.page.goto(self.server.notebook_url(rel.as_posix()), timeout=UI_TIMEOUT_MS)
        self.notebook.locator(".jp-Cell").first.wait_for(timeout=UI_TIMEOUT_MS)
        if wait_kernel:
            self.wait_for_kernel_idle()

    @property
    def notebook(self) -> Any:
        return self.page.locator(self.NOTEBOOK).first

    @property
    def status_bar(self) -> Any:
        return self.page.locator("#jp-main-statusbar")

    def wait_for_kernel_idle(self, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        from playwright.sync_api import expect

        expect(self.status_bar).to_contain_text(KERNEL_IDLE_RE, timeout=timeout_ms)

    # -- cells ----------------------------------------------------------------------------
    def cells(self) -> Any:
        return self.notebook.locator(".jp-Cell")

    def cell(self, index: int) -> Any:
        return self.cells().nth(index)

    def select_cell(self, index: int) -> None:
        """Select a cell in command mode (click its input prompt), as a person would."""
        self.page.keyboard.press("Escape")
        self.cell(index).locator(".jp-InputPrompt").click()

    def menu(self, top: str, item: str) -> None:
        """Click menu bar entry ``top`` then its item ``item`` (exact labels)."""
        self.page.locator(
            ".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")
        ).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()

    def run_all(self, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        """Menu Run ▸ Run All Cells, then wait until every code cell has an execution count
        and the kernel is idle again. Cells that already show a count (a saved notebook, a
        second run) are cleared first (Edit ▸ Clear Outputs of All Cells), so the wait
        cannot be satisfied by old counts."""
        if self.page.evaluate(_PROMPT_ANY_COUNT_JS, self.NOTEBOOK):
            self.menu("Edit", "Clear Outputs of All Cells")
            self.page.wait_for_function(
                f"(sel) => !({_PROMPT_ANY_COUNT_JS})(sel)", arg=self.NOTEBOOK, timeout=UI_TIMEOUT_MS
            )
        self.menu("Run", "Run All Cells")
        self.wait_for_all_executed(timeout_ms)

    def wait_for_all_executed(self, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        """Wait until every non-empty code cell shows ``[n]:`` and the kernel is idle."""
        self.page.wait_for_function(_PROMPT_DONE_JS, arg=self.NOTEBOOK, timeout=timeout_ms)
        self.wait_for_kernel_idle(timeout_ms)

    def run_current_cell(
        self, index: int | None = None, timeout_ms: int = KERNEL_TIMEOUT_MS
    ) -> None:
        """Shift+Enter on cell ``index`` (or the active cell); wait for its new count."""
        if index is not None:
            self.select_cell(index)
        else:
            index = self.active_cell_index()
        prompt = self.cell(index).locator(".jp-InputPrompt")
        before = prompt.inner_text().strip()
        self.page.keyboard.press("Shift+Enter")
        self.page.wait_for_function(
            r"""([el, before]) => {
                const t = el.textContent.trim();
                return /\[\d+\]/.test(t) && t !== before;
            }""",
            arg=[prompt.element_handle(), before],
            timeout=timeout_ms,
        )
        self.wait_for_kernel_idle(timeout_ms)

    def active_cell_index(self) -> int:
        idx = self.notebook.evaluate(
            """(nb) => Array.from(nb.querySelectorAll('.jp-Cell'))
                         .findIndex(c => c.classList.contains('jp-mod-active'))"""
        )
        if idx < 0:
            raise LookupError("no active cell")
        return int(idx)

    def output_text(self, index: int) -> str:
        """Visible text of cell ``index``'s output area."""
        return str(self.cell(index).locator(".jp-OutputArea").inner_text())

    def all_output_text(self) -> str:
        return "\n".join(str(t) for t in self.notebook.locator(".jp-OutputArea").all_inner_texts())

    # -- pictures -------------------------------------------------------------------------
    def screenshot(self, path: str | Path, *, full_page: bool = False) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(p), full_page=full_page)
        return p
