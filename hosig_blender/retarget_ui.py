"""The "Retarget" panel: the animator's own rig, its bone map, Retarget / Export FBX / Export BVH.

Session state (source, target, the editable bone map) lives in a PropertyGroup on the
WindowManager (not saved in the .blend, not module globals). Operators are thin: they read the
settings and call `retarget_blender` (which calls the bpy-free `retarget` / `bonemaps`). A
retarget is one undo step. Bone-map presets are JSON files in Blender's user presets folder
(``presets/hosig_bonemaps/<name>.json``: ``{"map": {joint: bone}}``).
"""

from __future__ import annotations

import json
from pathlib import Path

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, PointerProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from . import bonemaps
from .rig import BODY_TAG

PRESET_DIR = "presets/hosig_bonemaps"
PRESET_ITEMS = [("DETECT", "Detect", "Recognise the rig by its bone names, else map it from its hierarchy"),
                ("auto", "Automatic", "From the hierarchy: hips, legs, spine, arms (fingers by name)"),
                ("mixamo", "Mixamo", "mixamorig:Hips, LeftUpLeg, ... (any namespace prefix)"),
                ("unreal", "Unreal mannequin", "UE4/UE5: pelvis, spine_01, thigh_l, calf_l, ..."),
                ("rigify_metarig", "Rigify metarig", "spine, thigh.L, shin.L, upper_arm.L, ..."),
                ("rigify_def", "Rigify DEF bones", "DEF-thigh.L, ... (deform-only exports)"),
                ("rigify_rig", "Rigify generated rig", "ORG-thigh.L, ... solved, then keyed on the FK controls "
                 "(torso, spine_fk, thigh_fk.L, upper_arm_fk.L, fingers)"),
                ("auto_rig_pro", "Auto-Rig Pro", "root.x, thigh.l, leg.l, ... (export names)")]


def presets_dir(create: bool = False) -> Path:
    """Blender's user presets folder for bone maps."""
    return Path(bpy.utils.user_resource("SCRIPTS", path=PRESET_DIR, create=create))


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


def _is_source(_self, obj) -> bool:
    return obj.type == "ARMATURE" and obj.get(BODY_TAG) is not None


class HOSIG_BoneMapItem(bpy.types.PropertyGroup):
    """One row of the bone map: an SMPL-X joint (``name``) and the target bone it drives."""

    bone: StringProperty(name="Bone", description="The target armature's bone this SMPL-X joint drives (empty: none)")


class HOSIG_RetargetSettings(bpy.types.PropertyGroup):
    source: PointerProperty(type=bpy.types.Object, name="Source", poll=_is_source,
                            description="The keyed SMPL-X armature of a shot")
    target: PointerProperty(type=bpy.types.Object, name="Target", poll=_is_armature,
                            description="Your character's armature")
    preset: EnumProperty(name="Bone map", items=PRESET_ITEMS, default="DETECT")
    bone_map: CollectionProperty(type=HOSIG_BoneMapItem)
    active: IntProperty(default=0)
    nla: BoolProperty(name="Push to NLA", default=False, description="Put the new action on an NLA strip")
    preset_name: StringProperty(name="Preset", default="my_rig", description="File name of a saved bone map")
    message: StringProperty(default="")


def settings(context) -> HOSIG_RetargetSettings:
    return context.window_manager.hosig_retarget


def map_from_items(s: HOSIG_RetargetSettings) -> dict[str, str]:
    return {item.name: item.bone for item in s.bone_map if item.bone}


def fill_items(s: HOSIG_RetargetSettings, bone_map: dict[str, str]) -> None:
    """The map as rows, in the order joints are mapped (hips, spine, legs, arms, fingers)."""
    s.bone_map.clear()
    for joint in bonemaps.MAP_ORDER:
        item = s.bone_map.add()
        item.name = joint
        item.bone = bone_map.get(joint, "")


def detect(s: HOSIG_RetargetSettings) -> None:
    """Fill the rows from the chosen preset (or the detected one); `RetargetError` if none fits."""
    from . import retarget_blender as rb

    name, m = rb.resolve_map(s.target, rb.RetargetOptions(preset=None if s.preset == "DETECT" else s.preset))
    fill_items(s, m)
    s.message = f"bone map: {name}, {len(m)} bones"


class HOSIG_OT_retarget_detect(bpy.types.Operator):
    """Fill the bone map for the target armature (the chosen preset, or detected)"""

    bl_idname = "hosig.retarget_detect"
    bl_label = "Map Bones"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import retarget_blender as rb

        s = settings(context)
        try:
            detect(s)
        except ValueError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        return {"FINISHED"}


class HOSIG_OT_retarget(bpy.types.Operator):
    """Key the target armature with the source shot's motion (one new action)"""

    bl_idname = "hosig.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import retarget_blender as rb

        s = settings(context)
        if s.source is None or s.target is None:
            self.report({"ERROR"}, "choose a source shot armature and a target armature")
            return {"CANCELLED"}
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")  # bones edited in Edit Mode reach the data only now
        try:
            if not len(s.bone_map):
                detect(s)
            result = rb.retarget(s.source, s.target, rb.RetargetOptions(bone_map=map_from_items(s), nla=s.nla))
        except rb.RetargetError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        s.message = f"{result.action.name}: {len(result.frames)} frames, {result.keys} keys, scale {result.scale:.3f}"
        self.report({"INFO"}, s.message)
        return {"FINISHED"}


class _ExportShot:
    """One execute for the export operators: check the target has an action, then `export`."""

    def execute(self, context):
        s = settings(context)
        target = s.target
        if target is None or target.animation_data is None or target.animation_data.action is None:
            self.report({"ERROR"}, "the target armature has no action: retarget first")
            return {"CANCELLED"}
        try:
            self.export(target)
        except (RuntimeError, OSError) as err:
            self.report({"ERROR"}, f"export failed: {err}")
            return {"CANCELLED"}
        return {"FINISHED"}


class HOSIG_OT_retarget_export_fbx(_ExportShot, bpy.types.Operator, ExportHelper):
    """Export the target armature (and its meshes) with its action as FBX for Unity / Unreal"""

    bl_idname = "hosig.retarget_export_fbx"
    bl_label = "Export FBX"
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})

    def export(self, target) -> None:
        from . import retarget_blender as rb

        rb.export_fbx(target, self.filepath)


class HOSIG_OT_retarget_export_bvh(_ExportShot, bpy.types.Operator, ExportHelper):
    """Export the target armature's action as BVH"""

    bl_idname = "hosig.retarget_export_bvh"
    bl_label = "Export BVH"
    filename_ext = ".bvh"
    filter_glob: StringProperty(default="*.bvh", options={"HIDDEN"})

    def export(self, target) -> None:
        from . import retarget_blender as rb

        lo, hi = target.animation_data.action.frame_range
        rb.export_bvh(target, self.filepath, int(round(lo)), int(round(hi)))


class HOSIG_OT_bonemap_save(bpy.types.Operator):
    """Save the bone map as a preset (JSON in Blender's user presets folder)"""

    bl_idname = "hosig.bonemap_save"
    bl_label = "Save Bone Map"

    def execute(self, context):
        s = settings(context)
        name = "".join(c for c in s.preset_name if c.isalnum() or c in "-_ ").strip()
        if not name:
            self.report({"ERROR"}, "name the preset")
            return {"CANCELLED"}
        path = presets_dir(create=True) / f"{name}.json"
        path.write_text(json.dumps({"map": map_from_items(s)}, indent=1))
        s.message = f"saved {path}"
        return {"FINISHED"}


class HOSIG_OT_bonemap_load(bpy.types.Operator):
    """Load a saved bone-map preset"""

    bl_idname = "hosig.bonemap_load"
    bl_label = "Load Bone Map"

    def execute(self, context):
        s = settings(context)
        path = presets_dir() / f"{s.preset_name}.json"
        try:
            data = json.loads(path.read_text())
            bone_map = {str(k): str(v) for k, v in data["map"].items()}
        except (OSError, ValueError, KeyError, AttributeError) as err:
            self.report({"ERROR"}, f"cannot read bone-map preset {str(path)!r}: {err}")
            return {"CANCELLED"}
        fill_items(s, bone_map)
        s.message = f"loaded {path}"
        return {"FINISHED"}


class HOSIG_UL_bone_map(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        s = settings(context)
        row = layout.row(align=True)
        row.label(text=item.name)
        if s.target is not None:
            row.prop_search(item, "bone", s.target.data, "bones", text="")
        else:
            row.prop(item, "bone", text="")


class HOSIG_PT_retarget(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "HOSIG"
    bl_label = "Retarget"
    bl_idname = "HOSIG_PT_retarget"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        s = settings(context)
        layout.prop(s, "source")
        layout.prop(s, "target")
        row = layout.row(align=True)
        row.prop(s, "preset", text="")
        row.operator("hosig.retarget_detect", text="Map Bones", icon="BONE_DATA")
        layout.template_list("HOSIG_UL_bone_map", "", s, "bone_map", s, "active", rows=6)
        row = layout.row(align=True)
        row.prop(s, "preset_name", text="")
        row.operator("hosig.bonemap_save", text="", icon="FILE_TICK")
        row.operator("hosig.bonemap_load", text="", icon="FILE_FOLDER")
        layout.prop(s, "nla")
        row = layout.row(align=True)
        row.scale_y = 1.3
        row.operator("hosig.retarget", text="Retarget", icon="ARMATURE_DATA")
        row = layout.row(align=True)
        row.operator("hosig.retarget_export_fbx", text="Export FBX", icon="EXPORT")
        row.operator("hosig.retarget_export_bvh", text="Export BVH", icon="EXPORT")
        if s.message:
            layout.label(text=s.message)


CLASSES = (HOSIG_BoneMapItem, HOSIG_RetargetSettings, HOSIG_OT_retarget_detect, HOSIG_OT_retarget,
           HOSIG_OT_retarget_export_fbx, HOSIG_OT_retarget_export_bvh, HOSIG_OT_bonemap_save, HOSIG_OT_bonemap_load,
           HOSIG_UL_bone_map, HOSIG_PT_retarget)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.hosig_retarget = PointerProperty(type=HOSIG_RetargetSettings)


def unregister() -> None:
    del bpy.types.WindowManager.hosig_retarget
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
