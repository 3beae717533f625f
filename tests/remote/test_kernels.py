"""Many real kernels (jupyter_client) streaming from one server at once, as a classroom does."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

pytestmark = [pytest.mark.engine, pytest.mark.remote, pytest.mark.kernel]

KERNELS = 4
STREAMS_PER_KERNEL = 5
TOKENS = 24

# One kernel uses the magic, the others the function; all wait for `go` so the streams overlap.
STUDENT = """
import json, os, time
{connect}
host = vstream.engine()
print(repr(host)); print(host.status())
open({go!r} + ".{kernel}", "w").close()
while not os.path.exists({go!r}):
    time.sleep(0.02)
started = time.time()
streams = [host.stream(f"Student {kernel} asks question {{i}}:", seed=i, max_tokens={tokens}, ignore_eos=True)
           for i in range({per_kernel})]
for s in streams:
    s.wait(300)
print("RESULT " + json.dumps({{"kernel": {kernel}, "started": started, "ended": time.time(),
    "tokens": [s.metrics.tokens for s in streams], "ids": [len(s.token_ids) for s in streams],
    "reasons": [s.finish_reason for s in streams], "ttft": [s.metrics.ttft_s for s in streams]}}))
"""
BY_FUNCTION = "import vstream\nvstream.connect()"
BY_MAGIC = (
    "import vstream\nget_ipython().config.VStreamMagics.autostart = False\n"
    "get_ipython().run_line_magic('load_ext', 'vstream')\n"
    "get_ipython().run_line_magic('vstream', 'connect')"
)


def _run(client, code: str, timeout: float = 300) -> tuple[str, list[dict]]:
    out: list[str] = []
    errors: list[dict] = []

    def hook(msg):
        content = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(content["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            out.append(content["data"].get("text/plain", ""))
        elif msg["msg_type"] == "error":
            errors.append(content)

    client.execute_interactive(code, output_hook=hook, timeout=timeout)
    return "".join(out), errors


def test_twenty_streams_from_four_kernels_all_complete(server, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VSTREAM_BASE_URL", server.url)
    monkeypatch.setenv("VSTREAM_API_KEY", server.api_key)
    go = tmp_path / "go"
    kernels = [start_new_kernel(kernel_name="python3", startup_timeout=120) for _ in range(KERNELS)]
    results: dict[int, tuple[str, list[dict]]] = {}
    try:
        threads = []
        for k, (_manager, client) in enumerate(kernels):
            code = STUDENT.format(
                connect=BY_MAGIC if k == 0 else BY_FUNCTION,
                go=str(go),
                kernel=k,
                tokens=TOKENS,
                per_kernel=STREAMS_PER_KERNEL,
            )
            thread = threading.Thread(
                target=lambda k=k, c=client, code=code: results.__setitem__(k, _run(c, code))
            )
            thread.start()
            threads.append(thread)
        # Release every kernel at once, when all have connected; watch the server's load.
        deadline = time.monotonic() + 180
        while (
            not all(Path(f"{go}.{k}").exists() for k in range(KERNELS))
            and time.monotonic() < deadline
        ):
            assert all(t.is_alive() for t in threads), results
            time.sleep(0.1)
        started = time.monotonic()
        go.touch()
        peak = 0.0
        while any(t.is_alive() for t in threads):
            metrics = server.metrics()
            peak = max(
                peak,
                metrics.get("vllm:num_requests_running", 0)
                + metrics.get("vllm:num_requests_waiting", 0),
            )
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        for t in threads:
            t.join()
    finally:
        for manager, client in kernels:
            client.stop_channels()
            manager.shutdown_kernel(now=True)

    reports = []
    for k in range(KERNELS):
        text, errors = results[k]
        assert not errors, errors
        assert server.api_key not in text  # repr, status and connect's message hide the key
        assert "remote" in text and f"127.0.0.1:{server.port}" in text
        reports.append(json.loads(text.split("RESULT ", 1)[1]))
    assert all(r["tokens"] == [TOKENS] * STREAMS_PER_KERNEL == r["ids"] for r in reports)
    assert all(set(r["reasons"]) == {"length"} for r in reports)
    assert peak >= KERNELS * STREAMS_PER_KERNEL // 2, (
        f"at most {peak} requests were on the server at once"
    )
    print(
        f"\n{KERNELS * STREAMS_PER_KERNEL} streams x {TOKENS} tokens from {KERNELS} kernels: {elapsed:.1f} s, "
        f"peak {peak:.0f} on the server, TTFT max {max(max(r['ttft']) for r in reports):.2f} s"
    )
