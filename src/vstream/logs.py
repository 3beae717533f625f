"""Keep vLLM's log flood out of the notebook, and keep it on file for ``%vstream logs``.

vLLM logs from the kernel process and from its EngineCore process. Both are routed to one file:

* the environment tells vLLM (in every process, since children inherit it) to configure its
  loggers from a dictConfig that writes to the file;
* loggers already set up in this process are re-pointed at the same file;
* the engine's child processes are spawned with stdout/stderr on the file too (see
  ``spawning``), so their progress bars and C-level prints do not land in the cell.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from pathlib import Path

from .models import cache_dir

_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def log_file() -> Path:
    """The log of this kernel's engine(s)."""
    path = cache_dir() / "logs" / f"engine-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def route_vllm_logs(verbose: bool) -> None:
    """Point vLLM's logging (this process and future children) at the log file, unless verbose."""
    if verbose:
        os.environ.pop("VLLM_LOGGING_CONFIG_PATH", None)
        os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
        _restore_console_handlers()
        return
    path = log_file()
    config_path = path.with_suffix(".logging.json")
    config_path.write_text(json.dumps(_dict_config(path)))
    os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config_path)
    _point_loaded_loggers_at(path)


def _dict_config(path: Path) -> dict[str, object]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": _FORMAT}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(path),
                "formatter": "plain",
                "level": "DEBUG",
            }
        },
        "loggers": {"vllm": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }


_console_handlers: list[logging.Handler] = []


def _point_loaded_loggers_at(path: Path) -> None:
    vllm_logger = logging.getLogger("vllm")
    for handler in list(vllm_logger.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            _console_handlers.append(handler)
            vllm_logger.removeHandler(handler)
    already = any(
        isinstance(h, logging.FileHandler) and h.baseFilename == str(path.resolve()) for h in vllm_logger.handlers
    )
    if not already:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._vstream = True  # type: ignore[attr-defined]
        vllm_logger.addHandler(handler)
    vllm_logger.propagate = False
    if vllm_logger.level == logging.NOTSET:
        vllm_logger.setLevel(logging.INFO)


def _restore_console_handlers() -> None:
    vllm_logger = logging.getLogger("vllm")
    for handler in list(vllm_logger.handlers):
        if getattr(handler, "_vstream", False):
            vllm_logger.removeHandler(handler)
            handler.close()
    while _console_handlers:
        vllm_logger.addHandler(_console_handlers.pop())


def tail(lines: int = 40, path: Path | None = None) -> list[str]:
    """The last ``lines`` lines of the engine log."""
    target = path or log_file()
    if not target.exists():
        return []
    with open(target, errors="replace") as handle:
        return [line.rstrip("\n") for line in deque(handle, maxlen=lines)]


def root_cause(lines: list[str]) -> str | None:
    """The most telling error line of a failed start, e.g. an out-of-memory or a missing file."""
    keys = ("Error", "error:", "Exception", "memory", "No such file", "not found", "Traceback")
    for line in reversed(lines):
        if any(key in line for key in keys) and "Traceback" not in line and "vstream" not in line:
            return line.strip()
    return None


def note(message: str) -> None:
    """One line of vstream's own into the engine log (what a user finds with ``%vstream logs``)."""
    try:
        with open(log_file(), "a", encoding="utf-8") as log:
            log.write(message + "\n")
    except OSError:
        pass
