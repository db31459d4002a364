"""Generating shots: stream from the server, key into a staging armature, commit or roll back.

Never lose work: every generation builds a new armature ("<shot> (generating)") and a new action.
Success swaps the new action into the shot's armature (the previous action keeps a fake user) or
renames the staging armature after the shot; failure or cancel deletes only what this run made.
The carried object gets its new action only on success, its old one preserved.

`GenerationQueue.step()` is the polling step: non-blocking, called from `bpy.app.timers` in the UI
and from a plain loop by headless code (`run_blocking`).

`ClipKeyer` (frames -> bone keys, chunk by chunk), `finalize_keys` and `key_carried_object` are the
one keying path: streamed generations use them here, imported clip files in `clip_import`.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import bpy
import numpy as np

from . import client, edits, rig
from .keyframes import ActionWriter, preserve_action
from .posemath import bone_quaternions, last_per_frame, make_continuous, pelvis_locations
from .protocol import BodyData, FramesChunk, ProtocolError, generate_request, merge_chunks
from .scene_export import exportable_objects, exporter
from .upload import SceneUpload

FPS = 30


@dataclass
class RunOptions:
    """How a generation is keyed."""

    frame_start: int = 1
    reduce: bool = False
    tolerance_quat: float = 0.0044  # ~0.5 degree
    tolerance_loc: float = 0.002  # metres
    collection_name: str = "HOSIG"


@dataclass
class ServerCache:
    """What one Blender session remembers about a server: its body and uploaded scenes."""

    body: dict[str, BodyData] = field(default_factory=dict)  # url -> body
    scenes: dict[tuple[str, str], str] = field(default_factory=dict)  # (url, payload sha) -> scene id


CACHE = ServerCache()


def get_body(config: client.ServerConfig) -> BodyData:
    body = CACHE.body.get(config.url)
    if body is None:
        try:
            body = BodyData.from_json(client.request(config, "GET", "/body", timeout_s=60))
        except ProtocolError as err:
            raise client.ServerError("bad_answer", str(err)) from None
        CACHE.body[config.url] = body
    return body


def start_upload(config: client.ServerConfig, context: bpy.types.Context) -> SceneUpload:
    """The visible scene's export + upload, to be advanced in short steps (`SceneUpload.step`)."""
    context.evaluated_depsgraph_get()  # brings the view layer up to date (objects just removed leave holes)
    names = [obj.name for obj in exportable_objects(context)]
    return SceneUpload(config, names, exporter(context), CACHE.scenes)


def upload_scene(config: client.ServerConfig, context: bpy.types.Context) -> str:
    """Upload the visible scene (once per content) and return the server's scene id (blocking:
    scripts and the path preview; the generation queue steps `start_upload` from its timer)."""
    return start_upload(config, context).run()


def body_mesh_for(body: BodyData) -> bpy.types.Mesh:
    """The shared rest-body mesh for this body identity (built once per .blend)."""
    for mesh in bpy.data.meshes:
        if mesh.get(rig.BODY_TAG) == body.identity:
            return mesh
    return rig.build_body_mesh(body)


def ensure_collection(scene: bpy.types.Scene, name: str) -> bpy.types.Collection:
    coll = bpy.data.collections.get(name)
    if coll is None:
        coll = bpy.data.collections.new(name)
    if coll.name not in scene.collection.children:
        scene.collection.children.link(coll)
    return coll


def find_shot(scene: bpy.types.Scene, name: str):
    for shot in scene.hosig.shots:
        if shot.name == name:
            return shot
    return None


class _ClosedStream:
    """Stand-in when the stream could not even be created (so roll-back can close it)."""

    finished = True

    def poll(self) -> list:
        return []

    def close(self) -> None:
        pass


@dataclass
class RunSpec:
    """A run other than a plain generation (issue #20): its request, built once the scene id is
    known, and the kind of take it makes ("regenerate" around edits or a "variation")."""

    build_request: Callable[[str], dict[str, Any]]
    kind: str = "regenerate"
    frame_start: int | None = None  # Blender frame of clip frame 0 (the base take's)
    seed: int = 0


class ShotRun:
    """One shot's generation: request, stream, staging keys, then commit or roll back."""

    def __init__(self, scene: bpy.types.Scene, shot_name: str, config: client.ServerConfig,
                 scene_id: str, body: BodyData, options: RunOptions, spec: RunSpec | None = None) -> None:
        self.scene = scene
        self.shot_name = shot_name
        self.config = config
        self.options = options
        self.body = body
        self.state = "streaming"
        self.message = ""
        self.job_id: str | None = None
        self.frames_received = 0
        self.expected_frames: int | None = None
        self.fraction = 0.0
        self.stage = "queued"
        self.summary: dict[str, Any] = {}
        self.step_ms: list[float] = []
        self.tick_budget_s = 0.004  # keying work per timer tick (UI stays responsive)
        self.final_ms = 0.0
        self.setup_ms = 0.0
        self.started = time.perf_counter()
        self.first_frames_s: float | None = None  # request sent -> first frames keyed
        shot = find_shot(scene, shot_name)
        if shot is None:
            raise client.ServerError("bad_request", f"shot {shot_name!r} no longer exists")
        if shot.target is None:
            raise client.ServerError("bad_request", f"shot {shot_name!r} has no target object")
        self.action_kind = shot.action
        self.target_name = shot.target.name
        place = shot.place_value()
        if shot.action == "pick-place" and place is None:
            raise client.ServerError("bad_request", f"shot {shot_name!r}: pick-place needs a place object or point")
        self.spec = spec
        self.kind = spec.kind if spec is not None else "generate"
        self.seed = spec.seed if spec is not None else int(shot.seed)
        if spec is not None:
            request = spec.build_request(scene_id)
            if spec.frame_start is not None:
                from dataclasses import replace

                self.options = options = replace(options, frame_start=int(spec.frame_start))
        else:
            request = generate_request(scene_id, shot.start_triplet(), self.target_name, shot.action, place, shot.seed)
        # staging rig: visible while streaming, deleted on failure
        self._new_collection = bpy.data.collections.get(options.collection_name) is None
        coll = ensure_collection(scene, options.collection_name)
        n_meshes = len(bpy.data.meshes)
        mesh = body_mesh_for(body)
        self._new_mesh = mesh if len(bpy.data.meshes) > n_meshes else None
        self.staging = rig.build_armature(f"{shot_name} (generating)", body, coll, mesh)
        self.writer = ActionWriter(shot_name, self.staging)
        self.writer.assign(self.staging)
        self.keyer = ClipKeyer(body, self.staging, self.writer, options.frame_start)
        self._take_parts: list[FramesChunk] = []  # what the server sent, stored with the take (`store_take`)
        self._backlog: list[dict[str, Any]] = []  # events received but not yet handled (tick budget)
        try:
            self.stream = client.NdjsonStream(config, "/generate", request)
        except client.ServerError:
            self.stream = _ClosedStream()
            self._rollback("FAILED", f"cannot reach the server at {config.url}")
            raise
        shot.status = "RUNNING"
        shot.result = "generating…"

    # -- streaming ----------------------------------------------------------------------------
    def step(self) -> bool:
        """Handle whatever arrived; True while the run is still going."""
        if self.state != "streaming":
            return False
        t0 = time.perf_counter()
        try:
            self._backlog.extend(self.stream.poll())
            while self._backlog and self.state == "streaming":  # at least one event, then within budget
                self._handle(self._backlog.pop(0))
                if time.perf_counter() - t0 > self.tick_budget_s:
                    break
            if self.state == "streaming":  # write buffered keys within what is left of the tick budget
                self.writer.flush(budget_s=max(0.001, self.tick_budget_s - (time.perf_counter() - t0)))
        except Exception as err:  # noqa: BLE001 - any failure must roll back, never leave half a result
            self._rollback("FAILED", f"add-on error while keying: {type(err).__name__}: {err}")
        ms = (time.perf_counter() - t0) * 1000.0
        if self.state == "streaming":
            self.step_ms.append(ms)  # streaming ticks (the UI budget applies here)
        else:
            self.final_ms = ms  # the one tick that commits (finalize keys, swap) or rolls back
        return self.state == "streaming"

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "accepted":
            self.job_id = str(event.get("job_id"))
        elif kind == "plan":
            duration = event.get("duration_s")
            if duration:
                self.expected_frames = int(round(float(duration) * FPS))
            self.stage = "plan"
        elif kind == "progress":
            self.stage = str(event.get("stage", self.stage))
            self.fraction = float(event.get("fraction", self.fraction))
        elif kind == "frames":
            self._key_chunk(FramesChunk.from_event(event))
        elif kind == "done":
            self.summary = dict(event.get("summary") or {})
            self._commit()
        elif kind == "error":
            code = str(event.get("code", "error"))
            msg = str(event.get("message", "generation failed"))
            self._rollback("CANCELLED" if code == "cancelled" else "FAILED", f"{code}: {msg}")

    def _key_chunk(self, chunk: FramesChunk) -> None:
        self.keyer.key(chunk)  # buffered: the tick's `flush` writes them within its budget
        self._take_parts.append(chunk)
        self.frames_received = max(self.frames_received, chunk.start + chunk.count)  # frames sent again replace
        if self.first_frames_s is None:
            self.first_frames_s = time.perf_counter() - self.started
        self.stage = "motion"
        if self.expected_frames:
            self.fraction = max(self.fraction, min(1.0, self.frames_received / self.expected_frames))

    # -- outcome ------------------------------------------------------------------------------
    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Stop now: tell the server (best effort), drop the stream, roll back."""
        if self.state != "streaming":
            return
        if self.job_id:
            try:
                client.request(self.config, "POST", f"/jobs/{self.job_id}/cancel", body={}, timeout_s=2.0)
            except client.ServerError:
                pass
        self.stream.close()
        self._rollback("CANCELLED", reason)

    def _rollback(self, status: str, message: str) -> None:
        """Delete exactly what this run created; everything else stays as it was."""
        self.stream.close()
        self.writer.discard()
        if self.staging is not None and self.staging.name in bpy.data.objects:
            rig.remove_armature(self.staging)
        self.staging = None
        if self._new_mesh is not None and self._new_mesh.users == 0:
            bpy.data.meshes.remove(self._new_mesh)
        self._new_mesh = None
        coll = bpy.data.collections.get(self.options.collection_name)
        if self._new_collection and coll is not None and not coll.all_objects:
            bpy.data.collections.remove(coll)
        self.state = "cancelled" if status == "CANCELLED" else "failed"
        self.message = message
        shot = find_shot(self.scene, self.shot_name)
        if shot is not None:
            shot.status = status
            shot.result = message

    def _commit(self) -> None:
        shot = find_shot(self.scene, self.shot_name)
        if self.frames_received == 0:
            self._rollback("FAILED", "the server finished without sending any frames")
            return
        finalize_keys(self.writer, self.options)
        existing = shot.armature if shot is not None else None
        if existing is not None and existing.name in bpy.data.objects and existing.get(rig.BODY_TAG) == self.body.identity:
            preserve_action(existing)
            self.writer.assign(existing)
            rig.remove_armature(self.staging)
            armature = existing
        else:
            self.staging.name = self.shot_name
            self.staging.data.name = self.shot_name
            for child in self.staging.children:
                child.name = f"{self.shot_name}_body"
            armature = self.staging
            self.writer.assign(armature)  # renames the slot after the armature's final name
        self.staging = None
        self.writer.action.name = self.shot_name
        self.writer.action["hosig_shot"] = self.shot_name
        store_take(self.writer.action, self._take(), self.kind, self.seed, self.summary)
        keyed_object = None
        if self.action_kind in ("pick", "pick-place"):
            keyed_object = self.keyer.key_object(self.shot_name, self.options)
        end = self.keyer.last_frame
        if self.scene.frame_end < end:
            self.scene.frame_end = end
        self.state = "done"
        metrics = self.summary.get("metrics") or {}
        self.message = (f"{self.frames_received} frames ({self.frames_received / FPS:.1f} s) at "
                        f"{self.options.frame_start}–{end}" + (f", {keyed_object} keyed" if keyed_object else ""))
        if metrics:
            shown = ", ".join(f"{k} {v:.3g}" for k, v in list(metrics.items())[:3] if isinstance(v, (int, float)))
            if shown:
                self.message += f"; {shown}"
        self.message += repair_note(self.summary.get("repair"))
        if self.summary.get("mode") == "regenerate":
            met = sum(1 for a in self.summary.get("anchors", []) if a.get("met"))
            self.message += f"; anchors met {met}/{len(self.summary.get('anchors', []))}, score {self.summary.get('score', 0):.3g}"
        if shot is not None:
            shot.armature = armature
            shot.status = "DONE"
            shot.result = self.message
            shot.generations += 1
            add_take(shot, self.writer.action, self.kind, self.seed, self.summary)
        push_undo(f"HOSIG {self.kind} {self.shot_name}")

    def received_joints(self) -> np.ndarray:
        """(T,55,3) world joints of the frames received (a frame sent again: its last version); for checks."""
        whole = merge_chunks(self._take_parts)
        return whole.joints if whole is not None else np.zeros((0, 55, 3))

    def _take(self) -> edits.Take:
        """The streamed frames as one take (clip frame 0 at the run's start frame)."""
        whole = merge_chunks(self._take_parts)
        name = whole.object_name
        return edits.Take(
            whole.poses, whole.trans, self.options.frame_start, name, whole.object_transforms if name else None,
            int(self.summary.get("grasp_frame", -1) if self.summary.get("grasp_frame") is not None else -1),
            int(self.summary.get("release_frame", -1) if self.summary.get("release_frame") is not None else -1),
        )


def repair_note(report: dict[str, Any] | None) -> str:
    """What the server's repair did, for the shot's result line ('' when it found nothing to mend):
    the frames it redrew, and any failure it could not mend (look there before keeping the take)."""
    if not report or not report.get("before"):
        return ""
    kept = [a["range"] for a in report.get("attempts", []) if a.get("kept")]
    note = "; redrawn " + ", ".join(f"{a}–{b}" for a, b in kept) if kept else ""
    left = report.get("after") or []
    return note + (f"; still failing: {', '.join(left)}" if left else "; judged clean")


def push_undo(message: str) -> bool:
    """Make the finished take one undo step (Ctrl+Z goes back to before it). The keys arrive from a
    timer, outside any operator's own undo step; headless Blender has no undo stack (False)."""
    if bpy.app.background:
        return False
    try:
        return "FINISHED" in bpy.ops.ed.undo_push(message=message)
    except (RuntimeError, AttributeError):
        return False


def store_take(action: bpy.types.Action, take: "edits.Take", kind: str, seed: int, summary: dict[str, Any]) -> None:
    """Keep the frames the server sent with the take's action (ID properties, saved in the .blend):
    what *Regenerate Around Edits* compares the keys with and sends as the base clip."""
    action["hosig_poses"] = take.poses.astype(np.float64).ravel().tolist()
    action["hosig_trans"] = take.trans.astype(np.float64).ravel().tolist()
    action["hosig_frame_start"] = int(take.frame_start)
    action["hosig_grasp_frame"] = int(take.grasp_frame)
    action["hosig_release_frame"] = int(take.release_frame)
    action["hosig_kind"] = kind
    action["hosig_seed"] = int(seed)
    if summary.get("score") is not None:
        action["hosig_score"] = float(summary["score"])
    if take.object_name and take.object_transforms is not None:
        action["hosig_object_name"] = take.object_name
        action["hosig_object_transforms"] = take.object_transforms.astype(np.float64).ravel().tolist()


def load_take(action: bpy.types.Action | None) -> "edits.Take | None":
    """The take stored with ``action`` by `store_take`, or None (keys made by hand, an import)."""
    if action is None or "hosig_poses" not in action:
        return None
    poses = np.asarray(action["hosig_poses"], dtype=np.float64).reshape(-1, 165)
    trans = np.asarray(action["hosig_trans"], dtype=np.float64).reshape(-1, 3)
    obj = None
    if "hosig_object_transforms" in action:
        obj = np.asarray(action["hosig_object_transforms"], dtype=np.float64).reshape(-1, 4, 4)
    return edits.Take(poses, trans, int(action.get("hosig_frame_start", 1)), action.get("hosig_object_name"), obj,
                      int(action.get("hosig_grasp_frame", -1)), int(action.get("hosig_release_frame", -1)))


def add_take(shot, action: bpy.types.Action, kind: str, seed: int, summary: dict[str, Any]) -> None:
    """List a finished take in the shot (its action kept with a fake user) and make it active."""
    action.use_fake_user = True
    take = shot.takes.add()
    take.name = f"{kind.title()} {len(shot.takes)} (seed {seed})"
    take.action = action
    take.kind = kind
    take.seed = int(seed)
    take.score = float(summary["score"]) if summary.get("score") is not None else -1.0
    take.failures = ", ".join(summary.get("failures") or [])
    anchors = summary.get("anchors") or []
    take.anchors = "; ".join(
        f"{a['joint']}@{a['frame']}: " + ("met" if a.get("met") else f"not met ({a.get('reason')})")
        + (f" {100 * a['position_error_m']:.1f} cm" if a.get("position_error_m") is not None else "")
        for a in anchors)[:1000]
    shot.active_take = len(shot.takes) - 1

class ClipKeyer:
    """SMPL-X frames -> the keys of one armature's action, chunk after chunk.

    The single keying path of the add-on: `ShotRun` feeds it each streamed `frames` event,
    `clip_import` a whole clip file as one chunk. Clip frame ``i`` lands on Blender frame
    ``frame_start + i``. Keys are buffered in the `ActionWriter` (``flush``/``finalize`` write
    them); the carried object's transforms are collected for `key_object`.
    """

    def __init__(self, body: BodyData, armature: bpy.types.Object, writer: ActionWriter, frame_start: int) -> None:
        self.body = body
        self.writer = writer
        self.frame_start = int(frame_start)
        self.rest_rot = rig.rest_rotations(armature, body.joint_names)
        self.bone_paths = [f'pose.bones["{n}"].rotation_quaternion' for n in body.joint_names]
        self._last_quat: np.ndarray | None = None
        self.frames_keyed = 0
        self.object_name: str | None = None
        self._object_frames: list[np.ndarray] = []
        self._object_mats: list[np.ndarray] = []

    @property
    def last_frame(self) -> int:
        """The Blender frame of the last keyed clip frame."""
        return int(self.frame_start + self.frames_keyed - 1)

    def key(self, chunk: FramesChunk, flush: bool = False) -> np.ndarray:
        """Buffer the keys of clip frames ``chunk.start ..``; returns their Blender frames."""
        body = self.body
        frames = self.frame_start + chunk.start + np.arange(chunk.count, dtype=np.float64)
        quats = make_continuous(bone_quaternions(body.full_pose(chunk.poses), self.rest_rot), self._last_quat)
        self._last_quat = quats[-1]
        for j, path in enumerate(self.bone_paths):
            self.writer.set_group(path, body.joint_names[j], frames, quats[:, j], flush=False)
        locs = pelvis_locations(chunk.trans, body.rest_joints, self.rest_rot[0])
        self.writer.set_group(f'pose.bones["{body.joint_names[0]}"].location', body.joint_names[0], frames, locs, flush=False)
        if chunk.object_transforms is not None and chunk.object_name:
            self.object_name = chunk.object_name
            self._object_frames.append(frames)
            self._object_mats.append(chunk.object_transforms)
        self.frames_keyed = max(self.frames_keyed, chunk.start + chunk.count)
        if flush:
            self.writer.flush()
        return frames

    def object_moves(self) -> bool:
        """True when the collected object transforms ever differ from the identity."""
        return any(not np.allclose(m, np.eye(4), atol=1e-6) for m in self._object_mats)

    def key_object(self, action_prefix: str, options: RunOptions) -> str | None:
        """Key the carried object named by the frames (if this file has it) to follow the hand, in a
        new action ``<action_prefix>_<object>``; returns the object's name, or None."""
        if not self.object_name or not self._object_mats:
            return None
        obj = bpy.data.objects.get(self.object_name)
        if obj is None:
            return None
        frames, mats = last_per_frame(np.concatenate(self._object_frames), np.concatenate(self._object_mats))
        key_carried_object(obj, frames, mats,
                           f"{action_prefix}_{obj.name}", options)
        return obj.name


def finalize_keys(writer: ActionWriter, options: RunOptions) -> int:
    """The clip is complete: Bezier keys on every frame, or the fewest within the tolerances."""
    if options.reduce:
        return writer.finalize(options.tolerance_quat, options.tolerance_loc)
    return writer.finalize()


def key_carried_object(obj: bpy.types.Object, frames: np.ndarray, deltas: np.ndarray, action_name: str,
                       options: RunOptions) -> None:
    """Key ``obj`` to follow the hand: world pose ``delta_t @ pose at the start frame``.

    The server's object transforms move the object's scene-space geometry (identity before the
    grasp). The new keys go into a new action; the object's previous action keeps a fake user.
    """
    from mathutils import Matrix

    base = obj.matrix_world.copy()
    parent_inv = None
    if obj.parent is not None:
        parent_inv = (obj.parent.matrix_world @ obj.matrix_parent_inverse).inverted()
    mode = obj.rotation_mode
    locs, rots, scales = [], [], []
    prev_euler = None
    for mat in deltas:
        world = Matrix([list(row) for row in mat]) @ base
        local = parent_inv @ world if parent_inv is not None else world
        loc, quat, scale = local.decompose()
        locs.append(tuple(loc))
        scales.append(tuple(scale))
        if mode == "QUATERNION":
            rots.append(tuple(quat))
        elif mode == "AXIS_ANGLE":
            axis, angle = quat.to_axis_angle()
            rots.append((angle, *axis))
        else:
            euler = quat.to_euler(mode, prev_euler) if prev_euler is not None else quat.to_euler(mode)
            prev_euler = euler
            rots.append(tuple(euler))
    rot_path = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(mode, "rotation_euler")
    rot_values = np.array(rots)
    if mode == "QUATERNION":
        rot_values = make_continuous(rot_values)
    writer = ActionWriter(action_name, obj)
    writer.set_group("location", "Object Transforms", frames, np.array(locs))
    writer.set_group(rot_path, "Object Transforms", frames, rot_values)
    writer.set_group("scale", "Object Transforms", frames, np.array(scales))
    if options.reduce:
        writer.finalize(options.tolerance_quat if mode == "QUATERNION" else options.tolerance_quat * 2, options.tolerance_loc)
    else:
        writer.finalize()
    preserve_action(obj)
    writer.assign(obj)


class GenerationQueue:
    """Shots generated one after another; `step()` is the single polling entry point."""

    def __init__(self, context: bpy.types.Context, shot_names: list[str], config: client.ServerConfig,
                 options: RunOptions, on_update: Callable[["GenerationQueue"], None] | None = None) -> None:
        self.scene = context.scene
        self.config = config
        self.options = options
        self.pending = list(shot_names)
        self.specs: dict[int, RunSpec] = {}  # position in `pending` order -> a run's own request
        self._order = 0
        self.finished: list[ShotRun] = []
        self.failures: list[tuple[str, str]] = []
        self.current: ShotRun | None = None
        self.on_update = on_update
        self.cancelled = False
        self.started = time.perf_counter()
        # one /body fetch for the whole queue (errors surface here, before any change) and one
        # scene upload, advanced by `step` in short steps so the UI never waits for it
        self.body = get_body(config)
        self.upload = start_upload(config, context)
        self.scene_id: str | None = None
        for name in self.pending:
            shot = find_shot(self.scene, name)
            if shot is not None:
                shot.status = "QUEUED"
        # The stream allocates many short-lived floats (freed by reference counting); a full cyclic
        # collection over Blender's heap triggered by them costs 50-200 ms in one tick. Pause the
        # cyclic collector while streaming and restore it when the queue ends.
        self._gc_was_enabled = gc.isenabled()
        gc.disable()

    def _restore_gc(self) -> None:
        if getattr(self, "_gc_was_enabled", False) and not gc.isenabled():
            gc.enable()
        self._gc_was_enabled = False

    def add_runs(self, name: str, specs: list[RunSpec]) -> None:
        """Queue runs of shot ``name`` with their own requests (regenerate, variations)."""
        for spec in specs:
            self.specs[self._order + len(self.pending)] = spec
            self.pending.append(name)
        shot = find_shot(self.scene, name)
        if shot is not None:
            shot.status = "QUEUED"

    @property
    def active(self) -> bool:
        return self.current is not None or bool(self.pending)

    def step(self) -> bool:
        """Advance the upload or the current shot (non-blocking); True while work remains."""
        if self.scene_id is None and not self.cancelled:
            return self._step_upload()
        if self.current is None:
            if not self.pending or self.cancelled:
                self._restore_gc()
                return False
            name = self.pending.pop(0)
            spec = self.specs.pop(self._order, None)
            self._order += 1
            try:
                t0 = time.perf_counter()
                self.current = ShotRun(self.scene, name, self.config, self.scene_id, self.body, self.options, spec)
                self.current.setup_ms = (time.perf_counter() - t0) * 1000.0
            except (client.ServerError, ValueError) as err:
                self.failures.append((name, str(err)))
                shot = find_shot(self.scene, name)
                if shot is not None:
                    shot.status = "FAILED"
                    shot.result = str(err)
                if not self.active:
                    self._restore_gc()
                self._notify()
                return self.active
        if not self.current.step():
            run = self.current
            self.finished.append(run)
            if run.state != "done":
                self.failures.append((run.shot_name, run.message))
            self.current = None
        if not self.active:
            self._restore_gc()
        self._notify()
        return self.active

    def _step_upload(self) -> bool:
        """One bounded step of the scene upload; when it fails every queued shot fails with its error."""
        if self.upload.step():
            self._notify()
            return True
        if self.upload.scene_id is not None:
            self.scene_id = self.upload.scene_id
            self._notify()
            return self.active
        message = self.upload.error.message if self.upload.error else "the scene upload stopped"
        for name in self.pending:
            self.failures.append((name, message))
            shot = find_shot(self.scene, name)
            if shot is not None:
                shot.status = "FAILED"
                shot.result = message
        self.pending.clear()
        self._restore_gc()
        self._notify()
        return False

    def cancel(self) -> None:
        """Esc / Cancel: stop the upload or the running shot (rolled back) and drop the queued ones."""
        self.cancelled = True
        self.upload.cancel()
        for name in self.pending:
            shot = find_shot(self.scene, name)
            if shot is not None and shot.status == "QUEUED":
                shot.status = "CANCELLED"
                shot.result = "cancelled before it started"
        self.pending.clear()
        if self.current is not None:
            self.current.cancel()
            self.finished.append(self.current)
            self.failures.append((self.current.shot_name, self.current.message))
            self.current = None
        self._restore_gc()
        self._notify()

    def status_text(self) -> str:
        if self.scene_id is None and not self.upload.finished:
            return f"HOSIG uploading the scene {int(self.upload.fraction * 100)}% (Esc cancels)"
        if self.current is not None:
            run = self.current
            total = len(self.finished) + len(self.pending) + 1
            return (f"HOSIG {len(self.finished) + 1}/{total} {run.shot_name}: {run.stage} "
                    f"{int(run.fraction * 100)}% ({run.frames_received} frames)")
        done = sum(1 for r in self.finished if r.state == "done")
        text = f"HOSIG: {done} shot(s) generated, {len(self.failures)} failed"
        if self.failures:
            text += "; " + "; ".join(f"{n}: {m}" for n, m in self.failures[:2])
        return text

    def progress(self) -> float:
        total = len(self.finished) + len(self.pending) + (1 if self.current else 0)
        if total == 0:
            return 1.0
        cur = self.current.fraction if self.current else 0.0
        return (len(self.finished) + cur) / total

    def _notify(self) -> None:
        if self.on_update is not None:
            self.on_update(self)


def run_blocking(queue: GenerationQueue, timeout_s: float = 600.0, sleep_s: float = 0.005,
                 on_tick: Callable[[GenerationQueue], bool] | None = None) -> GenerationQueue:
    """Headless driver: call the same polling step the UI timer calls until the queue is empty.

    ``on_tick`` may return True to request a cancel (tests use it to cancel mid-stream).
    """
    deadline = time.perf_counter() + timeout_s
    while queue.step():
        if on_tick is not None and on_tick(queue):
            queue.cancel()
            break
        if time.perf_counter() > deadline:
            queue.cancel()
            raise TimeoutError(f"generation did not finish within {timeout_s:.0f} s")
        time.sleep(sleep_s)
    return queue
