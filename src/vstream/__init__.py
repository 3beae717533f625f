"""vstream: vLLM's AsyncLLM inside a Jupyter kernel, streaming live.

>>> import vstream
>>> for delta in vstream.engine().stream("The key to happiness is", seed=42):
...     print(delta, end="")

Importing the package is cheap: vLLM is imported when the engine starts, the widgets when a
panel is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import DEFAULT_SAMPLING, SAMPLING_PARAMETERS, EngineConfig, validate_sampling
from .connect import connect
from .engine import EngineHost, EngineStatus, current, engine, shutdown
from .errors import (
    EngineConfigError,
    EngineDeadError,
    EngineNotRunningError,
    EngineStartError,
    NotEnoughMemoryError,
    SamplingError,
    SleepUnavailableError,
    VStreamError,
)
from .models import EMBEDDED_MODEL, ModelNotFoundError
from .streaming import Metrics, Stream, TokenLogprob

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SAMPLING",
    "EMBEDDED_MODEL",
    "SAMPLING_PARAMETERS",
    "EngineConfig",
    "EngineConfigError",
    "EngineDeadError",
    "EngineHost",
    "EngineNotRunningError",
    "EngineStartError",
    "EngineStatus",
    "Metrics",
    "ModelNotFoundError",
    "NotEnoughMemoryError",
    "Panel",
    "SamplingError",
    "SleepUnavailableError",
    "Stream",
    "TokenLogprob",
    "VStreamError",
    "connect",
    "current",
    "engine",
    "shutdown",
    "validate_sampling",
]


def __getattr__(name: str) -> Any:
    if name == "Panel":
        from .panel import Panel

        return Panel
    raise AttributeError(f"module 'vstream' has no attribute {name!r}")


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext vstream``: register the magics and start the engine in the background (or connect to
    ``$VSTREAM_BASE_URL`` when it is set)."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """``%unload_ext vstream``: remove the magics and stop the engine."""
    from .magics import unload

    unload(ipython)
