"""CMU motion capture (the cgspeed/Hahne "Daz-friendly" BVH conversion) -> `Capture` + joint map.

Facts (shared/data/cmu/README.md): 120 fps, centimetres, Y up, rest faces +Z (left = +X), one
43-joint skeleton, no toe joint (the foot's End Site is the toe), frame 0 is a synthetic rest pose
and frames 1-3 hold a retargeting jolt (dropped). Fingers, eyes and jaw carry no capture.

The SMPL-X spine has three joints where CMU has two: SMPL-X spine2 sits at CMU's abdomen height,
spine3 at the chest, so those are the position targets and spine1 (no CMU counterpart) is
initialised halfway between the hip and abdomen rotations and left to the fit.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hosig.errors import InputError
from hosig.motion.data.bvh import read_bvh
from hosig.motion.data.capture import Capture, JointMap, bvh_to_capture, end_name

CMU_DROP_FRAMES = 4
CMU_UNIT_SCALE = 0.01  # centimetres -> metres
CMU_FPS = 120.0


def _sides(template: dict[str, str]) -> dict[str, str]:
    """Expand '{s}'/'{c}' templates to both sides (SMPL-X 'left'/'right', CMU 'l'/'r')."""
    out: dict[str, str] = {}
    for smplx_name, cmu_name in template.items():
        if "{s}" in smplx_name:
            for s, c in (("left", "l"), ("right", "r")):
                out[smplx_name.format(s=s)] = cmu_name.format(c=c)
        else:
            out[smplx_name] = cmu_name
    return out


CMU_POSITIONS: dict[str, str] = _sides({
    "pelvis": "hip",
    "spine2": "abdomen",
    "spine3": "chest",
    "neck": "neck",
    "head": "head",
    "{s}_collar": "{c}Collar",
    "{s}_shoulder": "{c}Shldr",
    "{s}_elbow": "{c}ForeArm",
    "{s}_wrist": "{c}Hand",
    "{s}_hip": "{c}Thigh",
    "{s}_knee": "{c}Shin",
    "{s}_ankle": "{c}Foot",
    "{s}_foot": "{c}Foot/End",
})  # fmt: skip


def _rot(a: str, b: str | None = None, w: float = 0.0) -> tuple[str, str, float]:
    return (a, b or a, w)


CMU_ROTATIONS: dict[str, tuple[str, str, float]] = {
    "pelvis": _rot("hip"),
    "spine1": _rot("hip", "abdomen", 0.5),
    "spine2": _rot("abdomen"),
    "spine3": _rot("chest"),
    "neck": _rot("neck"),
    "head": _rot("head"),
}
for _s, _c in (("left", "l"), ("right", "r")):
    CMU_ROTATIONS.update({
        f"{_s}_collar": _rot(f"{_c}Collar"),
        f"{_s}_shoulder": _rot(f"{_c}Shldr"),
        f"{_s}_elbow": _rot(f"{_c}ForeArm"),
        f"{_s}_wrist": _rot(f"{_c}Hand"),
        f"{_s}_hip": _rot(f"{_c}Thigh"),
        f"{_s}_knee": _rot(f"{_c}Shin"),
        f"{_s}_ankle": _rot(f"{_c}Foot"),
    })  # fmt: skip

# Rest-pose alignment bones: SMPL-X joint -> child, and the CMU bone that plays the same role.
CMU_DIRECTIONS: dict[str, tuple[str, str, str]] = {
    "spine1": ("spine2", "hip", "abdomen"),
    "spine2": ("spine3", "abdomen", "chest"),
    "spine3": ("neck", "chest", "neck"),
    "neck": ("head", "neck", "head"),
}
for _s, _c in (("left", "l"), ("right", "r")):
    CMU_DIRECTIONS.update({
        f"{_s}_collar": (f"{_s}_shoulder", f"{_c}Collar", f"{_c}Shldr"),
        f"{_s}_shoulder": (f"{_s}_elbow", f"{_c}Shldr", f"{_c}ForeArm"),
        f"{_s}_elbow": (f"{_s}_wrist", f"{_c}ForeArm", f"{_c}Hand"),
        f"{_s}_wrist": (f"{_s}_middle1", f"{_c}Hand", f"{_c}Mid1"),
        f"{_s}_hip": (f"{_s}_knee", f"{_c}Thigh", f"{_c}Shin"),
        f"{_s}_knee": (f"{_s}_ankle", f"{_c}Shin", f"{_c}Foot"),
        f"{_s}_ankle": (f"{_s}_foot", f"{_c}Foot", end_name(f"{_c}Foot")),
    })  # fmt: skip

CMU_JOINT_MAP = JointMap(
    name="CMU",
    positions=CMU_POSITIONS,
    rotations=CMU_ROTATIONS,
    directions=CMU_DIRECTIONS,
    rigid=frozenset({"left_hip", "right_hip", "left_collar", "right_collar"}),
)


def load_cmu_capture(path: str | Path, target_fps: float = 30.0) -> Capture:
    """Read one CMU BVH into a 30 fps Z-up metre `Capture` (first 4 frames dropped), map-checked."""
    motion = read_bvh(path)
    cap = bvh_to_capture(
        motion, unit_scale=CMU_UNIT_SCALE, up="y", drop_frames=CMU_DROP_FRAMES, target_fps=target_fps,
        name=str(path),
    )  # fmt: skip
    CMU_JOINT_MAP.check(cap)
    return cap


def read_index(folder: str | Path) -> dict[str, dict[str, str]]:
    """INDEX.tsv of a CMU folder (or its parent) -> {file stem: row}; empty when absent."""
    folder = Path(folder)
    for cand in (folder / "INDEX.tsv", folder.parent / "INDEX.tsv"):
        if cand.is_file():
            try:
                with cand.open(newline="") as fh:
                    rows = list(csv.DictReader(fh, delimiter="\t"))
            except (OSError, csv.Error) as err:
                raise InputError(f"{cand}: cannot read the CMU index: {err}") from None
            return {Path(r.get("file", "")).stem: r for r in rows if r.get("file")}
    return {}
