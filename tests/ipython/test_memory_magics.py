"""%vstream status, sleep and wake on a real IPython shell with the real (CPU) engine."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

pytestmark = pytest.mark.engine


def test_sleep_and_wake_say_there_is_no_sleep_mode_on_cpu(shell, host, capsys):
    for command in ("sleep", "wake"):
        with pytest.raises(UsageError, match="sleep mode needs a GPU: vLLM's CPU backend has none"):
            shell.run_line_magic("vstream", command)
    with pytest.raises(UsageError, match="after=SECONDS"):
        shell.run_line_magic("vstream", "sleep later=5")
    shell.run_line_magic("vstream", "status")
    out = capsys.readouterr().out
    # The host's own status line, sizes included (tests/engine/test_memory.py checks those).
    assert f"vstream: engine {host.status()}" in out
    assert "vstream: engine ready" in out and " GiB + KV " in out and "streams at full context" in out


def test_the_idle_timer_is_set_from_the_magic(shell, host, capsys):
    try:
        shell.run_line_magic("vstream", "sleep after=120")
        assert host.sleep_after_s == 120.0
        assert "sleeps after 120 s without requests" in capsys.readouterr().out
        shell.run_line_magic("vstream", "sleep after=never")
        assert host.sleep_after_s is None
    finally:
        host.sleep_after_s = None
