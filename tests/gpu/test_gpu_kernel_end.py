"""Ending a Jupyter kernel that holds a GPU engine gives the GPU memory back (device tool, one GPU).

A shutdown runs the kernel's atexit (vstream stops the engine); a hard restart SIGKILLs the kernel,
so only the engine's parent-death signal (``spawning``) can free the GPU. Run with ``pytest -m gpu``.
"""

from __future__ import annotations

import dataclasses
import textwrap
import time

import pytest
from jupyter_client.manager import KernelManager

import vstream
from reliability.test_engine_death import _alive

from .test_gpu_engine import GIB, _record, _settle, gpu_memory_used

pytestmark = [pytest.mark.gpu, pytest.mark.engine, pytest.mark.reliability]

KERNEL_CODE = textwrap.dedent(
    """
    import vstream
    h = vstream.engine(max_model_len=2048, wait=True)
    assert h.generate("Hello", max_tokens=8).token_ids
    print("PIDS", *h.process_ids())
    """
)


@pytest.fixture(scope="module")
def shared_engine_set_aside():
    """The session's shared engine (tests/conftest.py) would blur the GPU baseline: stop it, then bring it back."""
    host = vstream.current()
    config = host.config if host is not None and host.state != "stopped" else None
    vstream.shutdown()
    yield
    vstream.shutdown()
    if config is not None:
        vstream.engine(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)}, wait=True)


@pytest.mark.parametrize("how", ["shutdown", "restart"])
def test_ending_a_kernel_gives_its_gpu_memory_back(how, shared_engine_set_aside):
    before = gpu_memory_used()
    # The kernel inherits this process's environment and, for the "python" kernelspec, its interpreter.
    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    client = km.client()
    pids: list[int] = []
    try:
        client.start_channels()
        client.wait_for_ready(timeout=120)

        def collect(msg):
            if msg["msg_type"] == "stream" and "PIDS" in msg["content"]["text"]:
                pids.extend(int(p) for p in msg["content"]["text"].split()[1:])

        reply = client.execute_interactive(KERNEL_CODE, timeout=600, output_hook=collect)
        assert reply["content"]["status"] == "ok", reply["content"]
        loaded = gpu_memory_used()
        gpu = max(range(len(before)), key=lambda i: loaded[i] - before[i])  # whichever GPU the kernel got
        assert pids and _alive(pids)
        assert loaded[gpu] - before[gpu] > GIB // 2, (before, loaded)
        client.stop_channels()
        ended = time.monotonic()
        if how == "shutdown":
            km.shutdown_kernel(now=False)
        else:
            km.restart_kernel(now=True)  # SIGKILL: no atexit, no vstream.shutdown()
        after = _settle(before, timeout=60)
        while _alive(pids) and time.monotonic() - ended < 60:
            time.sleep(0.2)
        release_s = time.monotonic() - ended
    finally:
        client.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    print(
        f"\nkernel {how}: GPU {gpu} {before[gpu] / GIB:.1f} GiB before, {loaded[gpu] / GIB:.1f} loaded, "
        f"{after[gpu] / GIB:.1f} after; engine processes {pids}, {len(_alive(pids))} left after {release_s:.1f} s"
    )
    assert _alive(pids) == []
    assert all(a - b <= GIB // 2 for a, b in zip(after, before, strict=True)), (before, after)
    _record(
        f"kernel-end-{how}",
        {
            "how": how, "gpu": gpu, "processes": len(pids), "release_s": release_s,
            "gpu_used_before_gib": before[gpu] / GIB, "gpu_used_loaded_gib": loaded[gpu] / GIB,
            "gpu_used_after_gib": after[gpu] / GIB,
        },
    )
