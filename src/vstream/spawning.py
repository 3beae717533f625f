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

And one thing about a plain spawn is slow: the child imports vLLM (and torch) all over again
before it can build the engine, 18 s on an H200 host, while vLLM's own default (fork, unsafe in
a kernel) inherits the parent's modules. So a spawn here becomes a fork from multiprocessing's
forkserver, a process of its own (no kernel threads, no held locks) started at the beginning of
an engine's start, which imports vLLM while the kernel does (``start_forkserver``). The child
gets the kernel's environment as it is at ``Process.start()`` (a forkserver child would inherit
the server's). ``VSTREAM_START_METHOD=spawn`` keeps the plain spawn.
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
from typing import Any

_lock = threading.Lock()
# What the forkserver imports before it forks anything: the EngineCore's module, and with it vLLM.
PRELOAD = ["vllm.v1.engine.core"]


def use_forkserver() -> bool:
    return os.environ.get("VSTREAM_START_METHOD", "forkserver") == "forkserver"


def forkserver_pid() -> int | None:
    """The forkserver's process id, once this process started one."""
    import multiprocessing.forkserver

    return getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)


def start_forkserver(log: Path | None) -> None:
    """Start the forkserver now (it imports vLLM in the background), with the treatment above;
    a no-op when it runs already or when the plain spawn is asked for."""
    if log is None or not use_forkserver():  # verbose engines print to the cell: a server would not
        return
    import multiprocessing.forkserver

    multiprocessing.set_forkserver_preload(PRELOAD)
    with _spawned_in_own_session(), _lock, _main_path_hidden(), _stdio_to(log):
        multiprocessing.forkserver.ensure_running()


@contextlib.contextmanager
def engine_children(log: Path | None) -> Iterator[None]:
    """While active, processes started by ``multiprocessing`` get the treatment above."""
    original_start = multiprocessing.process.BaseProcess.start

    def start(process: multiprocessing.process.BaseProcess) -> None:
        target = process._target  # type: ignore[attr-defined]
        if target is not None:
            environ = dict(os.environ)
            process._target = functools.partial(_engine_process_main, environ, target)  # type: ignore[attr-defined]
        with _lock, _main_path_hidden(), _stdio_to(log):
            original_start(process)

    original_context = multiprocessing.get_context
    forkserver = log is not None and use_forkserver()

    def get_context(method: str | None = None) -> Any:
        # vLLM asks for "spawn" (VLLM_WORKER_MULTIPROC_METHOD, set by the backend).
        return original_context("forkserver" if forkserver and method == "spawn" else method)

    multiprocessing.process.BaseProcess.start = start  # type: ignore[method-assign]
    multiprocessing.get_context = get_context  # type: ignore[assignment]
    try:
        with _spawned_in_own_session():
            yield
    finally:
        multiprocessing.process.BaseProcess.start = original_start  # type: ignore[method-assign]
        multiprocessing.get_context = original_context


@contextlib.contextmanager
def _spawned_in_own_session() -> Iterator[None]:
    """While active, multiprocessing starts its helper processes through the function below."""
    original_spawn = multiprocessing.util.spawnv_passfds
    multiprocessing.util.spawnv_passfds = _spawn_in_own_session
    try:
        yield
    finally:
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


def _engine_process_main(environ: dict[str, str], target, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Runs first in the engine's child process (it must be importable, hence module level)."""
    # Forked by the forkserver, the child has the server's environment: the kernel's comes along.
    if os.environ != environ:
        os.environ.clear()
        os.environ.update(environ)
    # Spawned here, it leads a session already (EPERM); forked, it starts one.
    with contextlib.suppress(OSError):
        os.setsid()
    # A forkserver's child holds the server's "alive" pipe (for servers of its own), and the server
    # exits only once every holder closed it: held here, a SIGKILLed kernel would leave both the
    # server and this engine running. Closed, the server exits with the kernel, and this process
    # (its child) sees its parent die as after a spawn. vLLM starts its workers by spawn.
    import multiprocessing.forkserver

    server = multiprocessing.forkserver._forkserver
    if getattr(server, "_forkserver_alive_fd", None) is not None:
        with contextlib.suppress(OSError):
            os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
    # The parent is the kernel (spawn) or the forkserver, which exits when the kernel does.
    parent_pid = os.getppid()
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
