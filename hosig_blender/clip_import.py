"""Importing HOSIG clip files (``clip.npz``, ARCHITECTURE.md "hosig.clip") as keyed SMPL-X armatures.

The file is read with numpy alone (``allow_pickle=False``: strings are 0-d unicode arrays). The
armature, its skinned body and the keys are made by exactly the code streamed generations use
(`rig.build_armature`, `generation.ClipKeyer`, `generation.finalize_keys`,
`generation.key_carried_object`): an imported clip is keyed as if it had just streamed in.

Every file is read and checked (shapes, frame rate, body identity) before anything is created, so
a bad file in a batch leaves the scene untouched. Run from an operator with ``UNDO`` the whole
import is one undo step.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import bpy
import numpy as np

from . import rig
from .generation import ClipKeyer, RunOptions, body_mesh_for, ensure_collection, finalize_keys
from .keyframes import ActionWriter
from .protocol import N_JOINTS, POSE_DIM, BodyData, FramesChunk

FPS = 30
CLIP_TAG = "hosig_clip"  # custom property on imported armatures and actions: the clip file's path
OBJECT_TAG = "hosig_object"  # custom property on imported armatures: the clip's carried object, if any
OBJECT_ACTION_TAG = "hosig_object_action"  # ... and the action that keys it for this clip, if keyed


@dataclass
class ClipFile:
    """The parts of a clip file the add-on keys (Z-up world, 30 fps)."""

    path: Path
    poses: np.ndarray  # (T,165) axis-angle, global orient Z-up
    trans: np.ndarray  # (T,3) smplx translation
    joints: np.ndarray  # (T,55,3) world joints (zeros when the file has none)
    object_name: str | None
    object_transforms: np.ndarray | None  # (T,4,4) or None
    body_identity: str
    grasp_frame: int = -1
    release_frame: int = -1

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def n_frames(self) -> int:
        return int(self.poses.shape[0])

    def chunk(self) -> FramesChunk:
        """The whole clip as one `frames` chunk (what the streaming path keys)."""
        return FramesChunk(0, self.poses, self.trans, self.joints, self.object_name, self.object_transforms)


def read_clip(path: str | Path) -> ClipFile:
    """Read and check a clip file; ``ValueError`` naming the file and the problem otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"clip file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{str(path)!r} is not a readable clip file (npz): {err}") from None
    for key in ("poses", "trans"):
        if key not in data:
            raise ValueError(f"{str(path)!r} is not a HOSIG clip: it lacks the field {key!r}")

    def text(key: str) -> str:
        return str(data[key]) if key in data and data[key].ndim == 0 else ""

    poses = np.asarray(data["poses"], dtype=np.float64)
    n = poses.shape[0] if poses.ndim == 2 else -1
    if poses.shape != (n, POSE_DIM) or n < 1:
        raise ValueError(f"{str(path)!r}: field 'poses' has shape {poses.shape}, expected (T, {POSE_DIM}) with T >= 1")
    trans = np.asarray(data["trans"], dtype=np.float64)
    if trans.shape != (n, 3):
        raise ValueError(f"{str(path)!r}: field 'trans' has shape {trans.shape}, expected ({n}, 3)")
    joints = np.asarray(data.get("joints", np.zeros((n, N_JOINTS, 3))), dtype=np.float64)
    if joints.shape != (n, N_JOINTS, 3):
        raise ValueError(f"{str(path)!r}: field 'joints' has shape {joints.shape}, expected ({n}, {N_JOINTS}, 3)")
    mats = data.get("object_transforms")
    mats = None if mats is None or len(mats) == 0 else np.asarray(mats, dtype=np.float64)
    if mats is not None and mats.shape != (n, 4, 4):
        raise ValueError(f"{str(path)!r}: field 'object_transforms' has shape {mats.shape}, expected ({n}, 4, 4)")
    fps = float(data["mocap_frame_rate"]) if "mocap_frame_rate" in data else float(FPS)
    if abs(fps - FPS) > 1e-6:
        raise ValueError(f"{str(path)!r} is at {fps:g} fps; HOSIG clips are {FPS} fps")
    for key, arr in (("poses", poses), ("trans", trans), ("joints", joints), ("object_transforms", mats)):
        if arr is not None and not np.isfinite(arr).all():
            raise ValueError(f"{str(path)!r}: field {key!r} contains NaN or infinite values")
    return ClipFile(path=path, poses=poses, trans=trans, joints=joints, object_name=text("object_name") or None,
                    object_transforms=mats, body_identity=text("body_identity"),
                    grasp_frame=int(data["grasp_frame"]) if "grasp_frame" in data else -1,
                    release_frame=int(data["release_frame"]) if "release_frame" in data else -1)


def check_identity(clip: ClipFile, body: BodyData) -> None:
    """A clip keys only onto the body it was generated with (``body_identity``; files without one,
    e.g. other tools' AMASS-style npz, are accepted)."""
    if clip.body_identity and clip.body_identity != body.identity:
        raise ValueError(f"clip {str(clip.path)!r} was made for body {clip.body_identity!r}, but this body is "
                         f"{body.identity!r}: start the server with the clip's body model (hosig serve --smplx-dir)")


def import_clip(path: str | Path, body: BodyData, name: str | None = None, collection: bpy.types.Collection | None = None,
                scene_objects: bool = True, options: RunOptions | None = None) -> bpy.types.Object:
    """One clip file -> a new keyed armature named ``name`` (default: the file's stem).

    ``collection``: where the armature and its body go (default: the "HOSIG" collection of the
    current scene). ``scene_objects``: key the carried object (``object_name``) from
    ``object_transforms`` when this file has an object of that name. ``options``: keying options
    (default: clip frame 0 on frame 1, Bezier keys on every frame).
    A bad file or another body identity raises ``ValueError`` before anything is created.
    """
    clip = read_clip(path)
    check_identity(clip, body)
    return _build(clip, body, name or clip.name, collection, scene_objects, options)


def import_clips(paths: Iterable[str | Path], body: BodyData, names: list[str] | None = None,
                 collection: bpy.types.Collection | None = None, scene_objects: bool = True,
                 options: RunOptions | None = None) -> list[bpy.types.Object]:
    """Several clip files, one armature each; every file is checked before any is imported."""
    clips = [read_clip(p) for p in paths]
    if names is not None and len(names) != len(clips):
        raise ValueError(f"{len(names)} names for {len(clips)} clips")
    for clip in clips:
        check_identity(clip, body)
    made: list[bpy.types.Object] = []
    try:
        for i, clip in enumerate(clips):
            made.append(_build(clip, body, names[i] if names else clip.name, collection, scene_objects, options))
    except Exception:
        for arm in made:  # all or nothing
            _remove(arm)
        raise
    return made


def clip_paths(directory: str | Path) -> list[Path]:
    """The clip files of a folder (`hosig batch` output: ``<shot>.npz`` beside manifest.json)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{str(directory)!r} is not a folder")
    paths = sorted(p for p in directory.glob("*.npz") if p.is_file())
    if not paths:
        raise ValueError(f"no clip files (*.npz) in {str(directory)!r}")
    return paths


def import_folder(directory: str | Path, body: BodyData, collection: bpy.types.Collection | None = None,
                  scene_objects: bool = True, options: RunOptions | None = None) -> list[bpy.types.Object]:
    """Every ``*.npz`` clip of a `hosig batch` output folder, one armature per clip named after its
    shot (the file stem), in name order."""
    return import_clips(clip_paths(directory), body, None, collection, scene_objects, options)


def _build(clip: ClipFile, body: BodyData, name: str, collection: bpy.types.Collection | None,
           scene_objects: bool, options: RunOptions | None) -> bpy.types.Object:
    """Armature + keys for a checked clip (what `ShotRun` does, minus the streaming)."""
    options = options or RunOptions(frame_start=1)
    scene = bpy.context.scene
    new_collection = collection is None and bpy.data.collections.get(options.collection_name) is None
    coll = collection if collection is not None else ensure_collection(scene, options.collection_name)
    n_meshes = len(bpy.data.meshes)
    mesh = body_mesh_for(body)
    new_mesh = mesh if len(bpy.data.meshes) > n_meshes else None
    arm = writer = None
    try:
        arm = rig.build_armature(name, body, coll, mesh)
        arm[CLIP_TAG] = str(clip.path)
        if clip.object_name:
            arm[OBJECT_TAG] = clip.object_name
        writer = ActionWriter(arm.name, arm)
        writer.assign(arm)
        keyer = ClipKeyer(body, arm, writer, options.frame_start)
        keyer.key(clip.chunk())
        finalize_keys(writer, options)
        writer.assign(arm)
        writer.action[CLIP_TAG] = str(clip.path)
        if scene_objects and keyer.object_moves():
            keyed = keyer.key_object(arm.name, options)
            if keyed is not None:
                arm[OBJECT_ACTION_TAG] = bpy.data.objects[keyed].animation_data.action.name
    except Exception:
        if writer is not None:
            writer.discard()
        if arm is not None:
            rig.remove_armature(arm)
        if new_mesh is not None and new_mesh.users == 0:
            bpy.data.meshes.remove(new_mesh)
        if new_collection and coll.name in bpy.data.collections and not coll.all_objects:
            bpy.data.collections.remove(coll)
        raise
    if scene.frame_end < keyer.last_frame:
        scene.frame_end = keyer.last_frame
    return arm


def _remove(arm: bpy.types.Object) -> None:
    ad = arm.animation_data
    action = ad.action if ad is not None else None
    rig.remove_armature(arm)
    if action is not None and action.users == 0:
        bpy.data.actions.remove(action)


def keyed_range(arm: bpy.types.Object) -> tuple[int, int]:
    """(first, last) keyed frame of an armature's action."""
    action = arm.animation_data.action if arm.animation_data else None
    if action is None:
        return (1, 1)
    lo, hi = action.frame_range
    return int(round(lo)), int(round(hi))
