"""Backslash escapes for one-line option values (``--stop '\\n\\n'``, the panel's stop field).

A magic's option line cannot hold a real newline, so newlines, tabs and edge spaces are written
as ``\\n \\t \\r \\s``; ``\\,`` and ``\\\\`` keep a comma or backslash literal in comma lists.
"""

from __future__ import annotations

ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "s": " ", ",": ",", "\\": "\\"}


def decode(text: str) -> str:
    """Decode the escapes above; any other backslash stays as typed (``C:\\path``)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ESCAPES:
            out.append(ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
