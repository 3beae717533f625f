"""How the engine's child processes are started from a kernel or a script.

vLLM starts its EngineCore with ``multiprocessing`` (spawn, see ``backends.local``). Four things
about a plain spawn are wrong for vstream's users, and all are fixed only for the instant of
each ``Process.start()`` while an engine is being built:

* the child inherits fds 1 and 2; ipykernel forwards those to the notebook, so vLLM's progress
  bars and C-level prints would flood the cell. They go to the engine log instead.
* spawn re-runs the parent's ``__main__`` script in the child, which breaks any script that
  calls vstream at top level without an ``if __name__ == "__main__"`` guard. The EngineCore
  needs nothing from the user's script, so the script's path is hidden from it.
* a kernel interrupt (the notebook's stop button) sends SIGINT to the kernel's whole process
  group, and vLLM's EngineCore exits on SIGINT: one Ctrl-C would kill the engine. The child
  moves to a session of its own, and asks Linux to send it SIGTERM when the thread that
  started it ends (so a killed kernel leaves no engine behind); if vLLM's shutdown has not
  ended it a few seconds after the kernel died, the child kills its own session.
* the first spawn also starts multiprocessing's resource tracker, which ignores SIGTERM. In the
  kernel's process group it stalls ipykernel's shutdown (see ``_spawn_in_own_session``), so
  every process spawned here starts in a session of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing.process
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

_lock = threading.Lock()


@contextlib.contextmanager
def engine_children(log: Path | None) -> Iterator[None]:
    """While active, processes started by ``multiprocessing`` get the treatment above."""
    original_start = multiprocessing.process.BaseProcess.start

    def start(process: multiprocessing.process.BaseProcess) -> None:
        target = process._target  # type: ignore[attr-defined]
        if target is not None:
            process._target = functools.partial(_engine_process_main, os.getpid(), target)  # type: ignore[attr-defined]
        with _lock, _main_path_hidden(), _stdio_to(log):
            original_start(process)

    original_spawn = multiprocessing.util.spawnv_passfds
    multiprocessing.process.BaseProcess.start = start  # type: ignore[method-assign]
    multiprocessing.util.spawnv_passfds = _spawn_in_own_session
    try:
        yield
    finally:
        multiprocessing.process.BaseProcess.start = original_start  # type: ignore[method-assign]
        multiprocessing.util.spawnv_passfds = original_spawn


def _spawn_in_own_session(path: str, args: list[str], passfds: Iterable[int]) -> int:
    """``multiprocessing.util.spawnv_passfds``, with the child in a session of its own.

    Besides the EngineCore this starts multiprocessing's resource tracker, which ignores SIGTERM.
    Left in the kernel's process group, it keeps ipykernel's shutdown signalling and waiting
    for it for seconds, until jupyter_client runs out of patience and SIGTERMs the kernel:
    no exit handler runs, vstream's orderly engine shutdown included.
    """
    made_inheritable = [fd for fd in passfds if not os.get_inheritable(fd)]
    for fd in made_inheritable:
        os.set_inheritable(fd, True)
    try:
        return os.posix_spawn(path, list(args), os.environ, setsid=True)
    finally:
        for fd in made_inheritable:
            os.set_inheritable(fd, False)


@contextlib.contextmanager
def _main_path_hidden() -> Iterator[None]:
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    path = getattr(main, "__file__", None)
    if main is None or spec_name is not None or path is None:
        yield  # run with -m (or interactive): spawn imports it by name, guarded as usual
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


@contextlib.contextmanager
def _stdio_to(log: Path | None) -> Iterator[None]:
    if log is None:
        yield
        return
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    with open(log, "ab", buffering=0) as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _engine_process_main(parent_pid: int, target, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Runs first in the engine's child process (it must be importable, hence module level)."""
    # Spawned here, it leads a session already (EPERM); this covers a user's fork start method.
    with contextlib.suppress(OSError):
        os.setsid()
    _terminate_with_parent(parent_pid)
    threading.Thread(target=_kill_if_orphaned, args=(parent_pid,), name="vstream-orphan-watch", daemon=True).start()
    return target(*args, **kwargs)


ORPHAN_GRACE_S = 5.0


def _kill_if_orphaned(parent_pid: int) -> None:
    """SIGTERM from the kernel's death starts vLLM's own shutdown, which once in CI was still
    running 30 s later (after a SIGKILL restart of the kernel). Give it a few seconds, then end
    this process and everything it started."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    time.sleep(ORPHAN_GRACE_S)
    if os.getpgid(0) == os.getpid():  # our own session (setsid worked): its group is ours alone
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def _terminate_with_parent(parent_pid: int) -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
