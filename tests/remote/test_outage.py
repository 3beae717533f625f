"""The server goes down mid-stream, then comes back: clear errors, then service, no restart."""

from __future__ import annotations

import time

import pytest

from vstream.backends.remote import ServerUnavailableError

pytestmark = [pytest.mark.engine, pytest.mark.remote]


def test_server_down_mid_stream_is_a_clear_error_and_the_next_request_after_it_works(
    remote_host, server
):
    stream = remote_host.stream(
        "Write a very long story about a lighthouse:", ignore_eos=True, max_tokens=1500
    )
    deadline = time.monotonic() + 60
    while stream.metrics.tokens < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    kept = stream.metrics.tokens
    assert kept >= 3

    server.stop(graceful=False)  # a crash, not a polite shutdown
    with pytest.raises(ServerUnavailableError) as info:
        stream.wait(30)
    message = str(info.value)
    assert "lost the connection" in message and server.url in message and "mid-stream" in message
    assert stream.finish_reason == "error" and stream.metrics.tokens >= kept and stream.text

    # While it is down: refused at once, in the caller's thread, with the address and the cause.
    with pytest.raises(ServerUnavailableError, match="connection refused"):
        remote_host.stream("Hello", max_tokens=3)
    assert remote_host.state == "ready" and remote_host.unfinished_requests() == 0

    server.start()
    after = remote_host.stream("Hello", max_tokens=3, ignore_eos=True).wait(60)
    assert after.finish_reason == "length" and after.metrics.tokens == 3
