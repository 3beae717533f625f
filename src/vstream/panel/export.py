"""What a panel's settings stand for as code: a ``%%vstream`` cell or a Python call.

Pure functions (no widgets, no engine), so an exploration in the panel becomes code that
reproduces it. Stop strings and other one-line option values use one escape convention,
shared with the panel's stop field: ``\\n`` newline, ``\\t`` tab, ``\\r`` return, ``\\s`` space,
``\\,`` comma, ``\\\\`` backslash.
"""

from __future__ import annotations

import json
import pprint
from collections.abc import Mapping, Sequence
from typing import Any

from .. import options
from ..config import SAMPLING_PARAMETERS
from ..escapes import ESCAPES as _ESCAPES

# Values that change nothing: left out of exported code unless the row says ``always``.
NEUTRAL: dict[str, Any] = {o.name: o.neutral for o in options.OPTIONS if o.neutral is not None}
ALWAYS = tuple(o.name for o in options.OPTIONS if o.always)  # shown even at their defaults: they say what ran
# The %%vstream options (src/vstream/magics.py builds them from the same rows).
MAGIC_OPTIONS = {o.name: o.flag for o in options.OPTIONS if o.flag}


def number(value: Any) -> str:
    """Numbers as a person types them: ``0`` not ``0.0``, ``0.7`` not ``0.7000000000000001``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def clean(value: Any) -> Any:
    """A float from a slider rounded to what it displays (0.7000000000000001 → 0.7)."""
    return float(number(value)) if isinstance(value, float) else value


def parse_stop(text: str) -> list[str]:
    """``"\\n\\n, END"`` → ``["\\n\\n", "END"]``: split on commas, escapes decoded, no blanks."""
    items, current, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt not in _ESCAPES:
                raise ValueError(f"stop: unknown escape \\{nxt} (use \\n \\t \\r \\s \\, \\\\)")
            current.append("\0" + _ESCAPES[nxt] + "\0")  # fenced: escaped spaces survive strip()
            i += 2
            continue
        if char == ",":
            items.append(current)
            current = []
        else:
            current.append(char)
        i += 1
    items.append(current)
    out = []
    for parts in items:
        joined = "".join(parts).strip()
        if joined:
            out.append(joined.replace("\0", ""))
    return out


def escape_value(text: str) -> str:
    """One stop string (or other one-line option value) in the escaped form ``parse_stop`` reads."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == ",":
            out.append("\\,")
        elif char in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[char])
        else:
            out.append(char)
    value = "".join(out)
    # Leading/trailing spaces would be stripped by parse_stop: keep them as \s.
    stripped = value.strip(" ")
    left = len(value) - len(value.lstrip(" "))
    right = len(value) - len(value.rstrip(" "))
    return "\\s" * left + stripped + "\\s" * right if stripped else "\\s" * len(value)


def format_stop(stops: Sequence[str]) -> str:
    return ", ".join(escape_value(stop) for stop in stops)


def essential(sampling: Mapping[str, Any]) -> dict[str, Any]:
    """The settings worth writing down, in the engine's parameter order."""
    out = {}
    for name in SAMPLING_PARAMETERS:
        if name not in sampling or sampling[name] is None:
            continue
        value = clean(sampling[name])
        if name in ALWAYS or name not in NEUTRAL or value != NEUTRAL[name]:
            if name == "stop" and not value:
                continue
            out[name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def quote(value: str) -> str:
    """Quote a value for IPython's magic_arguments (shell-like, not POSIX: no ``\\'``)."""
    if value and not any(c.isspace() or c in "'\"" for c in value):
        return value
    return f"'{value}'" if "'" not in value else f'"{value}"'  # both kinds: cannot be written


def magic_cell(prompt: str, sampling: Mapping[str, Any], *, chat: bool = False, system: str | None = None) -> str:
    """The ``%%vstream`` cell that sends ``prompt`` with these settings.

    Settings the magic cannot carry are listed in ``magic_unsupported``; the Python call
    carries them.
    """
    args = ["%%vstream"]
    if chat:
        args.append("--chat")
    if system:
        args += ["--system", quote(escape_value(system))]
    for name, value in essential(sampling).items():
        words = _magic_words(options.BY_NAME[name], value)
        if words is not None:
            args += words
    return " ".join(args) + "\n" + prompt


def _magic_words(option: options.Option, value: Any) -> list[str] | None:
    """The option as ``%%vstream`` words, or None where the magic cannot say it."""
    flag = option.flag
    if flag is None:
        return None
    kind = option.kind
    if kind == options.FLAG:
        return [flag] if value else []
    if kind == options.TRISTATE:
        return [flag, {True: "on", False: "off"}.get(value, "auto")]
    if kind in (options.STOP, options.CHOICE):
        words = []
        for item in value:
            quoted = _quoted(escape_value(item))
            if quoted is None:
                return None
            words += [flag, quoted]
        return words
    if kind == options.SCHEMA:
        quoted = _quoted(json.dumps(value, ensure_ascii=False))
    elif kind == options.REGEX:
        quoted = None if "\n" in value else _quoted(value)  # the magic reads a regex as typed
    elif kind == options.GRAMMAR:
        quoted = _quoted(escape_value(value))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        quoted = number(value)
    else:
        quoted = _quoted(str(value))
    return None if quoted is None else [flag, quoted]


def _quoted(value: str) -> str | None:
    """``quote(value)``, or None when the value holds both kinds of quote (the magic can't)."""
    return None if "'" in value and '"' in value else quote(value)


def magic_unsupported(sampling: Mapping[str, Any]) -> list[str]:
    """The settings a ``%%vstream`` cell cannot carry (the Python export has them)."""
    return [name for name, value in essential(sampling).items() if _magic_words(options.BY_NAME[name], value) is None]


def _kwargs(sampling: Mapping[str, Any], chat: bool, system: str | None) -> list[str]:
    parts = []
    if chat:
        parts.append("chat=True")
    if system:
        parts.append(f"system={system!r}")
    for name, value in essential(sampling).items():
        parts.append(f"{name}={repr(value) if isinstance(value, (bool, str, list)) else number(value)}")
    return parts


def python_call(
    prompt: str | Sequence[Mapping[str, str]],
    samplings: Sequence[Mapping[str, Any]],
    *,
    chat: bool = False,
    system: str | None = None,
) -> str:
    """A Python snippet sending ``prompt`` once per settings dict (concurrently when several)."""
    if isinstance(prompt, str):
        prompt_src = repr(prompt)
    else:
        prompt_src = pprint.pformat([dict(m) for m in prompt], width=88, sort_dicts=False)
    lines = ["import vstream", "", "host = vstream.engine()", f"prompt = {prompt_src}"]
    calls = []
    for sampling in samplings:
        args = ["prompt", *_kwargs(sampling, chat, system)]
        call = "host.stream(" + ", ".join(args) + ")"
        if len(call) > 88:
            call = "host.stream(\n" + "".join(f"    {a},\n" for a in args) + ")"
        calls.append(call)
    if len(calls) == 1:
        lines += [f"stream = {calls[0]}", "print(stream.wait().text)"]
    else:
        lines.append("streams = [  # submitted together: they run concurrently in the engine")
        lines += [f"    {call.replace(chr(10), chr(10) + '    ')}," for call in calls]
        lines += ["]", "for stream in streams:", "    print(stream.wait().text, end='\\n\\n')"]
    return "\n".join(lines) + "\n"
