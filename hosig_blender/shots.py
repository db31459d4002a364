"""The shot list: RNA properties stored in the .blend (saved and reloaded with the file).

A shot is one request (start pose, target, action, place, seed) plus its outcome (status,
result line, the armature it made). Targets are object pointers so renaming an object in the
outliner keeps the shot valid; the name is sent to the server at generation time.
"""

from __future__ import annotations

import math

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, FloatVectorProperty,
                       IntProperty, PointerProperty, StringProperty)

ACTION_ITEMS = [
    ("reach", "Reach", "Walk to the object and reach for it"),
    ("pick", "Pick", "Walk to the object, grasp it and lift it"),
    ("pick-place", "Pick & Place", "Pick the object up and carry it to a place"),
]
STATUS_ITEMS = [
    ("NEW", "New", "Not generated yet", "DOT", 0),
    ("QUEUED", "Queued", "Waiting for its turn", "SORTTIME", 1),
    ("RUNNING", "Running", "Generating", "PLAY", 2),
    ("DONE", "Done", "Generated", "CHECKMARK", 3),
    ("FAILED", "Failed", "The last generation failed", "ERROR", 4),
    ("CANCELLED", "Cancelled", "The last generation was cancelled", "CANCEL", 5),
]
PLACE_ITEMS = [
    ("OBJECT", "Object", "Place onto an object (e.g. a shelf)"),
    ("POINT", "Point", "Place at a 3D point"),
]


def _request_changed(_self, _context) -> None:
    """Start or target edited: refresh the path preview (debounced /plan)."""
    from . import runtime

    runtime.schedule_plan_refresh()


def _mesh_poll(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH" and obj.get("hosig_body") is None


class HOSIG_Take(bpy.types.PropertyGroup):
    """One take of a shot: the action a generation, a regeneration or a variation made (issue #20)."""

    name: StringProperty(name="Name", default="Take")
    action: PointerProperty(name="Action", type=bpy.types.Action)
    kind: StringProperty(name="Kind", default="generate", description="generate, regenerate or variation")
    seed: IntProperty(name="Seed", default=0)
    score: FloatProperty(name="Score", default=-1.0, description="Gross-failure score from the server (lower is better; -1 unscored)")
    failures: StringProperty(name="Failures", default="")
    anchors: StringProperty(name="Anchors", default="", description="Each anchor: met, or not met and why")


class HOSIG_UL_takes(bpy.types.UIList):
    """Take rows: name, score, failures."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.label(text=item.name, icon="ACTION")
        row.label(text="—" if item.score < 0 else f"{item.score:.2f}")
        if item.failures:
            row.label(text=item.failures, icon="ERROR")

    def filter_items(self, context, data, propname):
        """Best first: scored takes by score, then the unscored in the order they were made."""
        takes = getattr(data, propname)
        order = sorted(range(len(takes)), key=lambda i: (takes[i].score < 0, takes[i].score, i))
        new_index = [0] * len(takes)
        for rank, i in enumerate(order):
            new_index[i] = rank
        return [], new_index


class HOSIG_Shot(bpy.types.PropertyGroup):
    """One generation request and its result."""

    name: StringProperty(name="Name", default="Shot")
    start: FloatVectorProperty(name="Start", size=2, subtype="XYZ", unit="LENGTH", description="Start position on the floor (world X, Y)", update=_request_changed)
    heading: FloatProperty(name="Heading", subtype="ANGLE", default=0.0, description="Facing direction at the start (about +Z, 0 faces +X)", update=_request_changed)
    use_heading: BoolProperty(name="Use Heading", default=True, description="Send the heading; off lets the planner face the path")
    has_start: BoolProperty(name="Has Start", default=False)
    target: PointerProperty(name="Target", type=bpy.types.Object, poll=_mesh_poll, description="Object to reach or pick", update=_request_changed)
    action: EnumProperty(name="Action", items=ACTION_ITEMS, default="pick")
    place_mode: EnumProperty(name="Place", items=PLACE_ITEMS, default="OBJECT")
    place_object: PointerProperty(name="Place On", type=bpy.types.Object, poll=_mesh_poll)
    place_point: FloatVectorProperty(name="Place Point", size=3, subtype="XYZ", unit="LENGTH")
    seed: IntProperty(name="Seed", default=0, min=0)
    status: EnumProperty(name="Status", items=STATUS_ITEMS, default="NEW")
    result: StringProperty(name="Result", default="", description="Summary or error of the last generation")
    armature: PointerProperty(name="Armature", type=bpy.types.Object)
    generations: IntProperty(name="Generations", default=0, min=0)
    takes: CollectionProperty(type=HOSIG_Take)
    active_take: IntProperty(name="Active Take", default=0)
    variations: IntProperty(name="Variations", default=3, min=1, max=8, description="Takes Generate Variations makes")
    use_range: BoolProperty(name="Set Range", default=False, description="Regenerate these frames instead of the span around the edits")
    range_first: IntProperty(name="First", default=1)
    range_last: IntProperty(name="Last", default=60)

    def start_triplet(self) -> tuple[float, float, float | None]:
        return (float(self.start[0]), float(self.start[1]), float(self.heading) if self.use_heading else None)

    def place_value(self) -> str | list[float] | None:
        if self.action != "pick-place":
            return None
        if self.place_mode == "OBJECT":
            return self.place_object.name if self.place_object else None
        return [float(v) for v in self.place_point]


class HOSIG_SceneSettings(bpy.types.PropertyGroup):
    """Per-scene add-on state: the shots and the generation options."""

    shots: CollectionProperty(type=HOSIG_Shot)
    active_shot: IntProperty(name="Active Shot", default=0)
    frame_start_mode: EnumProperty(
        name="Start Frame",
        items=[("CURRENT", "Current Frame", "Start at the scene's current frame"),
               ("CUSTOM", "Custom", "Start at a chosen frame")],
        default="CURRENT",
    )
    frame_start: IntProperty(name="Frame", default=1)
    reduce_keys: BoolProperty(name="Reduce Keys", default=False, description="Keep the fewest keys within the tolerance (linear between keys)")
    tolerance_deg: FloatProperty(name="Tolerance", default=0.5, min=0.01, max=10.0, description="Rotation tolerance in degrees")
    tolerance_mm: FloatProperty(name="Location Tolerance (mm)", default=2.0, min=0.1, max=50.0)
    show_path: BoolProperty(name="Show Path", default=True)
    status_line: StringProperty(name="Status", default="")
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")

    def active(self) -> HOSIG_Shot | None:
        if 0 <= self.active_shot < len(self.shots):
            return self.shots[self.active_shot]
        return None

    def quat_tolerance(self) -> float:
        """Quaternion-component tolerance matching ``tolerance_deg`` (|dq| ~ angle/2)."""
        return math.radians(self.tolerance_deg) / 2.0


class HOSIG_UL_shots(bpy.types.UIList):
    """Shot list rows: name, action, target, status."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        shot = item
        status_icon = {k: i for k, _, _, i, _ in STATUS_ITEMS}[shot.status]
        row = layout.row(align=True)
        row.prop(shot, "name", text="", emboss=False, icon=status_icon)
        row.label(text=shot.action)
        row.label(text=shot.target.name if shot.target else "—")


def copy_shot(src: HOSIG_Shot, dst: HOSIG_Shot) -> None:
    """Copy the request fields (not the outcome) of one shot into another."""
    for key in ("start", "heading", "use_heading", "has_start", "target", "action", "place_mode",
                "place_object", "place_point", "seed"):
        setattr(dst, key, getattr(src, key))


def unique_shot_name(settings: HOSIG_SceneSettings, base: str) -> str:
    names = {s.name for s in settings.shots}
    if base not in names:
        return base
    i = 1
    while f"{base}.{i:03d}" in names:
        i += 1
    return f"{base}.{i:03d}"


CLASSES = (HOSIG_Take, HOSIG_UL_takes, HOSIG_Shot, HOSIG_SceneSettings, HOSIG_UL_shots)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.hosig = PointerProperty(type=HOSIG_SceneSettings)


def unregister() -> None:
    del bpy.types.Scene.hosig
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
