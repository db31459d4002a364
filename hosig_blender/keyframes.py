"""Writing keys fast: one action per generation, channels filled in bulk with `foreach_set`.

Blender 4.4+/5.x: layered actions (slot for the object, layer, keyframe strip, channelbag —
`Action.fcurves` is gone in 5.0). Blender 4.2–4.3: the legacy `Action.fcurves`. Keys are appended
chunk by chunk as frames stream in (the whole channel is rewritten with one `foreach_set`, which
is cheaper than inserting keys one by one), then optionally reduced to the fewest keys within a
tolerance when the clip is complete.
"""

from __future__ import annotations

import time

import bpy
import numpy as np

from .posemath import last_per_frame, make_continuous, reduce_keys

# enum indices of KeyframePoint.interpolation (CONSTANT, LINEAR, BEZIER, ...) for foreach_set
_INTERP = {"LINEAR": 1, "BEZIER": 2}


def layered_actions_available() -> bool:
    """True on Blender 4.4+ (slotted, layered actions)."""
    return hasattr(bpy.types.Action, "bl_rna") and "slots" in bpy.types.Action.bl_rna.properties


class ActionWriter:
    """An action for one object, grown channel group by channel group.

    ``set_group(data_path, group, frames (n,), values (n,C))`` appends ``n`` keys to the C curves
    ``data_path[0..C-1]`` (created on first use, grouped under ``group`` for the Graph Editor).
    """

    def __init__(self, name: str, target: bpy.types.Object) -> None:
        self.action = bpy.data.actions.new(name)
        self.target_name = target.name
        self.layered = layered_actions_available()
        self.slot = None
        self._channelbag = None
        if self.layered:
            self.slot = self.action.slots.new(id_type="OBJECT", name=target.name)
            layer = self.action.layers.new("Layer")
            strip = layer.strips.new(type="KEYFRAME")
            self._channelbag = strip.channelbag(self.slot, ensure=True)
        self._groups: dict[str, object] = {}
        self._curves: dict[str, list] = {}  # data_path -> [fcurve per component]
        self._frames: dict[str, list[np.ndarray]] = {}
        self._values: dict[str, list[np.ndarray]] = {}
        self._group_of: dict[str, str] = {}
        self._pending: dict[str, None] = {}  # ordered set of data paths with unwritten keys

    # -- curve creation -----------------------------------------------------------------------
    def _group(self, name: str):
        grp = self._groups.get(name)
        if grp is None:
            coll = self._channelbag.groups if self.layered else self.action.groups
            grp = coll.new(name)
            self._groups[name] = grp
        return grp

    def _ensure_curves(self, data_path: str, group: str, width: int) -> list:
        curves = self._curves.get(data_path)
        if curves is None:
            grp = self._group(group)
            curves = []
            for i in range(width):
                if self.layered:
                    fc = self._channelbag.fcurves.new(data_path, index=i)
                    fc.group = grp
                else:  # Blender 4.2 – 4.3
                    fc = self.action.fcurves.new(data_path, index=i, action_group=group)
                curves.append(fc)
            self._curves[data_path] = curves
            self._frames[data_path] = []
            self._values[data_path] = []
            self._group_of[data_path] = group
        return curves

    # -- keys ---------------------------------------------------------------------------------
    def set_group(self, data_path: str, group: str, frames: np.ndarray, values: np.ndarray, flush: bool = True) -> None:
        """Append keys at ``frames`` (n,) with ``values`` (n,C) to the curves of ``data_path``.

        With ``flush=False`` the keys are only buffered; `flush` writes them later (the streaming
        timer spreads that work over ticks to stay within its budget).
        """
        values = np.asarray(values, dtype=np.float64)
        self._ensure_curves(data_path, group, values.shape[1])
        self._frames[data_path].append(np.asarray(frames, dtype=np.float64))
        self._values[data_path].append(values)
        self._pending[data_path] = None
        if flush:
            self.flush()

    def _arrays(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """All buffered keys of a channel group, merged once into a single array pair (a frame keyed
        again replaces its earlier key)."""
        if len(self._frames[path]) > 1:
            frames = np.concatenate(self._frames[path])
            values = np.concatenate(self._values[path])
            merged, values_once = last_per_frame(frames, values)
            if len(merged) < len(frames) and path.endswith("rotation_quaternion"):
                values_once = make_continuous(values_once)  # a replaced range may come back sign-flipped
            self._frames[path], self._values[path] = [merged], [values_once]
        return self._frames[path][0], self._values[path][0]

    def flush(self, budget_s: float | None = None) -> bool:
        """Write buffered keys (linear while streaming: no handle recalculation, which costs
        O(keys) per curve); stops after ``budget_s``. True when nothing is left pending."""
        t0 = time.perf_counter()
        for path in list(self._pending):
            frames, values = self._arrays(path)
            for c, fc in enumerate(self._curves[path]):
                _write_curve(fc, frames, values[:, c], "LINEAR", update=False)
            del self._pending[path]
            if budget_s is not None and time.perf_counter() - t0 > budget_s:
                break
        return not self._pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    def finalize(self, tolerance: float | None = None, tolerance_location: float | None = None) -> int:
        """The clip is complete: every-frame keys become Bezier (Blender's default, smooth between
        frames), or with a tolerance the fewest linear keys within it. Returns the key count."""
        self.flush()
        if tolerance is not None:
            return self.reduce(tolerance, tolerance_location)
        for path, curves in self._curves.items():
            frames, values = self._arrays(path)
            for c, fc in enumerate(curves):
                _write_curve(fc, frames, values[:, c], "BEZIER", update=True)
        return self.key_count()

    def reduce(self, tolerance: float, tolerance_location: float | None = None) -> int:
        """Replace every channel group with its fewest keys within the tolerance; returns key count.

        Location channels (``.location``) use ``tolerance_location`` (metres) when given. Reduced
        keys interpolate linearly so the bound holds between keys too.
        """
        self.flush()
        total = 0
        for path, curves in self._curves.items():
            frames, values = self._arrays(path)
            tol = tolerance_location if (tolerance_location is not None and path.endswith("location")) else tolerance
            keep = reduce_keys(values, tol)
            for c, fc in enumerate(curves):
                fc.keyframe_points.clear()
                _write_curve(fc, frames[keep], values[keep, c], "LINEAR", update=True)
            total += len(keep) * len(curves)
        return total

    def key_count(self) -> int:
        return sum(len(fc.keyframe_points) for curves in self._curves.values() for fc in curves)

    def assign(self, obj: bpy.types.Object) -> None:
        """Make this action the object's active action (and slot, on layered actions)."""
        ad = obj.animation_data or obj.animation_data_create()
        if self.layered and self.slot is not None and self.slot.name_display != obj.name:
            try:  # name the slot after its final user (cosmetic; the Action editor shows it)
                self.slot.name_display = obj.name
            except (AttributeError, TypeError, RuntimeError):
                pass
        ad.action = self.action
        if self.layered and self.slot is not None:
            ad.action_slot = self.slot

    def discard(self) -> None:
        """Delete the action (failed or cancelled generation)."""
        if self.action is not None and self.action.name in bpy.data.actions:
            bpy.data.actions.remove(self.action)
        self.action = None


def _write_curve(fc, frames: np.ndarray, values: np.ndarray, interpolation: str, update: bool) -> None:
    """Grow ``fc`` to ``len(frames)`` points and write all coordinates in one call."""
    kp = fc.keyframe_points
    if len(kp) < len(frames):
        kp.add(len(frames) - len(kp))
    co = np.empty(2 * len(frames), dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    kp.foreach_set("co", co)
    kp.foreach_set("interpolation", np.full(len(frames), _INTERP[interpolation], dtype=np.int32))
    if update:
        fc.update()


def preserve_action(obj: bpy.types.Object) -> bpy.types.Action | None:
    """Give the object's current action a fake user so replacing it never loses hand edits."""
    ad = obj.animation_data
    if ad is not None and ad.action is not None:
        ad.action.use_fake_user = True
        return ad.action
    return None
