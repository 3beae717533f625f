"""The code passes the linter configured in pyproject.toml (ruff: pyflakes, pycodestyle, bugbear,
isort, pyupgrade, simplify), so a slip such as an unused import or a shadowed name fails CI."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing_in_the_package_the_benchmarks_and_the_tests():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "src", "benchmarks", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
