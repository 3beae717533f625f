"""Serve notebooks in Jupyter Notebook 7, Voilà and marimo, and drive them in Chromium.

The same pieces as :mod:`.lab` (whose Chromium, free ports, process clean-up and notebook
writer this reuses), for the front ends beyond JupyterLab:

- :func:`notebook7` — ``jupyter notebook`` (Notebook 7) on a free port with a random token,
  throwaway config/settings/workspaces dirs, news off, widget state saved with the notebook.
- :func:`voila` — ``voila <root>`` (tree mode: ``/voila/render/<name>.ipynb`` runs a
  notebook on page load, in a fresh kernel per page).
- :func:`marimo` — ``marimo edit --headless <root>`` (``/?file=<name>.py``) or ``marimo run
  <app.py>``, with a random access token and a throwaway marimo config.
- :class:`NotebookPage`, :class:`VoilaPage`, :class:`MarimoPage` — what a person does there:
  open, wait for the kernel and the cells, run cells, read outputs.

Each server runs in its own session, dies with the test process, and is stopped (its kernels
and their engines with it) when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .lab import (
    KERNEL_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    LabPage,
    LabServer,
    _die_with_parent,
    _stop,
    _write_lab_settings,
    free_port,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass
class FrontendServer(LabServer):
    """A running front-end server. ``token_query`` is the URL parameter that carries the token
    (``token`` for Jupyter servers, ``access_token`` for marimo; none for Voilà)."""

    kind: str = "notebook7"
    token_query: str | None = "token"

    def url(self, path: str = "/", **query: str) -> str:
        if self.token_query:
            query = {**query, self.token_query: self.token}
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{self.base_url}{path}{'?' + q if q else ''}"


@contextlib.contextmanager
def _serve(
    kind: str,
    argv: Sequence[str],
    *,
    tmp: Path,
    root: Path,
    port: int,
    token: str,
    token_query: str | None,
    ready_path: str,
    env: dict[str, str],
    startup_timeout: float,
    stop_grace: float,
) -> Iterator[FrontendServer]:
    """Start ``argv`` (this interpreter's environment) in ``root``; yield once ``ready_path``
    answers; stop it and everything it started at the end."""
    log_path = tmp / f"{kind}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=root,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # no Ctrl-C from the test runner's terminal
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    server = FrontendServer("127.0.0.1", port, token, root, log_path, proc, kind, token_query)
    try:
        _wait_answering(server, ready_path, startup_timeout)
        yield server
    finally:
        _stop(server, grace=stop_grace)
        log.close()
        if os.environ.get("VSTREAM_KEEP_LAB_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


def _wait_answering(server: FrontendServer, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.kind} exited with {server.proc.returncode} during startup:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(server.url(path), timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            last = e
        time.sleep(0.25)
    raise TimeoutError(f"{server.kind} did not answer {path} within {timeout:.0f} s ({last!r}):\n{server.log_tail()}")


def _jupyter_env(tmp: Path) -> dict[str, str]:
    """Keep the user's Jupyter config and runtime files out of it."""
    return {
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }


def _root(tmp: Path, root_dir: Path | None) -> Path:
    root = Path(root_dir) if root_dir is not None else tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def notebook7(root_dir: Path | None = None, *, startup_timeout: float = 120.0) -> Iterator[FrontendServer]:
    """``jupyter notebook`` (Notebook 7). Widget state is saved with the notebook (Settings,
    Save Widget State Automatically), so a saved notebook reopened without its kernel still
    has the widgets' last state. That setting is off by default, in JupyterLab too: without it
    the reopened notebook shows "Error displaying widget: model not found" where the widget
    was, not the mimebundle's text/html."""
    tmp = Path(tempfile.mkdtemp(prefix="vstream-nb7-"))
    root = _root(tmp, root_dir)
    settings_dir = tmp / "user-settings"
    _write_lab_settings(settings_dir)  # news and update checks off, as in Lab
    widgets = settings_dir / "@jupyter-widgets" / "jupyterlab-manager" / "plugin.jupyterlab-settings"
    widgets.parent.mkdir(parents=True, exist_ok=True)
    widgets.write_text(json.dumps({"saveState": True}))
    port, token = free_port(), secrets.token_hex(24)
    argv = [
        "jupyter", "notebook",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        # Notebook 7's pages read settings from the jupyterlab extension's /lab/api/settings
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--JupyterNotebookApp.user_settings_dir={settings_dir}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        f"--JupyterNotebookApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    with _serve(
        "notebook7", argv, tmp=tmp, root=root, port=port, token=token, token_query="token",
        ready_path="/api/status", env=_jupyter_env(tmp), startup_timeout=startup_timeout, stop_grace=15.0,
    ) as server:  # fmt: skip
        yield server


@contextlib.contextmanager
def voila(root_dir: Path | None = None, *, startup_timeout: float = 120.0) -> Iterator[FrontendServer]:
    """``voila <root>``: its tree at ``/``, each notebook run on page load at
    ``/voila/render/<name>`` in a kernel of its own, shut down when the page goes.

    Voilà 0.5 asks for that shutdown with ``navigator.sendBeacon``, which carries no XSRF
    token, so its server refuses it (403 "'_xsrf' argument missing", voila#1458, open) and
    every page left behind keeps its kernel, here with an engine in it, until the server
    stops. The server is told to skip the XSRF check (``disable_check_xsrf``: it listens on
    127.0.0.1 only), so a reloaded page frees its kernel as Voilà means it to.
    """
    tmp = Path(tempfile.mkdtemp(prefix="vstream-voila-"))
    root = _root(tmp, root_dir)
    env = _jupyter_env(tmp)
    config = Path(env["JUPYTER_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "voila.json").write_text(json.dumps({"Voila": {"tornado_settings": {"disable_check_xsrf": True}}}))
    port = free_port()
    argv = [
        "voila", str(root),
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        f"--Voila.port={port}",
        "--Voila.port_retries=0",
        "--show_tracebacks=True",
    ]  # fmt: skip
    with _serve(
        "voila", argv, tmp=tmp, root=root, port=port, token="", token_query=None,
        ready_path="/", env=env, startup_timeout=startup_timeout, stop_grace=0.0,
    ) as server:  # fmt: skip
        yield server


def kernel_processes(server: FrontendServer) -> list[Any]:
    """The server's kernels (``ipykernel_launcher`` processes), found among its descendants:
    Voilà has no kernels API."""
    import psutil

    try:
        family = psutil.Process(server.proc.pid).children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for p in family:
        with contextlib.suppress(psutil.Error):
            if "ipykernel_launcher" in " ".join(p.cmdline()):
                out.append(p)
    return out


@contextlib.contextmanager
def marimo(
    root_dir: Path | None = None,
    *,
    app: str | None = None,
    mode: str = "edit",
    startup_timeout: float = 120.0,
) -> Iterator[FrontendServer]:
    """``marimo edit --headless <root>`` (a notebook at ``/?file=<name>.py``), or with
    ``mode="run"``, ``marimo run <root>/<app>`` (the app at ``/``)."""
    tmp = Path(tempfile.mkdtemp(prefix="vstream-marimo-"))
    root = _root(tmp, root_dir)
    port, token = free_port(), secrets.token_hex(24)
    target = str(root / app) if mode == "run" and app else str(root)
    argv = [
        "marimo", "--yes", mode, target,
        "--headless",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--token-password={token}",
        "--no-sandbox",
        *(["--skip-update-check"] if mode == "edit" else []),
    ]  # fmt: skip
    env = {"XDG_CONFIG_HOME": str(tmp / "config"), "XDG_STATE_HOME": str(tmp / "state")}
    with _serve(
        "marimo", argv, tmp=tmp, root=root, port=port, token=token, token_query="access_token",
        ready_path="/health", env=env, startup_timeout=startup_timeout, stop_grace=0.0,
    ) as server:  # fmt: skip
        yield server


def copy_fixtures(root: Path, *names: str) -> None:
    """Copy files from tests/browser/fixtures/ into a server's root (notebooks import them)."""
    for name in names:
        shutil.copy(FIXTURES / name, root / name)


# --------------------------------------------------------------------------------------
# What a person does in each front end
# --------------------------------------------------------------------------------------


class NotebookPage(LabPage):
    """Notebook 7: the same cells as Lab (``.jp-Cell``), one notebook per page, no status bar:
    the kernel's state is the toolbar's indicator, trusted once the server has a kernel."""

    NOTEBOOK = ".jp-NotebookPanel"

    def open_notebook(self, nb_path: str | Path, *, wait_kernel: bool = True) -> None:
        rel = Path(nb_path)
        if rel.is_absolute():
            rel = rel.relative_to(self.server.root_dir)
        self.page.goto(self.server.url(f"/notebooks/{rel.as_posix()}"), timeout=UI_TIMEOUT_MS)
        self.notebook.locator(".jp-Cell").first.wait_for(timeout=UI_TIMEOUT_MS)
        if wait_kernel:
            self.wait_for_kernel_idle()

    def wait_for_kernel_idle(self, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        deadline = time.monotonic() + timeout_ms / 1000
        while not any(k.get("execution_state") == "idle" for k in self.server.kernels()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no idle kernel after {timeout_ms} ms:\n{self.server.log_tail()}")
            time.sleep(0.25)
        self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=timeout_ms)

    def save(self, nb_path: str) -> dict[str, Any]:
        return save_notebook(self.page, self.server, nb_path)


def save_notebook(page: Any, server: LabServer, nb_path: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Ctrl+S in a Lab or Notebook 7 page, as a person saves; wait until the server has a newer
    file and return it (the notebook's JSON, through the contents API)."""
    api = f"/api/contents/{nb_path}"
    before = server.api("GET", api + "?content=0")["last_modified"]
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + timeout_s
    while server.api("GET", api + "?content=0")["last_modified"] == before:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{nb_path} was not saved within {timeout_s:.0f} s")
        time.sleep(0.2)
    return dict(server.api("GET", api)["content"])


class VoilaPage:
    """A notebook rendered by Voilà: it runs on page load; the page shows outputs only."""

    def __init__(self, page: Any, server: FrontendServer) -> None:
        self.page = page
        self.server = server

    def open(self, nb_name: str, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        """Load ``/voila/render/<nb_name>`` and wait until every cell has run (Voilà's
        spinner is gone and the outputs are in the page)."""
        self.page.goto(self.server.url(f"/voila/render/{nb_name}"), timeout=timeout_ms)
        self.page.locator(".jp-OutputArea").first.wait_for(timeout=timeout_ms)
        self.page.wait_for_function(
            "() => { const l = document.querySelector('#loading'); return !l || l.offsetParent === null; }",
            timeout=timeout_ms,
        )

    def screenshot(self, path: str | Path, *, full_page: bool = False) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(p), full_page=full_page)
        return p


# marimo marks a cell that has to run with the class ``needs-run`` and a running or queued one
# with its status icon (``[data-testid=cell-status][data-status=running|queued]``).
_MARIMO_IDLE_JS = """
() => {
  const cells = document.querySelectorAll('.marimo-cell');
  return cells.length > 0
    && !document.querySelector('.marimo-cell.needs-run')
    && !document.querySelector('[data-testid=cell-status][data-status=running]')
    && !document.querySelector('[data-testid=cell-status][data-status=queued]');
}
"""


class MarimoPage:
    """A marimo notebook in edit mode: it opens with its cells stale (not run); *Run all stale
    cells* (the play button at the bottom right) runs them, as a person would. Or an app
    (``marimo run``), which runs as it opens."""

    RUN_ALL = "[data-testid=chrome-controls-bottom-right] [data-testid=run-button]"

    def __init__(self, page: Any, server: FrontendServer) -> None:
        self.page = page
        self.server = server

    def open(self, name: str, timeout_ms: int = UI_TIMEOUT_MS) -> None:
        self.page.goto(self.server.url("/", file=name), timeout=timeout_ms)
        self.page.locator(".marimo-cell").first.wait_for(timeout=timeout_ms)

    def open_app(self, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        """``marimo run``: the app at ``/`` runs as it opens (no cells shown)."""
        self.page.goto(self.server.url("/"), timeout=timeout_ms)

    def run_all(self, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        self.page.locator(self.RUN_ALL).click(timeout=UI_TIMEOUT_MS)
        self.wait_idle(timeout_ms)

    def wait_idle(self, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        """Wait until no cell needs to run, is queued or runs."""
        self.page.wait_for_function(_MARIMO_IDLE_JS, timeout=timeout_ms)

    def run_cell(self, index: int, timeout_ms: int = KERNEL_TIMEOUT_MS) -> Any:
        """Click cell ``index``'s run button; wait until it has run; return the cell."""
        cell = self.page.locator(".marimo-cell").nth(index)
        cell.hover()
        cell.locator("[data-testid=run-button]").first.click()
        self.page.wait_for_timeout(200)  # the click is a request: the cell is queued next
        self.wait_idle(timeout_ms)
        return cell

    def screenshot(self, path: str | Path, *, full_page: bool = False) -> Path:
        return _screenshot(self.page, path, full_page)


def _screenshot(page: Any, path: str | Path, full_page: bool) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(p), full_page=full_page)
    return p


def write_marimo_app(path: Path, cells: Sequence[str]) -> Path:
    """A marimo notebook file of ``cells`` (each a cell's code; the last expression shows)."""
    out = ["import marimo", "", f'__generated_with = "{_marimo_version()}"', "app = marimo.App()", ""]
    for code in cells:
        body = "\n".join("    " + line if line else "" for line in code.strip("\n").splitlines())
        out += ["", "@app.cell", "def _():", body, "    return", ""]
    out += ["", 'if __name__ == "__main__":', "    app.run()", ""]
    path.write_text("\n".join(out))
    return path


def _marimo_version() -> str:
    from importlib.metadata import version

    return version("marimo")
