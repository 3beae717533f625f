"""``python -m vstream.demo``: the seed example's three prompts, streamed token by token.

The same thing vLLM's ``async_llm_streaming.py`` does, through vstream: no ``asyncio.run``,
no engine plumbing, vLLM's logs kept out of the way.
"""

from __future__ import annotations

import argparse
import sys
import time

import vstream

PROMPTS = (
    "The future of artificial intelligence is",
    "In a galaxy far, far away",
    "The key to happiness is",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=vstream.EMBEDDED_MODEL)
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--verbose", action="store_true", help="show vLLM's own log lines")
    args = parser.parse_args(argv)

    host = vstream.engine(model=args.model, verbose=args.verbose)
    last_phase = ""
    while (status := host.status()).state == "starting":
        if status.phase != last_phase:
            print(f"vstream: engine {status}", flush=True)
            last_phase = status.phase
        time.sleep(0.2)
    try:
        info = host.wait_ready()
    except vstream.VStreamError as exc:
        print(f"vstream: {exc}", file=sys.stderr)
        return 1
    print(f"vstream: engine ready: {info.describe()}")
    try:
        for i, prompt in enumerate(PROMPTS, 1):
            print(f"\n[{i}/{len(PROMPTS)}] {prompt}", end="", flush=True)
            stream = host.stream(prompt, max_tokens=args.max_tokens, temperature=0.8, top_p=0.95, seed=42)
            for delta in stream:
                print(delta, end="", flush=True)
            print(f"\n    -- {stream.metrics.summary()}, finish: {stream.finish_reason}")
    finally:
        vstream.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
