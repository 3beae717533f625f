"""What the machine is: the GPU's name from ``nvidia-smi``, the CPU's from ``/proc/cpuinfo``."""

from __future__ import annotations

import os
import shutil
import subprocess

import psutil

from vstream.config import cpu_model


def nvidia_smi(query: str) -> list[str]:
    """One line per GPU for ``--query-gpu=QUERY``; [] if the tool is missing or fails."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def device_name(device: str) -> str:
    if device == "cuda":
        names = nvidia_smi("name")
        return names[0] if names else "CUDA GPU"
    return f"{cpu_model()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
