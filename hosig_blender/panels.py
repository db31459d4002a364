"""The 3D View sidebar tab "HOSIG": server, active shot, shot list, generation."""

from __future__ import annotations

import bpy

from . import runtime
from .preferences import get_prefs


class _HosigPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "HOSIG"


class HOSIG_PT_server(_HosigPanel, bpy.types.Panel):
    bl_label = "Server"
    bl_idname = "HOSIG_PT_server"

    def draw(self, context):
        layout = self.layout
        prefs = get_prefs(context)
        if prefs is not None:
            layout.prop(prefs, "server_url", text="URL")
            layout.prop(prefs, "token")
        state = runtime.SERVER.get("state")
        icon = {"connected": "CHECKMARK", "offline": "ERROR"}.get(state, "QUESTION")
        box = layout.box()
        box.label(text=runtime.SERVER.get("message", ""), icon=icon)
        info = runtime.SERVER.get("info") or {}
        if info:
            box.label(text=f"model loaded: {info.get('model_loaded')}  queue: {info.get('queue_length')}")
        row = layout.row(align=True)
        row.operator("hosig.server_check", text="Check", icon="FILE_REFRESH")
        row.operator("hosig.server_start", text="Start Local Server", icon="PLAY")


class HOSIG_PT_shots(_HosigPanel, bpy.types.Panel):
    bl_label = "Shots"
    bl_idname = "HOSIG_PT_shots"

    def draw(self, context):
        layout = self.layout
        s = context.scene.hosig
        row = layout.row()
        row.template_list("HOSIG_UL_shots", "", s, "shots", s, "active_shot", rows=4)
        col = row.column(align=True)
        col.operator("hosig.shot_add", text="", icon="ADD")
        col.operator("hosig.shot_duplicate", text="", icon="DUPLICATE")
        col.operator("hosig.shot_remove", text="", icon="REMOVE")
        col.separator()
        col.operator("hosig.shot_move", text="", icon="TRIA_UP").direction = "UP"
        col.operator("hosig.shot_move", text="", icon="TRIA_DOWN").direction = "DOWN"

        shot = s.active()
        if shot is None:
            layout.label(text="Add a shot to begin", icon="INFO")
            return
        box = layout.box()
        box.prop(shot, "name")
        row = box.row(align=True)
        row.operator("hosig.pick_start", text="Pick Start", icon="RESTRICT_SELECT_OFF")
        sub = row.row(align=True)
        sub.prop(shot, "start", text="")
        row = box.row(align=True)
        row.prop(shot, "heading")
        row.prop(shot, "use_heading", text="")
        row = box.row(align=True)
        row.prop(shot, "target")
        op = row.operator("hosig.pick_target", text="", icon="EYEDROPPER")
        op.field = "target"
        op = row.operator("hosig.pick_target", text="", icon="OBJECT_DATA")
        op.field, op.use_active = "target", True
        box.prop(shot, "action")
        if shot.action == "pick-place":
            box.prop(shot, "place_mode", expand=True)
            if shot.place_mode == "OBJECT":
                row = box.row(align=True)
                row.prop(shot, "place_object")
                op = row.operator("hosig.pick_target", text="", icon="EYEDROPPER")
                op.field = "place_object"
            else:
                box.prop(shot, "place_point")
        box.prop(shot, "seed")
        row = box.row(align=True)
        row.prop(s, "show_path", text="", icon="CURVE_PATH")
        session = getattr(context.window_manager, "hosig_session", None)
        if session is not None and session.preview_state == "RUNNING":
            row.label(text=session.preview_message)
            row.operator("hosig.cancel", text="", icon="CANCEL")
        else:
            row.operator("hosig.plan_preview", icon="TRACKING")
            if session is not None and session.preview_state != "IDLE" and session.preview_message:
                box.label(text=session.preview_message, icon={"FAILED": "ERROR", "DONE": "TRACKING"}.get(session.preview_state, "INFO"))
        if shot.result:
            box.label(text=f"{shot.status.title()}: {shot.result}", icon="INFO")
        if shot.armature is not None:
            box.label(text=f"Armature: {shot.armature.name}", icon="ARMATURE_DATA")


class HOSIG_PT_generate(_HosigPanel, bpy.types.Panel):
    bl_label = "Generate"
    bl_idname = "HOSIG_PT_generate"

    def draw(self, context):
        layout = self.layout
        s = context.scene.hosig
        row = layout.row(align=True)
        row.prop(s, "frame_start_mode", text="")
        if s.frame_start_mode == "CUSTOM":
            row.prop(s, "frame_start")
        row = layout.row(align=True)
        row.prop(s, "reduce_keys")
        if s.reduce_keys:
            row.prop(s, "tolerance_deg", text="°")
            row.prop(s, "tolerance_mm", text="mm")
        queue = runtime.QUEUE
        if queue is not None and queue.active:
            layout.progress(factor=s.progress, type="BAR", text=s.status_line) if hasattr(layout, "progress") else layout.prop(s, "progress", text=s.status_line)
            layout.operator("hosig.cancel", text="Cancel (Esc)", icon="CANCEL")
        else:
            row = layout.row(align=True)
            row.scale_y = 1.4
            row.operator("hosig.generate", text="Generate", icon="PLAY").all = False
            row.operator("hosig.generate", text="Generate All", icon="SEQUENCE").all = True
            if s.status_line:
                layout.label(text=s.status_line)


class HOSIG_PT_takes(_HosigPanel, bpy.types.Panel):
    """Takes of the active shot (best first), Regenerate Around Edits, Generate Variations."""

    bl_label = "Takes"
    bl_idname = "HOSIG_PT_takes"

    def draw(self, context):
        layout = self.layout
        shot = context.scene.hosig.active()
        if shot is None:
            layout.label(text="No shot", icon="INFO")
            return
        layout.template_list("HOSIG_UL_takes", "", shot, "takes", shot, "active_take", rows=3)
        row = layout.row(align=True)
        row.operator("hosig.take_use", text="Use", icon="ACTION").keep = False
        row.operator("hosig.take_use", text="Keep Only This", icon="CHECKMARK").keep = True
        if 0 <= shot.active_take < len(shot.takes) and shot.takes[shot.active_take].anchors:
            layout.label(text=shot.takes[shot.active_take].anchors[:120], icon="PIVOT_CURSOR")
        box = layout.box()
        row = box.row(align=True)
        row.prop(shot, "use_range")
        if shot.use_range:
            row.prop(shot, "range_first")
            row.prop(shot, "range_last")
        box.operator("hosig.regenerate", icon="FILE_REFRESH")
        row = box.row(align=True)
        row.prop(shot, "variations")
        row.operator("hosig.variations", icon="SEQUENCE")


CLASSES = (HOSIG_PT_server, HOSIG_PT_shots, HOSIG_PT_generate, HOSIG_PT_takes)


# Registers CLASSES in order and unregisters them in reverse (Blender's own helper).
register, unregister = bpy.utils.register_classes_factory(CLASSES)
