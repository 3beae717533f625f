"""One engine per process: reuse, restart, shutdown — and no engine process left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import vstream
from vstream import ipc_folder

pytestmark = pytest.mark.engine


def _alive(pids):
    return [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def _engine_children():
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if not any("resource_tracker" in part for part in p.cmdline())
    }


def test_a_second_engine_call_returns_the_same_host_and_no_new_process(host):
    before = _engine_children()
    again = vstream.engine()
    same_config = vstream.engine(kv_cache_tokens=host.config.kv_cache_tokens)
    assert again is host and same_config is host
    assert _engine_children() == before
    assert host.process_ids() and set(host.process_ids()) <= before


def test_status_when_ready_says_model_device_kv_and_mode(host):
    status = host.status()
    assert status.state == "ready"
    assert status.elapsed_s > 0
    info = status.info
    assert info.model == vstream.EMBEDDED_MODEL
    assert info.device in {"cpu", "cuda"}
    assert info.kv_cache_tokens and info.kv_cache_tokens > 1000
    assert info.mode in {"eager", "CUDA graphs", "compiled"}
    assert "ready" in str(status) and info.model in str(status)


def _socket_folders():
    """This process's engine socket folders, with what each holds."""
    return {path: sorted(os.listdir(path)) for path in ipc_folder.owned_by(os.getpid())}


def _stray_sockets():
    """vLLM's socket files named straight in the temp folder (a uuid each)."""
    temp = Path(tempfile.gettempdir())
    return {p.name for p in temp.iterdir() if _UUID.match(p.name) and p.is_socket()}


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_restart_with_another_config_leaves_no_old_process_and_serves(host, capsys):
    old_pids = host.process_ids()
    assert _alive(old_pids)
    old_folders = _socket_folders()
    assert len(old_folders) == 1 and next(iter(old_folders.values())), old_folders  # the engine's sockets
    strays = _stray_sockets()
    restarted = vstream.engine(max_model_len=2048)
    assert restarted is host
    assert "restarting the engine (max_model_len: None → 2048)" in capsys.readouterr().out
    host.wait_ready(timeout=600)
    assert _alive(old_pids) == []
    assert host.info.max_model_len == 2048
    assert not set(host.process_ids()) & set(old_pids)
    assert host.generate("Hello", max_tokens=5).token_ids
    # the old engine's socket folder went with it; the new engine has its own; nothing in /tmp
    new_folders = _socket_folders()
    assert len(new_folders) == 1 and not set(new_folders) & set(old_folders)
    assert next(iter(new_folders.values()))
    assert _stray_sockets() - strays == set()


def test_unknown_engine_option_is_a_clear_error():
    with pytest.raises(vstream.EngineConfigError, match="did you mean 'max_model_len'"):
        vstream.engine(max_model_length=1024)


SCRIPT = r"""
import os, sys, time, psutil, vstream
host = vstream.engine(model=sys.argv[1])
try:
    host.wait_ready(timeout=600)
except vstream.EngineStartError as exc:
    print("START-FAILED:", exc)
    sys.exit(3)
print("PIDS", *host.process_ids(), flush=True)
print("SCRIPT", os.getpid(), flush=True)
stream = host.stream("The key to happiness is", max_tokens=8, seed=0)
print("TEXT", repr("".join(stream)), flush=True)
# no shutdown() here: exiting the interpreter must stop the engine by itself
"""


def test_plain_script_needs_no_main_guard_is_quiet_and_leaves_no_process(tmp_path):
    script = tmp_path / "script.py"  # top-level code, no `if __name__ == "__main__"` guard
    script.write_text(SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script), vstream.EMBEDDED_MODEL], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    pids = [int(p) for p in lines[0].split()[1:]]
    script_pid = int(lines[1].split()[1])
    assert pids and lines[2].startswith("TEXT '")
    # vLLM's INFO flood stays in the log file, not on the user's screen
    noise = [line for line in (run.stdout + run.stderr).splitlines() if "INFO" in line or "WARNING" in line]
    assert noise == []
    time.sleep(1)
    assert _alive(pids) == []
    assert ipc_folder.owned_by(script_pid) == []


def test_unknown_model_fails_fast_with_one_clear_message(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, str(script), "nobody/not-a-model"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert run.returncode == 3
    assert "START-FAILED: model 'nobody/not-a-model' is neither a local directory" in run.stdout
    assert time.monotonic() - started < 60
