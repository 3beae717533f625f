"""Which CPU cores an engine's worker computes on, so that engines on one machine do not share one.

vLLM's CPU backend binds its worker's OpenMP threads to fixed cores: all of NUMA node 0's cores
but the last, which it leaves to the scheduler (``VLLM_CPU_OMP_THREADS_BIND=auto``). Every engine
picks the same cores, because none knows of the others. On a 2-core machine that puts the workers
of two notebook kernels on core 0 while core 1 idles, and the second kernel's first token waited
until the first kernel's answer had ended (measured: 0.4 s after it, twice). So the first engine
keeps vLLM's choice and each later one is bound to the cores the others use least.

An engine claims its cores with a file named after its process, written under a lock so that two
kernels starting at the same moment see each other; a claim whose process has ended does not
count. vLLM workers without a claim (a ``vllm serve``, a script without vstream) count by their
affinity.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil

_VARIABLE = "VLLM_CPU_OMP_THREADS_BIND"
_WORKER = "VLLM::Worker"  # the process title vLLM gives its workers


def choose(allowed: list[int], load: dict[int, int]) -> list[int] | None:
    """The cores for a new engine's worker: None (vLLM's own choice) when no other engine computes
    on these cores; else the ones nobody uses if there are any, or the least used one."""
    if not any(load.get(core, 0) for core in allowed):
        return None
    idle = [core for core in allowed if not load.get(core, 0)]
    if idle:
        return idle
    least = min(load.get(core, 0) for core in allowed)
    return [next(core for core in allowed if load.get(core, 0) == least)]


def vllm_default(allowed: list[int]) -> list[int]:
    """What vLLM's automatic binding takes (all but the last core), to claim before it has run."""
    return allowed[:-1] if len(allowed) > 1 else list(allowed)


@contextlib.contextmanager
def claimed(folder: Path | None = None) -> Iterator[None]:
    """While an engine is being built: its worker is bound to the cores chosen above (unless the
    user set the binding), and the claim stays until ``release`` is called."""
    if os.environ.get(_VARIABLE):
        yield
        return
    folder = folder or _claims_folder()
    allowed = sorted(os.sched_getaffinity(0))
    with _locked(folder):
        cores = choose(allowed, _load(folder))
        _write_claim(folder, cores if cores is not None else vllm_default(allowed))
    if cores is None:
        yield
        return
    os.environ[_VARIABLE] = ",".join(map(str, cores))
    try:
        yield
    finally:
        os.environ.pop(_VARIABLE, None)


def record(worker_pids: Iterable[int], folder: Path | None = None) -> list[int] | None:
    """After the start: the claim becomes the cores the worker was really bound to."""
    for pid in worker_pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if process.name().startswith(_WORKER):
                cores = sorted(process.cpu_affinity())
                folder = folder or _claims_folder()
                with _locked(folder):
                    _write_claim(folder, cores)
                return cores
    return None


def release(folder: Path | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        (folder or _claims_folder()).joinpath(str(os.getpid())).unlink()


def _load(folder: Path) -> dict[int, int]:
    """How many engines compute on each core: live claims, then unclaimed vLLM workers."""
    load: collections.Counter[int] = collections.Counter()
    claimants: set[int] = set()
    for path in folder.iterdir():
        if not path.name.isdigit() or int(path.name) == os.getpid():
            continue
        if not psutil.pid_exists(int(path.name)):
            path.unlink(missing_ok=True)
            continue
        with contextlib.suppress(OSError, ValueError):
            load.update(int(core) for core in path.read_text().split(",") if core)
            claimants.add(int(path.name))
    load.update(_unclaimed_worker_cores(claimants))
    return load


def _unclaimed_worker_cores(claimants: set[int]) -> Iterator[int]:
    """The cores of vLLM workers on this machine that no claim accounts for."""
    for process in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if not (process.info["name"] or "").startswith(_WORKER):
                continue
            if claimants & {p.pid for p in process.parents()}:
                continue  # counted by its engine's claim
            yield from process.cpu_affinity()


def _write_claim(folder: Path, cores: list[int]) -> None:
    path = folder / str(os.getpid())
    partial = path.with_suffix(".partial")
    partial.write_text(",".join(map(str, cores)))
    partial.replace(path)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _claims_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"vstream-cores-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder
