"""HOSIG for Blender, the add-on: pick in the viewport, stream generated motion into keyframed
SMPL-X armatures, keep a shot list in the .blend.

Only Blender's Python, its stdlib and its bundled numpy are used; the engine (`hosig`) runs in a
separate server process and is reached over HTTP (see `client`). The bpy-facing modules are
imported in `register`, so the pure ones (client, protocol, posemath, picking) import anywhere.
"""

from __future__ import annotations

_registered = False


def _modules():
    from . import operators, overlay, panels, preferences, preview, retarget_ui, shots

    return (preferences, shots, preview, operators, panels, overlay, retarget_ui)


def register() -> None:
    global _registered
    if _registered:
        return
    for module in _modules():
        module.register()
    _registered = True


def unregister() -> None:
    global _registered
    if not _registered:
        return
    from . import runtime

    runtime.shutdown()
    for module in reversed(_modules()):
        module.unregister()
    _registered = False
