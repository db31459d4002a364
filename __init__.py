"""Blender extension entry point: everything lives in the `hosig_blender` sub-package.

Blender imports this file as the extension package (``bl_ext.<repo>.hosig``); the add-on code is
kept in its own folder so the repository root can also hold the server and tests. The import is
deferred to `register` so that tools which merely walk the repository (pytest collecting the
root as a package) never import bpy.
"""

from __future__ import annotations


def register() -> None:
    from .hosig_blender import register as _register

    _register()


def unregister() -> None:
    from .hosig_blender import unregister as _unregister

    _unregister()
