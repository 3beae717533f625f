"""``vllm serve`` with the engine's own settings on 127.0.0.1 and one ``openai`` client (as a
notebook keeps one) on a loop of its own: what a notebook user would pick instead of vstream. It
runs beside the vstream engine, so its runs pair with raw runs like every path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

from vstream import options

from .paths import PROMPT, Records
from .records import StreamRecord


def command(engine_args: dict[str, Any], port: int) -> list[str]:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(engine_args["model"])]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    for key, value in engine_args.items():
        flag = "--" + key.replace("_", "-")
        if key == "model" or value is None or value is False:
            continue
        cmd += [flag] if value is True else [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    return cmd


class Server:
    def __init__(self, engine_args: dict[str, Any], timeout: float) -> None:
        from openai import AsyncOpenAI

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.name = str(engine_args.get("served_model_name") or engine_args["model"])
        self.log = tempfile.NamedTemporaryFile(prefix="bench-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.sockets = tempfile.mkdtemp(prefix="bench-serve-")  # vLLM's ZMQ socket files go with it
        env = {**os.environ, "VLLM_RPC_BASE_PATH": self.sockets}
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            command(engine_args, port), stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="bench-openai", daemon=True).start()
        try:
            self._wait_health(port, timeout)
        except Exception as exc:
            self.close()
            raise RuntimeError(f"{exc}; log {self.log.name}") from exc
        self.ready_s = time.perf_counter() - t0

        async def make() -> Any:
            return AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", max_retries=0, timeout=timeout)

        self.client = self._call(make(), timeout)

    def _wait_health(self, port: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with code {self.proc.returncode}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"vllm serve not healthy after {timeout} s")

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, n: int, sampling: dict[str, Any], timeout: float, start: float | None = None) -> Records:
        body = options.server_body(sampling)
        named = {
            k: body.pop(k)
            for k in ("max_tokens", "temperature", "top_p", "presence_penalty", "frequency_penalty")
            if k in body
        }

        async def one(start: float) -> StreamRecord:
            rec, pieces = StreamRecord(start), []
            stream = await self.client.completions.create(
                model=self.name,
                prompt=PROMPT,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=body,
                **named,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].text:
                    rec.last = time.perf_counter()
                    rec.first = rec.first or rec.last
                    pieces.append(chunk.choices[0].text)
                if getattr(chunk, "usage", None) is not None:
                    rec.tokens = chunk.usage.completion_tokens
            rec.done, rec.text = time.perf_counter(), "".join(pieces)
            return rec

        async def batch() -> list[StreamRecord]:
            t = start or time.perf_counter()
            return list(await asyncio.gather(*(one(t) for _ in range(n))))

        cpu = time.process_time()
        records = self._call(batch(), timeout)
        return records, time.process_time() - cpu

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            with contextlib.suppress(Exception):
                self._call(self.client.close(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()
