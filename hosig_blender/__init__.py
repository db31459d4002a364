"""HOSIG for Blender, the add-on: pick in the viewport, stream generated motion into keyframed
SMPL-X armatures, keep a shot list in the .blend.

Only Blender's Python, its stdlib and its bundled numpy are used; the engine (`hosig`) runs in a
separate server process and is reached over HTTP (see `client`).
"""

from __future__ import annotations

from . import operators, overlay, panels, preferences, runtime, shots

_MODULES = (preferences, shots, operators, panels, overlay)
_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    for module in _MODULES:
        module.register()
    _registered = True


def unregister() -> None:
    global _registered
    if not _registered:
        return
    runtime.shutdown()
    for module in reversed(_MODULES):
        module.unregister()
    _registered = False
