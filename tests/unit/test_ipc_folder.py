"""The engine's socket folder: made per engine, left to the user when they chose one, swept when
its kernel is gone. (That vLLM really puts its sockets there is checked in tests/engine.)"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from vstream import ipc_folder


def test_a_folder_per_engine_named_after_this_process_and_removed():
    first, second = ipc_folder.create(), ipc_folder.create()
    try:
        assert first != second and first.is_dir() and second.is_dir()
        assert set(ipc_folder.owned_by(os.getpid())) >= {first, second}
    finally:
        ipc_folder.remove(first)
        ipc_folder.remove(second)
    assert not first.exists() and not second.exists()


def test_the_variable_points_there_only_while_the_engine_starts(monkeypatch):
    monkeypatch.delenv("VLLM_RPC_BASE_PATH", raising=False)
    folder = ipc_folder.create()
    try:
        with ipc_folder.sockets_in(folder):
            assert os.environ["VLLM_RPC_BASE_PATH"] == str(folder)
        assert "VLLM_RPC_BASE_PATH" not in os.environ
    finally:
        ipc_folder.remove(folder)


def test_a_place_the_user_chose_is_left_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("VLLM_RPC_BASE_PATH", str(tmp_path))
    assert ipc_folder.create() is None
    with ipc_folder.sockets_in(None):
        assert os.environ["VLLM_RPC_BASE_PATH"] == str(tmp_path)


def test_folders_of_dead_processes_are_swept_and_living_ones_kept():
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    temp = Path(tempfile.gettempdir())
    orphan = temp / f"{ipc_folder.PREFIX}{dead_pid}-test"
    orphan.mkdir()
    (orphan / "0f0e-socket").write_text("")
    mine = ipc_folder.create()  # sweeps first, then makes this one
    try:
        assert not orphan.exists()
        assert mine.exists()
        ipc_folder.sweep_orphans()
        assert mine.exists()  # this process is alive
    finally:
        ipc_folder.remove(mine)


def test_a_temp_folder_too_long_for_a_socket_address_leaves_the_place_to_vllm(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 80)  # pytest's own tmp_path is ~60 bytes already
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert ipc_folder.create() is None  # ZMQ would refuse "<folder>/<uuid4>" as too long
    assert list(deep.iterdir()) == []  # and nothing is left behind
