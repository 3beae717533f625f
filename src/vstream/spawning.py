"""How the engine's child processes are started from a kernel or a script.

vLLM starts its EngineCore with ``multiprocessing`` (spawn, see ``backends.local``). Two things
about a plain spawn are wrong for vstream's users, and both are fixed only for the instant of
each ``Process.start()`` while an engine is being built:

* the child inherits fds 1 and 2; ipykernel forwards those to the notebook, so vLLM's progress
  bars and C-level prints would flood the cell. They go to the engine log instead.
* spawn re-runs the parent's ``__main__`` script in the child, which breaks any script that
  calls vstream at top level without an ``if __name__ == "__main__"`` guard. The EngineCore
  needs nothing from the user's script, so the script's path is hidden from it.
"""

from __future__ import annotations

import contextlib
import multiprocessing.process
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

_lock = threading.Lock()


@contextlib.contextmanager
def engine_children(log: Path | None) -> Iterator[None]:
    """While active, processes started by ``multiprocessing`` get the treatment above."""
    original_start = multiprocessing.process.BaseProcess.start

    def start(process: multiprocessing.process.BaseProcess) -> None:
        with _lock, _main_path_hidden(), _stdio_to(log):
            original_start(process)

    multiprocessing.process.BaseProcess.start = start  # type: ignore[method-assign]
    try:
        yield
    finally:
        multiprocessing.process.BaseProcess.start = original_start  # type: ignore[method-assign]


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
