"""The engine dies mid-stream, or its kernel ends: clear errors, a working restart, no orphans."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import KernelManager

import vstream
from vstream import ipc_folder

pytestmark = [pytest.mark.engine, pytest.mark.reliability]


def _alive(pids):
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_killing_the_engine_core_mid_stream_fails_clearly_and_restart_recovers(host):
    old = host.process_ids()
    stream = host.stream("Tell me a very long story:", max_tokens=2000, ignore_eos=True)
    while stream.metrics.tokens < 5:
        time.sleep(0.01)
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(vstream.EngineDeadError) as info:
        stream.wait(timeout=60)
    assert "the engine died" in str(info.value) and "exited" in str(info.value)
    assert stream.finish_reason == "error" and stream.text  # the partial text is kept
    status = host.status()
    assert status.state == "failed"
    assert "the engine died" in status.error and "restart" in status.error
    with pytest.raises(vstream.VStreamError):
        host.stream("Hello", max_tokens=3)
    host.restart()
    host.wait_ready(timeout=600)
    assert host.generate("Hello", max_tokens=3).token_ids
    time.sleep(1)
    assert _alive(old) == []
    assert not set(host.process_ids()) & set(old)


KERNEL_CODE = textwrap.dedent(
    """
    import vstream
    host = vstream.engine(wait=True)
    print("PIDS", *host.process_ids())
    """
)


def _kernel_with_engine():
    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    client = km.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    pids = []

    def collect(msg):
        if msg["msg_type"] == "stream" and "PIDS" in msg["content"]["text"]:
            pids.extend(int(p) for p in msg["content"]["text"].split()[1:])

    reply = client.execute_interactive(KERNEL_CODE, timeout=600, output_hook=collect)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert pids
    return km, client, pids


@pytest.fixture
def private_temp(monkeypatch):
    """A temp folder for this test and its kernel alone: any engine starting elsewhere on the
    machine sweeps dead kernels' socket folders in the shared /tmp, which would hide whether
    the folder outlived its kernel. Short, as pytest's tmp_path is not: a ZMQ ipc path must fit
    in a Unix socket address (107 bytes)."""
    folder = tempfile.mkdtemp(prefix="vs-", dir="/tmp")
    monkeypatch.setenv("TMPDIR", folder)
    monkeypatch.setattr(tempfile, "tempdir", folder)
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("how", ["shutdown", "hard restart"])
def test_ending_a_kernel_leaves_no_engine_process(how, private_temp):
    km, client, pids = _kernel_with_engine()
    kernel_pid = km.provisioner.process.pid
    assert _alive(pids)
    assert ipc_folder.owned_by(kernel_pid)  # the engine's socket folder
    client.stop_channels()
    if how == "shutdown":
        km.shutdown_kernel(now=False)
    else:
        km.restart_kernel(now=True)  # SIGKILL: no atexit, only the child's parent-death signal
    deadline = time.monotonic() + 30
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    waited = 30 - (deadline - time.monotonic())
    print(f"\n{how}: kernel {kernel_pid}, engine processes {pids} gone after {waited:.1f} s")
    assert _alive(pids) == []
    deadline = time.monotonic() + 30
    while _alive([kernel_pid]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive([kernel_pid]) == []
    if how == "hard restart":  # killed before any exit handler: the next engine start sweeps it
        assert ipc_folder.owned_by(kernel_pid)
        ipc_folder.sweep_orphans()
    assert ipc_folder.owned_by(kernel_pid) == []  # the engine's socket folder is gone too
    if how == "hard restart":
        km.shutdown_kernel(now=True)


def test_engine_outlives_a_cell_interrupt_signal(host):
    # The notebook's stop button sends SIGINT to the kernel's process group; the engine is not in it.
    pgid = os.getpgid(os.getpid())
    for pid in host.process_ids():
        assert os.getpgid(pid) != pgid
