"""What the machine is and how much memory the engine holds, read from outside the engine.

On CUDA the numbers come from ``nvidia-smi`` (a process-independent view, so a leak in any
process shows); on CPU from psutil: the engine's child processes' RSS and the system's
available memory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

import psutil

from vstream.config import cpu_model

GIB = 1024**3


def nvidia_smi(query: str) -> list[str]:
    """One line per GPU for ``--query-gpu=QUERY``; [] if the tool is missing or fails."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def device_name(device: str) -> str:
    if device == "cuda":
        names = nvidia_smi("name")
        return (
            f"{names[0]}" + (f" (x{len(names)} visible)" if len(names) > 1 else "")
            if names
            else "CUDA GPU (nvidia-smi gave no name)"
        )
    ram = psutil.virtual_memory().total / GIB
    return f"{cpu_model()}, {os.cpu_count()} logical cores, {ram:.0f} GiB RAM"


def _tree_rss(pids: Sequence[int]) -> tuple[int, int]:
    """(RSS bytes, processes alive) of ``pids`` and their descendants."""
    seen: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            continue
        seen[pid] = proc
        try:
            for child in proc.children(recursive=True):
                seen[child.pid] = child
        except psutil.Error:
            pass
    total = 0
    alive = 0
    for proc in seen.values():
        try:
            total += proc.memory_info().rss
            alive += 1
        except psutil.Error:
            pass
    return total, alive


def memory_point(label: str, device: str, engine_pids: Sequence[int] = ()) -> dict[str, Any]:
    """A snapshot: GPU memory used (cuda) or engine RSS + available memory (both devices)."""
    rss, alive = _tree_rss(engine_pids)
    point: dict[str, Any] = {
        "label": label,
        "engine_pids": list(engine_pids),
        "engine_processes_alive": alive,
        "engine_rss_gib": rss / GIB,
        "this_process_rss_gib": psutil.Process().memory_info().rss / GIB,
        "system_available_gib": psutil.virtual_memory().available / GIB,
    }
    if device == "cuda":
        used = nvidia_smi("memory.used")
        try:
            point["gpu_used_gib"] = float(used[0]) / 1024 if used else None  # MiB → GiB
        except ValueError:
            point["gpu_used_gib"] = None
    return point
