"""On one CUDA GPU (device tool): the default engine's memory, sleep and the idle timer, and 16
kernels with default engines started at the same moment. Results go to ``$VSTREAM_RESULTS``."""

from __future__ import annotations

import json
import statistics
import textwrap
import threading
import time
from contextlib import ExitStack

import pytest
from jupyter_client.manager import start_new_kernel

import vstream
from vstream import memory

from .test_gpu_engine import GIB, _record, _settle, gpu_memory_used

pytestmark = [pytest.mark.gpu, pytest.mark.engine]

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def baseline():
    """GPU memory with no engine of this process (the session's shared one is stopped)."""
    vstream.shutdown()
    return _settle(gpu_memory_used(), timeout=20)[0]


def _ttft_ms(host, **sampling) -> float:
    stream = host.stream(PROMPT, chat=True, temperature=0, max_tokens=8, **sampling).wait()
    return stream.metrics.ttft_s * 1000


def test_default_engine_memory_sleep_and_automatic_wake(baseline):
    host = vstream.engine(wait=True, sleep_after=None)  # the timer is tested below, by itself
    info = host.info
    awake = gpu_memory_used()[0] - baseline
    assert info.can_sleep and info.kv_cache_bytes == (65_536 + memory.BLOCK_SLACK_TOKENS) * 23_040
    assert awake <= 3 * GIB, f"default engine holds {awake / GIB:.2f} GiB"
    greedy = host.generate(PROMPT, chat=True, temperature=0, max_tokens=16).text
    awake_ttfts = [_ttft_ms(host) for _ in range(8)]

    started = time.perf_counter()
    host.sleep()
    sleep_s = time.perf_counter() - started
    assert host.status().state == "asleep" and "asleep" in str(host.status())
    asleep = _settle([baseline], timeout=5)[0] - baseline
    freed = 1 - asleep / awake
    assert freed >= 0.60, f"sleep freed {freed:.0%} ({awake / GIB:.2f} → {asleep / GIB:.2f} GiB)"

    started = time.perf_counter()
    host.wake()
    wake_s = time.perf_counter() - started
    assert host.status().state == "ready"
    assert host.generate(PROMPT, chat=True, temperature=0, max_tokens=16).text == greedy

    # The idle timer puts it to sleep by itself; the next request wakes it by itself.
    after_wake_ttfts = []
    host.sleep_after_s = 1.0
    for _ in range(3):
        deadline = time.monotonic() + 10
        while not host.asleep and time.monotonic() < deadline:
            time.sleep(0.1)
        assert host.asleep, "the idle timer did not put the engine to sleep"
        after_wake_ttfts.append(_ttft_ms(host))
    host.sleep_after_s = None
    assert host.generate(PROMPT, chat=True, temperature=0, max_tokens=16).text == greedy
    awake_ttft = statistics.median(awake_ttfts)
    assert max(after_wake_ttfts) <= awake_ttft + 100, (awake_ttfts, after_wake_ttfts)
    # Driving AsyncLLM directly (notebook 05, the benchmark) wakes it and stops the idle timer,
    # which cannot see those requests.
    host.sleep_after_s = 60.0
    host.sleep()
    assert host.async_llm is not None and host.status().state == "ready" and host.sleep_after_s is None
    _record(
        "memory-sleep",
        {
            "engine_gib": awake / GIB,
            "asleep_gib": asleep / GIB,
            "freed_share": freed,
            "sleep_s": sleep_s,
            "wake_s": wake_s,
            "ttft_awake_ms": awake_ttfts,
            "ttft_after_automatic_wake_ms": after_wake_ttfts,
            "status": str(host.status()),
            "kv_cache_tokens": info.kv_cache_tokens,
            "weights_gib": info.weight_bytes / GIB,
            "kv_gib": info.kv_cache_bytes / GIB,
        },
    )
    vstream.shutdown()


KERNEL = textwrap.dedent(
    """
    import json, time, vstream
    started = time.perf_counter()
    host = vstream.engine(wait=True)
    ready = time.perf_counter() - started
    stream = host.stream("Once upon a time", max_tokens=64, ignore_eos=True, seed=1).wait()
    print("RESULT", json.dumps({"ready_s": ready, "tokens": len(stream.token_ids), "finish": stream.finish_reason,
                                "kv_tokens": host.info.kv_cache_tokens, "ttft_ms": stream.metrics.ttft_s * 1000}))
    """
)


def _result_of(client, msg_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = client.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"]["text"].startswith("RESULT"):
            return json.loads(msg["content"]["text"].split(" ", 1)[1])
        if msg["msg_type"] == "error":
            return {"error": "\n".join(msg["content"]["traceback"])[-2000:]}
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return {"error": "the cell ended without a result"}


@pytest.mark.parametrize("kernels", [16])
def test_many_kernels_start_at_once_on_one_gpu_and_give_it_all_back(baseline, kernels):
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], gpu_memory_used()[0] - baseline)
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    with ExitStack() as stack:
        clients = []
        for _ in range(kernels):
            manager, client = start_new_kernel(kernel_name="python3", startup_timeout=120)
            stack.callback(manager.shutdown_kernel, now=False)
            stack.callback(client.stop_channels)
            clients.append(client)
        runs = [client.execute(KERNEL) for client in clients]  # every engine starts at this moment
        results = [_result_of(c, m, 480) for c, m in zip(clients, runs, strict=True)]
        all_done_s = time.perf_counter() - started
    stop.set()
    watcher.join()
    after = _settle([baseline], timeout=60)[0] - baseline
    failures = [r for r in results if "error" in r or r.get("tokens") != 64]
    _record(
        f"memory-{kernels}-kernels",
        {
            "kernels": kernels,
            "failures": len(failures),
            "failure_texts": [r.get("error", "")[-500:] for r in failures],
            "ready_s": sorted(r.get("ready_s", -1) for r in results),
            "ttft_ms": sorted(r.get("ttft_ms", -1) for r in results),
            "kv_tokens": sorted({r.get("kv_tokens") for r in results}, key=str),
            "peak_gib": peak[0] / GIB,
            "after_gib": after / GIB,
            "wall_s": all_done_s,
        },
    )
    assert failures == [], failures
    # Nobody mis-sized anybody: every engine got the same default budget.
    assert {r["kv_tokens"] for r in results} == {results[0]["kv_tokens"]}
    assert results[0]["kv_tokens"] >= memory.DEFAULT_MAX_NUM_SEQS * memory.NOTEBOOK_CONTEXT_TOKENS
    assert after < 0.5 * GIB, f"{after / GIB:.2f} GiB still held after the kernels ended"
