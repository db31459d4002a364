"""HOSIG for Blender: the engine (body, scene, navigation, grasp, motion, pipeline) and its server.

The engine never imports FastAPI or bpy; `hosig.api` is a thin typed layer over `hosig.pipeline`,
and the Blender add-on (`hosig_blender/`) speaks only the wire protocol.
"""

__version__ = "0.1.0"
