"""One-off A/B of how vLLM's outputs reach a Stream, in one process and one engine, alternating:
``generate`` (the request's own task iterates AsyncLLM.generate(), as before 2026-12-02) against
``push`` (backends/feeding.py: the output handler feeds the Stream through the collector's put).

    python scripts/feeding-ab.py 1x128,8x128,64x128 10 [graphs]

Prints the process's CPU per token and tok/s for each, and push minus generate per round.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import vstream
from vstream.backends import feeding, local
from vstream.streaming import CANCELLED

PUSH = local.LocalBackend.run


async def generate_run(self, stream, prompt, sampling):
    """The run() this change replaced (cancellation and errors trimmed: not exercised here)."""
    want = sampling.get("logprobs") is not None
    try:
        params = self._params(sampling)
        async for output in self._engine.generate({"prompt_token_ids": prompt.token_ids}, params, stream.request_id):
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            stream._feed(completion.text, ids, feeding._token_logprobs(completion.logprobs, ids) if want else None)
            if output.finished:
                stream._finish(completion.finish_reason or "stop", stop_reason=completion.stop_reason)
    except asyncio.CancelledError:
        stream._finish(CANCELLED)


def once(host, kind: str, n: int, tokens: int) -> tuple[float, float]:
    local.LocalBackend.run = generate_run if kind == "generate" else PUSH
    specs = [{"prompt": f"Story {i}:", "max_tokens": tokens, "ignore_eos": True} for i in range(n)]
    cpu, wall = time.process_time(), time.perf_counter()
    streams = host.stream_many(specs)
    for stream in streams:
        stream.wait(600)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = sum(s.metrics.tokens for s in streams)
    return cpu / done * 1e6, done / wall


def main() -> None:
    sizes = [tuple(int(x) for x in size.split("x")) for size in sys.argv[1].split(",")]
    rounds = int(sys.argv[2])
    graphs = sys.argv[3:] == ["graphs"]
    host = vstream.engine(wait=True, sleep_after=None, enforce_eager=not graphs)
    print(host)
    for n, tokens in sizes:
        results: dict[str, list[tuple[float, float]]] = {"generate": [], "push": []}
        once(host, "generate", n, tokens), once(host, "push", n, tokens)  # unrecorded
        for r in range(rounds):
            for kind in ("generate", "push") if r % 2 == 0 else ("push", "generate"):
                results[kind].append(once(host, kind, n, tokens))
        for kind, runs in results.items():
            cpu = statistics.median(c for c, _ in runs)
            rate = statistics.median(t for _, t in runs)
            print(f"{n}x{tokens} {kind:8}: CPU {cpu:7.1f} us/token, {rate:8.1f} tok/s (medians of {rounds})")
        diff = [p[0] - g[0] for p, g in zip(results["push"], results["generate"], strict=True)]
        print(f"{n}x{tokens} push - generate, us/token per round: {[round(d, 1) for d in diff]}; "
              f"median {statistics.median(diff):+.1f}")  # fmt: skip
    host.shutdown()


if __name__ == "__main__":
    main()
