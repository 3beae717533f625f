"""Which cores a new engine's CPU worker is bound to (vstream.cpu_cores): the choice itself, and
claims made by real processes in a folder of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vstream import cpu_cores


@pytest.mark.parametrize(
    ("allowed", "load", "expected"),
    [
        ([0, 1], {}, None),  # nobody else: vLLM's own binding
        ([0, 1], {0: 1}, [1]),  # the second engine on a 2-core machine
        ([0, 1], {0: 1, 1: 1}, [0]),  # a third: the least used, the first of equals
        ([0, 1], {0: 2, 1: 1}, [1]),
        (list(range(16)), {c: 1 for c in range(15)}, [15]),  # what nobody uses, rather than sharing
        ([0, 1, 2, 3], {0: 1, 1: 1}, [2, 3]),
        ([2, 3], {0: 1, 1: 1}, None),  # others on cores this process may not use do not count
    ],
)
def test_choice(allowed, load, expected):
    assert cpu_cores.choose(allowed, load) == expected


def test_vllm_default_leaves_the_last_core_to_the_scheduler():
    assert cpu_cores.vllm_default([0, 1]) == [0]
    assert cpu_cores.vllm_default([5]) == [5]


def _claims(folder) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir() if p.name.isdigit()}


def test_a_second_engine_is_bound_next_to_a_live_claim_and_a_dead_claim_is_dropped(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    # Engines that other programs run on this machine meanwhile are not this test's claims.
    monkeypatch.setattr(cpu_cores, "_unclaimed_worker_cores", lambda claimants: iter(()))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        (tmp_path / str(other.pid)).write_text("0")
        (tmp_path / str(dead.pid)).write_text("1")
        with cpu_cores.claimed(tmp_path):
            assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "1"
        assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ
        assert _claims(tmp_path) == {str(other.pid): "0", str(os.getpid()): "1"}
        cpu_cores.release(tmp_path)
        assert _claims(tmp_path) == {str(other.pid): "0"}
    finally:
        other.kill()
        other.wait()
    with cpu_cores.claimed(tmp_path):  # its process ended: its claim no longer counts
        assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ
    assert _claims(tmp_path) == {str(os.getpid()): "0"}


def test_a_binding_the_user_set_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    with cpu_cores.claimed(tmp_path):
        assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert _claims(tmp_path) == {}
