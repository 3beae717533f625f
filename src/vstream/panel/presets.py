"""Sampling presets: three built in (greedy, balanced, creative) and the user's own, saved as JSON.

A preset is a partial set of sampling settings; applying it changes only the settings it names
(the built-ins leave max_tokens, seed and stop alone). User presets live in
``$VSTREAM_PRESETS`` or ``~/.config/vstream/presets.json`` and are shared by every panel of
the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import options
from ..config import validate_sampling
from ..errors import SamplingError

# Built-ins reset the "shape" of sampling; they leave max_tokens, seed, stop and the output format alone.
_STYLE_NEUTRAL = {o.name: o.neutral for o in options.OPTIONS if o.style}

BUILTIN: dict[str, dict[str, Any]] = {
    "greedy": {**_STYLE_NEUTRAL, "temperature": 0.0, "top_p": 1.0},
    "balanced": {
        **_STYLE_NEUTRAL,
        "temperature": 0.7,
        "top_p": 0.9,
        "min_p": 0.02,
        "repetition_penalty": 1.05,
    },
    "creative": {
        **_STYLE_NEUTRAL,
        "temperature": 1.1,
        "top_p": 0.98,
        "min_p": 0.05,
        "presence_penalty": 0.4,
        "frequency_penalty": 0.2,
    },
}

# What a user preset may hold: the panel's per-column settings.
PRESET_KEYS = tuple(o.name for o in options.OPTIONS if o.preset)


def default_path() -> Path:
    if os.environ.get("VSTREAM_PRESETS"):
        return Path(os.environ["VSTREAM_PRESETS"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "vstream" / "presets.json"


class PresetStore:
    """Built-in presets plus user presets persisted to ``path`` (None: in memory only)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._user: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._listeners: list[weakref.WeakMethod[Callable[[], None]]] = []
        self.load_error: str | None = None
        self._load()

    def names(self) -> list[str]:
        return [*BUILTIN, *sorted(self._user)]

    def get(self, name: str) -> dict[str, Any]:
        if name in BUILTIN:
            return dict(BUILTIN[name])
        if name in self._user:
            return dict(self._user[name])
        raise KeyError(f"no preset named {name!r}; known: {', '.join(self.names())}")

    def save(self, name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``settings`` as ``name``, checked first: a preset never holds bad values."""
        name = name.strip()
        if not name:
            raise SamplingError("give the preset a name")
        if name in BUILTIN:
            raise SamplingError(f"{name!r} is a built-in preset; choose another name")
        kept = {k: v for k, v in settings.items() if k in PRESET_KEYS and v is not None}
        validate_sampling(kept)
        with self._lock:
            self._user[name] = kept
            self._write()
        self._changed()
        return dict(kept)

    def delete(self, name: str) -> None:
        with self._lock:
            if self._user.pop(name, None) is not None:
                self._write()
        self._changed()

    def on_change(self, method: Callable[[], None]) -> None:
        """Call a bound ``method`` when presets change (held weakly: panels can be collected)."""
        self._listeners.append(weakref.WeakMethod(method))

    def _changed(self) -> None:
        alive = []
        for ref in self._listeners:
            method = ref()
            if method is not None:
                alive.append(ref)
                with contextlib.suppress(Exception):
                    method()
        self._listeners = alive

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.load_error = f"could not read presets from {self.path}: {exc}"
            return
        for name, settings in (data.get("presets", {}) if isinstance(data, dict) else {}).items():
            try:
                if isinstance(name, str) and name not in BUILTIN and isinstance(settings, dict):
                    kept = {k: v for k, v in settings.items() if k in PRESET_KEYS}
                    validate_sampling(kept)
                    self._user[name] = kept
            except SamplingError:
                continue  # one bad entry does not lose the others

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a crash never leaves half a file.
        fd, tmp = tempfile.mkstemp(prefix=".presets-", dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"presets": self._user}, f, indent=2, ensure_ascii=False)
        os.replace(tmp, self.path)


_default: PresetStore | None = None


def default_store() -> PresetStore:
    global _default
    if _default is None:
        _default = PresetStore(default_path())
    return _default
