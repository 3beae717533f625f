"""The panel: one anywidget over the kernel's engine, its parts one file each.

- ``widget``   ``Panel``: synced settings, Generate/Stop/Clear, what code calls
- ``generation`` one press of Generate, on the panel's worker thread (``worker``)
- ``panel.js``, ``panel.css``  its front end (no build step): controls, columns, chat, export
- ``feed``     the wire protocol: a column's deltas, its ``done``, its final result
- ``view``     ``StreamView``: the magic's live view, the same front end's columns only
- ``columns``  ``Column``: one compare column's settings and result, for code
- ``controls`` the controls' specs from the option table, and a column's form ↔ settings
- ``chat``, ``presets``, ``export``, ``status``, ``static``: what their names say
"""

from __future__ import annotations

from .columns import Column
from .presets import PresetStore
from .widget import Panel

__all__ = ["Column", "Panel", "PresetStore"]
