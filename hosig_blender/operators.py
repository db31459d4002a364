"""Operators: server, picking (modal), shot list editing, path preview, generate / cancel, and
File › Import › HOSIG clip (.npz).

Preview Path and Generate share `_TimerJobOperator`: they start a job that `runtime` advances from
a `bpy.app.timers` callback (the UI never waits) and stay RUNNING_MODAL only to watch it: Esc
cancels, and the job's outcome is reported once when the timer has finished it."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import client, overlay, picking, runtime
from .generation import CACHE, RunOptions, get_body
from .preferences import server_command, server_config
from .rig import BODY_TAG
from .shots import copy_shot, unique_shot_name


def _settings(context):
    return context.scene.hosig


def _active_shot(context):
    return _settings(context).active()


def _view_ray(context, event):
    """(origin, direction) of the mouse ray in world space."""
    from bpy_extras import view3d_utils

    region, rv3d = context.region, context.region_data
    coord = (event.mouse_region_x, event.mouse_region_y)
    origin = view3d_utils.region_2d_to_origin_3d(region, rv3d, coord)
    direction = view3d_utils.region_2d_to_vector_3d(region, rv3d, coord)
    return tuple(origin), tuple(direction)


def scene_ray_caster(context) -> picking.RayCaster:
    """Wrap `Scene.ray_cast` as the plain function the picking logic expects."""
    depsgraph = context.evaluated_depsgraph_get()
    scene = context.scene

    def cast(origin, direction):
        hit, loc, _normal, _index, obj, _m = scene.ray_cast(depsgraph, origin, direction)
        return bool(hit), tuple(loc), (obj.original.name if obj is not None else None)

    return cast


def _is_ours(name: str) -> bool:
    obj = bpy.data.objects.get(name)
    return obj is not None and obj.get(BODY_TAG) is not None


class HOSIG_OT_server_check(bpy.types.Operator):
    """Ask the server for its status"""

    bl_idname = "hosig.server_check"
    bl_label = "Check Server"

    def execute(self, context):
        info = runtime.check_server(context)
        self.report({"INFO"} if info["state"] == "connected" else {"WARNING"}, info["message"])
        return {"FINISHED"}


class HOSIG_OT_server_start(bpy.types.Operator):
    """Start a local HOSIG server with the command from the add-on preferences"""

    bl_idname = "hosig.server_start"
    bl_label = "Start Local Server"

    def execute(self, context):
        try:
            msg = runtime.start_local_server(server_command(context))
        except client.ServerError as err:
            self.report({"ERROR"}, err.message)
            return {"CANCELLED"}
        self.report({"INFO"}, msg + " — press Check in a few seconds")
        return {"FINISHED"}


class HOSIG_OT_pick_start(bpy.types.Operator):
    """Click on the floor to set the start, drag to set the heading; Esc or right-click cancels"""

    bl_idname = "hosig.pick_start"
    bl_label = "Pick Start"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D" and _active_shot(context) is not None

    def invoke(self, context, event):
        self._anchor = None
        self._heading = _active_shot(context).heading
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set("Pick start: click on the floor, drag for the heading · Esc/right-click cancel")
        return {"RUNNING_MODAL"}

    def _floor_point(self, context, event):
        origin, direction = _view_ray(context, event)
        return picking.pick_floor_point(scene_ray_caster(context), origin, direction, 0.0)

    def _finish(self, context):
        overlay.LIVE_MARKER.pop(context.scene.name, None)
        context.workspace.status_text_set(None)
        context.area.tag_redraw()

    def modal(self, context, event):
        if event.type in {"ESC", "RIGHTMOUSE"} and event.value == "PRESS":
            self._finish(context)
            return {"CANCELLED"}
        if event.type == "LEFTMOUSE" and event.value == "PRESS":
            self._anchor = self._floor_point(context, event)
            if self._anchor is not None:
                overlay.LIVE_MARKER[context.scene.name] = (*self._anchor[:2], 0.02, self._heading)
            context.area.tag_redraw()
            return {"RUNNING_MODAL"}
        if event.type == "MOUSEMOVE" and self._anchor is not None:
            point = self._floor_point(context, event)
            heading = picking.heading_from_drag(self._anchor, point) if point is not None else None
            if heading is not None:
                self._heading = heading
            overlay.LIVE_MARKER[context.scene.name] = (*self._anchor[:2], 0.02, self._heading)
            context.area.tag_redraw()
            return {"RUNNING_MODAL"}
        if event.type == "LEFTMOUSE" and event.value == "RELEASE" and self._anchor is not None:
            shot = _active_shot(context)
            shot.start = self._anchor[:2]
            shot.heading = self._heading
            shot.has_start = True
            self._finish(context)  # the start's update asks for the path (`runtime.schedule_plan_refresh`)
            return {"FINISHED"}
        return {"RUNNING_MODAL"} if event.type in {"LEFTMOUSE", "MOUSEMOVE"} else {"PASS_THROUGH"}


class HOSIG_OT_pick_target(bpy.types.Operator):
    """Click an object to make it the target (or use the active object)"""

    bl_idname = "hosig.pick_target"
    bl_label = "Pick Target"
    bl_options = {"REGISTER", "UNDO"}

    use_active: BoolProperty(name="Use Active Object", default=False)
    field: EnumProperty(items=[("target", "Target", ""), ("place_object", "Place", "")], default="target")

    @classmethod
    def poll(cls, context):
        return _active_shot(context) is not None

    def _assign(self, context, obj) -> bool:
        if obj is None or obj.type != "MESH" or obj.get(BODY_TAG) is not None:
            self.report({"WARNING"}, "pick a mesh object of the scene")
            return False
        setattr(_active_shot(context), self.field, obj)  # a new target refreshes the path (its update)
        return True

    def invoke(self, context, event):
        if self.use_active or context.area is None or context.area.type != "VIEW_3D":
            return {"FINISHED"} if self._assign(context, context.active_object) else {"CANCELLED"}
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set("Pick target: click an object · Esc/right-click cancel")
        return {"RUNNING_MODAL"}

    def execute(self, context):
        return {"FINISHED"} if self._assign(context, context.active_object) else {"CANCELLED"}

    def modal(self, context, event):
        if event.type in {"ESC", "RIGHTMOUSE"} and event.value == "PRESS":
            context.workspace.status_text_set(None)
            return {"CANCELLED"}
        if event.type == "LEFTMOUSE" and event.value == "PRESS":
            origin, direction = _view_ray(context, event)
            name = picking.pick_object(scene_ray_caster(context), origin, direction, exclude=_is_ours)
            context.workspace.status_text_set(None)
            if name is None:
                self.report({"WARNING"}, "nothing under the cursor")
                return {"CANCELLED"}
            return {"FINISHED"} if self._assign(context, bpy.data.objects[name]) else {"CANCELLED"}
        return {"PASS_THROUGH"}


class HOSIG_OT_shot_add(bpy.types.Operator):
    """Add a shot (the active object becomes its target)"""

    bl_idname = "hosig.shot_add"
    bl_label = "Add Shot"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = _settings(context)
        name = unique_shot_name(s, "Shot")
        shot = s.shots.add()
        shot.name = name
        obj = context.active_object
        if obj is not None and obj.type == "MESH" and obj.get(BODY_TAG) is None:
            shot.target = obj
        s.active_shot = len(s.shots) - 1
        return {"FINISHED"}


class HOSIG_OT_shot_duplicate(bpy.types.Operator):
    """Duplicate the active shot's request (new seed)"""

    bl_idname = "hosig.shot_duplicate"
    bl_label = "Duplicate Shot"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _active_shot(context) is not None

    def execute(self, context):
        s = _settings(context)
        name, seed = unique_shot_name(s, s.active().name), s.active().seed + 1
        shot = s.shots.add()  # may reallocate the collection: re-fetch the source afterwards
        copy_shot(s.shots[s.active_shot], shot)
        shot.name = name
        shot.seed = seed
        s.shots.move(len(s.shots) - 1, s.active_shot + 1)
        s.active_shot += 1
        return {"FINISHED"}


class HOSIG_OT_shot_remove(bpy.types.Operator):
    """Remove the active shot from the list (its armature and actions stay in the file)"""

    bl_idname = "hosig.shot_remove"
    bl_label = "Remove Shot"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _active_shot(context) is not None and _active_shot(context).status not in {"RUNNING", "QUEUED"}

    def execute(self, context):
        s = _settings(context)
        s.shots.remove(s.active_shot)
        s.active_shot = min(s.active_shot, len(s.shots) - 1)
        return {"FINISHED"}


class HOSIG_OT_shot_move(bpy.types.Operator):
    """Move the active shot up or down"""

    bl_idname = "hosig.shot_move"
    bl_label = "Move Shot"
    bl_options = {"REGISTER", "UNDO"}

    direction: EnumProperty(items=[("UP", "Up", ""), ("DOWN", "Down", "")])

    def execute(self, context):
        s = _settings(context)
        new = s.active_shot + (-1 if self.direction == "UP" else 1)
        if 0 <= new < len(s.shots):
            s.shots.move(s.active_shot, new)
            s.active_shot = new
        return {"FINISHED"}


class _TimerJobOperator:
    """Shared by Preview Path and Generate: the work is a job that `runtime` advances from its
    `bpy.app.timers` callback, a bounded step per tick, so Blender's UI never waits for it.

    ``invoke`` starts the job and returns RUNNING_MODAL; ``modal`` only watches: Esc cancels the
    job (nothing in the scene changes), and once the timer has finished it the outcome is reported
    once (one line: done, or the error). A job replaced by a newer one (another Preview Path) ends
    the operator silently. ``execute`` (scripts) starts the job and returns; the timer goes on.
    Subclasses say how to start, find, cancel and describe their job.
    """

    WATCH_S = 0.1  # a window timer wakes `modal` so the outcome is reported without waiting for input

    def _start(self, context):
        """Start the job (runtime holds it); None after reporting why it could not start."""
        raise NotImplementedError

    def _current(self):
        """The job runtime holds now."""
        raise NotImplementedError

    def _cancel(self) -> None:
        raise NotImplementedError

    def _outcome(self, job) -> tuple[str, str]:
        """(report level, one line) for a finished or cancelled job."""
        raise NotImplementedError

    def execute(self, context):  # non-interactive (scripts): start and return; the timer keeps going
        return {"FINISHED"} if self._start(context) is not None else {"CANCELLED"}

    def invoke(self, context, event):
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        self._job = job
        wm = context.window_manager
        self._timer = wm.event_timer_add(self.WATCH_S, window=context.window) if context.window is not None else None
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        result = self._watch(event.type, event.value)
        if result != {"PASS_THROUGH"} and getattr(self, "_timer", None) is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        return result

    def _watch(self, event_type: str, event_value: str) -> set[str]:
        job = self._job
        if self._current() is not job:  # replaced by a newer job, which reports for itself
            return {"CANCELLED"}
        if not job.active:
            level, message = self._outcome(job)
            self.report({level}, message)
            return {"FINISHED"}
        if event_type == "ESC" and event_value == "PRESS":
            self._cancel()
            self.report({"WARNING"}, self._outcome(job)[1])
            return {"CANCELLED"}
        return {"PASS_THROUGH"}


class HOSIG_OT_plan_preview(_TimerJobOperator, bpy.types.Operator):
    """Ask the server for the active shot's path and draw it in the viewport (the scene is uploaded
    in short steps; Esc cancels)"""

    bl_idname = "hosig.plan_preview"
    bl_label = "Preview Path"

    def _start(self, context):
        try:
            return runtime.start_preview(context)
        except client.ServerError as err:
            self.report({"ERROR"}, f"Preview Path: {err.message}")
            return None

    def _current(self):
        return runtime.PREVIEW

    def _cancel(self) -> None:
        runtime.cancel_preview()

    def _outcome(self, job) -> tuple[str, str]:
        return {"done": "INFO", "failed": "ERROR"}.get(job.state, "WARNING"), job.message


class HOSIG_OT_generate(_TimerJobOperator, bpy.types.Operator):
    """Generate the active shot (or all shots); frames are keyed as they arrive, Esc cancels"""

    bl_idname = "hosig.generate"
    bl_label = "Generate"

    all: BoolProperty(name="All Shots", default=False)

    @classmethod
    def poll(cls, context):
        return len(_settings(context).shots) > 0 and not (runtime.QUEUE is not None and runtime.QUEUE.active)

    def _start(self, context):
        s = _settings(context)
        names = [shot.name for shot in s.shots] if self.all else [s.active().name] if s.active() else []
        try:
            return runtime.start_queue(context, names)
        except client.ServerError as err:
            self.report({"ERROR"}, err.message)
            s.status_line = err.message
            return None

    def _current(self):
        return runtime.QUEUE

    def _cancel(self) -> None:
        runtime.cancel()

    def _outcome(self, queue) -> tuple[str, str]:
        if queue.cancelled:
            return "WARNING", "generation cancelled; nothing was changed"
        return ("WARNING" if queue.failures else "INFO"), queue.status_text()


class HOSIG_OT_cancel(bpy.types.Operator):
    """Stop the running generation or path preview; the scene stays exactly as it was before it"""

    bl_idname = "hosig.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        runtime.cancel()
        runtime.cancel_preview()
        return {"FINISHED"}


class HOSIG_OT_forget_server_cache(bpy.types.Operator):
    """Forget the uploaded scene and body (after changing the server or the SMPL-X model)"""

    bl_idname = "hosig.forget_cache"
    bl_label = "Reset Server Cache"

    def execute(self, context):
        CACHE.body.clear()
        CACHE.scenes.clear()
        return {"FINISHED"}


class HOSIG_OT_import_clip(bpy.types.Operator, ImportHelper):
    """Import HOSIG clip files (.npz) as keyed SMPL-X armatures (the body comes from the server)"""

    bl_idname = "hosig.import_clip"
    bl_label = "Import HOSIG Clip"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    frame_start: IntProperty(name="Start Frame", default=1, description="Frame of the clip's first frame")
    key_objects: BoolProperty(name="Key Carried Object", default=True,
                              description="Key the carried object (same name in this file) to follow the hand")

    def _paths(self) -> list[Path]:
        names = [f.name for f in self.files if f.name]
        if names:
            return [Path(self.directory) / n for n in names]
        if self.filepath and Path(self.filepath).is_file():
            return [Path(self.filepath)]
        from .clip_import import clip_paths  # a folder: every clip in it (`hosig batch` output)

        return clip_paths(self.directory or self.filepath)

    def execute(self, context):
        from .clip_import import import_clips

        config = server_config(context)
        try:
            body = get_body(config)
        except client.ServerError as err:
            self.report({"ERROR"}, f"HOSIG import needs the server for the body model: {err.message}")
            return {"CANCELLED"}
        try:
            made = import_clips(self._paths(), body, scene_objects=self.key_objects,
                                options=RunOptions(frame_start=self.frame_start, reduce=_settings(context).reduce_keys))
        except (ValueError, OSError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"imported {len(made)} clip(s): " + ", ".join(a.name for a in made))
        return {"FINISHED"}


def _queue_idle() -> bool:
    return not (runtime.QUEUE is not None and runtime.QUEUE.active)


def _has_take(context) -> bool:
    shot = _active_shot(context)
    arm = shot.armature if shot is not None else None
    return arm is not None and arm.animation_data is not None and arm.animation_data.action is not None \
        and "hosig_poses" in arm.animation_data.action


class _TakeRuns:
    """Start runs of the active shot with their own requests; the timer streams them into new takes."""

    @classmethod
    def poll(cls, context):
        return _queue_idle() and _has_take(context)

    def _start(self, context, make) -> set[str]:
        from . import regenerate

        shot = _active_shot(context)
        try:
            body = get_body(server_config(context))
            specs, note = make(regenerate, shot, body)
            runtime.start_runs(context, shot.name, specs)
        except (client.ServerError, ValueError) as err:
            message = getattr(err, "message", str(err))
            self.report({"ERROR"}, message)
            _settings(context).status_line = message
            return {"CANCELLED"}
        self.report({"INFO"}, note)
        return {"FINISHED"}


class HOSIG_OT_regenerate(_TakeRuns, bpy.types.Operator):
    """Regenerate the shot around the keys you changed: they become anchors; the result is a new take
    (the edited one is kept); a failed or cancelled run changes nothing"""

    bl_idname = "hosig.regenerate"
    bl_label = "Regenerate Around Edits"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        def make(regenerate, shot, body):
            frames = (shot.range_first, shot.range_last) if shot.use_range else None
            spec, anchors, (first, last) = regenerate.regenerate_spec(shot, body, frames)
            return [spec], f"regenerating frames {first}–{last} of the take with {len(anchors)} anchor(s)"

        return self._start(context, make)


class HOSIG_OT_variations(_TakeRuns, bpy.types.Operator):
    """Make N takes of the shot with other seeds, scored by the server's gross-failure checks and listed best first"""

    bl_idname = "hosig.variations"
    bl_label = "Generate Variations"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        def make(regenerate, shot, body):
            return regenerate.variation_specs(shot, shot.variations), f"{shot.variations} variation(s) queued"

        return self._start(context, make)


class HOSIG_OT_take_use(bpy.types.Operator):
    """Show this take on the shot's armature (the other takes stay in the file)"""

    bl_idname = "hosig.take_use"
    bl_label = "Use Take"
    bl_options = {"REGISTER", "UNDO"}

    keep: BoolProperty(name="Keep Only This", default=False, description="Delete the other variation takes")

    @classmethod
    def poll(cls, context):
        shot = _active_shot(context)
        return shot is not None and 0 <= shot.active_take < len(shot.takes) and _queue_idle()

    def execute(self, context):
        from . import regenerate

        shot = _active_shot(context)
        try:
            (regenerate.keep_take if self.keep else regenerate.use_take)(shot, shot.active_take)
        except ValueError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(HOSIG_OT_import_clip.bl_idname, text="HOSIG clip (.npz)")


CLASSES = (HOSIG_OT_server_check, HOSIG_OT_server_start, HOSIG_OT_pick_start, HOSIG_OT_pick_target,
           HOSIG_OT_shot_add, HOSIG_OT_shot_duplicate, HOSIG_OT_shot_remove, HOSIG_OT_shot_move,
           HOSIG_OT_plan_preview, HOSIG_OT_generate, HOSIG_OT_cancel, HOSIG_OT_forget_server_cache,
           HOSIG_OT_import_clip, HOSIG_OT_regenerate, HOSIG_OT_variations, HOSIG_OT_take_use)

# Registers CLASSES in order and unregisters them in reverse (Blender's own helper).
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    _unregister_classes()
