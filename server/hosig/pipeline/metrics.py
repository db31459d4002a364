"""The few quality numbers every `done` summary carries (cheap: no SDF queries over the clip).

WHY separate from `hosig.eval`: eval measures benchmark suites; these are per-request sanity
numbers a user sees at once (did the hand arrive, did the body follow the path, did the object
land where asked). They reuse `hosig.eval.metrics` definitions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hosig.body.skeleton import JOINT_INDEX
from hosig.eval.metrics import floor_penetration, foot_skating, trajectory_adherence


def clip_metrics(clip: Any, scene: Any, grasp: Any, approach: Any, carry: Any, place_point: Any,
                 body: Any = None) -> dict[str, float | None]:
    """Per-request metrics (metres, cm/s) of a finished clip.

    With ``body``, ``sole_sliding_cm_s`` (the soles touching the floor: what an animator sees
    skate) comes second, where the add-on's one-line summary shows it; the height-only
    ``foot_skating_cm_s`` also counts a swinging foot passing low over the floor."""
    out: dict[str, float | None] = {}
    if clip.n_frames == 0:
        return out
    joints = np.asarray(clip.joints, dtype=np.float64)
    floor_z = float(getattr(scene, "floor_z", 0.0))
    walk_end = min(clip.n_frames, int(round(float(approach.duration_s) * clip.fps)) + 1)
    out["path_deviation_m"] = trajectory_adherence(joints, np.asarray(approach.waypoints), slice(0, walk_end))
    if body is not None:
        from hosig.eval.geometry import clip_sole_sliding

        out["sole_sliding_cm_s"] = float(clip_sole_sliding(body, clip.poses, clip.trans, floor_z=floor_z).mean_cm_s)
    out["floor_penetration_m"] = floor_penetration(joints, floor_z)
    out["foot_skating_cm_s"] = foot_skating(joints, floor_z=floor_z).mean_cm_s
    g = clip.grasp_frame
    if 0 <= g < clip.n_frames:
        wrist = JOINT_INDEX[f"{grasp.hand}_wrist"]
        out["wrist_error_m"] = float(np.linalg.norm(joints[g, wrist] - np.asarray(grasp.wrist, dtype=np.float64)))
    out["grasp_contact_m"] = float(grasp.contact_distance_m) if grasp.contact_distance_m is not None else None
    if clip.object_transforms is not None and clip.object_name:
        bounds = np.asarray(scene.object(clip.object_name).bounds, dtype=np.float64)
        centre = np.append(bounds.mean(axis=0), 1.0)
        moved = clip.object_transforms.astype(np.float64) @ centre  # (T,4)
        if 0 <= g < clip.n_frames:
            out["object_attach_jump_m"] = float(np.linalg.norm(moved[g, :3] - centre[:3]))
        if place_point is not None:
            bottom = np.array([centre[0], centre[1], bounds[0, 2], 1.0])
            final = clip.object_transforms[-1].astype(np.float64) @ bottom
            out["place_error_m"] = float(np.linalg.norm(final[:3] - np.asarray(place_point, dtype=np.float64)))
    return {k: (round(v, 5) if isinstance(v, float) and np.isfinite(v) else None) for k, v in out.items()}
