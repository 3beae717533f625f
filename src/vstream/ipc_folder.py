"""A folder of its own for the socket files an engine's processes talk through.

vLLM names a ZMQ ``ipc://`` socket file in the temp folder for each channel between the kernel
and its EngineCore (seven for one CPU engine) and leaves the files behind when the engine stops,
so every start or restart of an engine used to add seven files to /tmp for good. vstream points
vLLM at a folder made for each engine and removes it with the engine. A kernel killed outright
(a hard restart) cannot remove its folder, and neither can its EngineCore: the parent-death
SIGTERM reaches it twice, and the second one, after vLLM's own handler is gone, ends it without
running exit handlers. So each new engine first sweeps away the folders of processes that no
longer exist.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

PREFIX = "vstream-ipc-"
_VARIABLE = "VLLM_RPC_BASE_PATH"
_OWNER = re.compile(rf"^{PREFIX}(\d+)-")


# A Unix socket's address holds at most 107 bytes of path, and vLLM names each socket
# "<folder>/<uuid4>" (37 more): a folder longer than this would fail the engine's start with
# ZMQ's "File name too long".
_MAX_FOLDER = 107 - 37


def create() -> Path | None:
    """A new folder for one engine's sockets, or None when the user chose a place for them (or
    the temp folder's path is too long for a socket address: then vLLM's own place is used)."""
    if os.environ.get(_VARIABLE):
        return None
    sweep_orphans()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    if len(os.fsencode(folder)) > _MAX_FOLDER:
        folder.rmdir()
        return None
    return folder


@contextlib.contextmanager
def sockets_in(folder: Path | None) -> Iterator[None]:
    """vLLM names its sockets under ``folder`` while the engine's processes are being started.

    The variable is put back afterwards: the engine's children took their copy of it when they
    were spawned, and anything else the user starts from the kernel should not inherit it.
    """
    if folder is None:
        yield
        return
    os.environ[_VARIABLE] = str(folder)
    try:
        yield
    finally:
        os.environ.pop(_VARIABLE, None)


def remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def owned_by(pid: int) -> list[Path]:
    """The folders a process made (what the tests look at)."""
    return sorted(Path(tempfile.gettempdir()).glob(f"{PREFIX}{pid}-*"))


def sweep_orphans() -> None:
    """Remove folders whose kernel no longer runs (it was killed before it could clean up)."""
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        match = _OWNER.match(path.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            remove(path)
