"""Fixtures for the browser tier: a real JupyterLab driven by Debian's headless Chromium.

- ``lab``       session-scoped ``jupyter lab`` server (tests/browser/lab.py)
- ``browser``   session-scoped Chromium (Playwright, /usr/bin/chromium)
- ``page``      a fresh Playwright page in a fresh browser context, per test
- ``lab_page``  ``LabPage`` helpers (open notebook, wait for kernel, run, read outputs)
- ``artifacts`` tests/artifacts/ (git-ignored): screenshots go there
- ``docs_images`` where the README's screenshots go: tests/artifacts/, or docs/ with
  VSTREAM_UPDATE_DOCS=1 (``make docs-images``), so a test run leaves the work tree clean

Every test under tests/browser/ is marked ``browser``. Without /usr/bin/chromium the tests
are skipped with a reason, except under CI (CI=true), where that is an error:
run ``bash scripts/setup-env.sh --browser`` (or ``make test``), which installs it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .lab import (
    CHROMIUM,
    UI_TIMEOUT_MS,
    LabPage,
    LabServer,
    chromium_available,
    configure_expect,
    jupyter_lab,
    launch_chromium,
)

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent / "artifacts"
DOCS = HERE.parents[1] / "docs"
UPDATE_DOCS = "VSTREAM_UPDATE_DOCS"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _under_ci() -> bool:
    return _flag("CI")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)  # lets ``page`` see whether the test failed
    return rep


def _require_browser() -> None:
    problems = []
    if not chromium_available():
        problems.append(f"{CHROMIUM} is missing (bash scripts/setup-env.sh --browser installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        problems.append(f"playwright is not importable ({e}); install the [test] extra")
    if problems:
        msg = "browser tests need: " + "; ".join(problems)
        if _under_ci():
            pytest.fail(msg + " [CI=true: not skipping]", pytrace=False)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def docs_images(artifacts: Path) -> Path:
    """docs/ when $VSTREAM_UPDATE_DOCS is set (``make docs-images``), else tests/artifacts/."""
    if not _flag(UPDATE_DOCS):
        return artifacts
    DOCS.mkdir(exist_ok=True)
    return DOCS


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    _require_browser()
    root = tmp_path_factory.mktemp("lab-root")
    with jupyter_lab(root) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    configure_expect(UI_TIMEOUT_MS)
    with sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.set_default_navigation_timeout(UI_TIMEOUT_MS)
    pg = context.new_page()
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            with contextlib.suppress(Exception):  # best effort
                pg.screenshot(path=str(artifacts / f"FAILED-{name}.png"))
        context.close()


@pytest.fixture
def lab_page(page: Any, lab: LabServer) -> Iterator[LabPage]:
    yield LabPage(page, lab)
    # Tests share one server: stop the kernels this test started (an engine in a kernel
    # holds gigabytes).
    lab.shutdown_kernels()
