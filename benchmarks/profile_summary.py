"""``python -m benchmarks.profile_summary PROFILE.txt``: where each thread's time went.

Reads py-spy's ``--format raw`` output (collapsed stacks, recorded with ``--threads
--subprocesses --idle``) and prints, per process and thread, the share of samples and the
functions that take them: own time (the innermost frame) and, for vstream's and the benchmark's
own code, time including callees. Answers "is the engine's loop thread busy in vstream or in
vLLM?" without a flame-graph viewer.
"""

from __future__ import annotations

import collections
import re
import sys
from collections.abc import Iterable

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
OURS = ("vstream/", "benchmarks/")


def parse(lines: Iterable[str]) -> collections.Counter[tuple[str, ...]]:
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    for line in lines:
        line = line.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def _name(frame: str) -> str:
    """``func (path/to/file.py:12)`` → ``func (file.py)``: lines differ, functions are what we want."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match['func']} ({match['file'].rsplit('/', 1)[-1]})"


def _split(stack: tuple[str, ...]) -> tuple[str, str, tuple[str, ...]]:
    """(process, thread, frames): py-spy puts the process and the thread first when asked to."""
    # With --subprocesses a child's stacks start with every ancestor's process frame: keep the last.
    depth = next((i for i, frame in enumerate(stack) if not frame.startswith("process ")), len(stack))
    process, rest = (stack[depth - 1] if depth else ""), stack[depth:]
    thread = rest[0] if rest and rest[0].startswith("thread ") else ""
    return process[:90], thread, rest[1:] if thread else rest


def summarise(stacks: collections.Counter[tuple[str, ...]], top: int = 12, min_share: float = 0.01) -> list[str]:
    total = sum(stacks.values()) or 1
    by_thread: dict[tuple[str, str], collections.Counter[tuple[str, ...]]]
    by_thread = collections.defaultdict(collections.Counter)
    for stack, count in stacks.items():
        process, thread, frames = _split(stack)
        by_thread[(process, thread)][frames] += count
    lines = [f"{total} samples in {len(by_thread)} threads"]
    for (process, thread), frames in sorted(by_thread.items(), key=lambda kv: -sum(kv[1].values())):
        samples = sum(frames.values())
        if samples / total < min_share:
            continue
        own: collections.Counter[str] = collections.Counter()
        inclusive: collections.Counter[str] = collections.Counter()
        for stack, count in frames.items():
            if stack:
                own[_name(stack[-1])] += count
            for name in {_name(f) for f in stack if any(mark in f for mark in OURS)}:
                inclusive[name] += count
        lines.append("")
        lines.append(f"== {process} {thread}: {samples} samples ({100 * samples / total:.1f}%)")
        lines.append("  own time:")
        lines += [f"    {100 * c / samples:5.1f}%  {name}" for name, c in own.most_common(top)]
        if inclusive:
            lines.append("  vstream/benchmark code, with callees:")
            lines += [f"    {100 * c / samples:5.1f}%  {name}" for name, c in inclusive.most_common(top)]
    return lines


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit(__doc__.split("\n\n")[0])
    with open(args[0], encoding="utf-8", errors="replace") as fh:
        print("\n".join(summarise(parse(fh))))


if __name__ == "__main__":
    main()
