"""Add-on preferences: server URL, token and the command that starts a local server.

Headless code (tests, `hosig demo`) runs the add-on without enabling it through the preferences
system, so `server_config` falls back to `FALLBACK`, which such code sets directly.
"""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from .client import DEFAULT_URL, ServerConfig

# The add-on's module name: the extension package (parent of this sub-package) when installed.
ADDON_ID = __package__.rsplit(".", 1)[0] if "." in __package__ else __package__
FALLBACK = ServerConfig()
DEFAULT_COMMAND = "hosig serve --host 127.0.0.1 --port 8765"


class HOSIG_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_url: StringProperty(name="Server URL", default=DEFAULT_URL)
    token: StringProperty(name="Token", default="", subtype="PASSWORD", description="Sent as a Bearer token when the server requires one")
    server_command: StringProperty(
        name="Start Command", default=DEFAULT_COMMAND,
        description="Command line that starts a local HOSIG server (the panel's Start button runs it)")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "server_url")
        col.prop(self, "token")
        col.prop(self, "server_command")


def get_prefs(context: bpy.types.Context | None = None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def server_config(context: bpy.types.Context | None = None) -> ServerConfig:
    prefs = get_prefs(context)
    if prefs is None:
        return FALLBACK
    return ServerConfig(url=prefs.server_url or DEFAULT_URL, token=prefs.token)


def server_command(context: bpy.types.Context | None = None) -> str:
    prefs = get_prefs(context)
    return prefs.server_command if prefs is not None else DEFAULT_COMMAND


def register() -> None:
    bpy.utils.register_class(HOSIG_AddonPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(HOSIG_AddonPreferences)
