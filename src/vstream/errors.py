"""Exceptions a vstream user may see; each message says what was wrong and what to do."""

from __future__ import annotations


class VStreamError(Exception):
    """Base class for vstream's own errors."""


class SamplingError(VStreamError, ValueError):
    """A sampling setting is out of range or of the wrong type; nothing reached the engine."""


class EngineConfigError(VStreamError, ValueError):
    """An engine setting is invalid."""


class EngineStartError(VStreamError, RuntimeError):
    """The engine failed to start; the message carries the root cause."""


class EngineDeadError(VStreamError, RuntimeError):
    """The engine died (or was shut down) while a request was running."""


class EngineNotRunningError(VStreamError, RuntimeError):
    """A request was made while no engine is running."""


class NotEnoughMemoryError(EngineStartError):
    """The device has too little free memory for the engine's weights and KV cache."""


class SleepUnavailableError(VStreamError, RuntimeError):
    """The engine cannot sleep here (vLLM's sleep mode exists on CUDA only)."""
