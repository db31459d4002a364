"""The wire protocol as the add-on sees it (docs/ARCHITECTURE.md, "Wire protocol").

Pure Python + numpy (Blender bundles numpy): decoding `/body`, `frames` events and encoding the
scene mesh payload. No bpy here, so the tests exercise it without Blender.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

MESH_FORMAT = "hosig-mesh/1"
MESH_CONTENT_TYPE = "application/vnd.hosig.mesh+json"
ACTIONS = ("reach", "pick", "pick-place")
N_JOINTS = 55
POSE_DIM = 165


class ProtocolError(Exception):
    """A server answer that does not follow the wire protocol (names the field)."""


def b64_array(text: str, dtype: str, width: int, field: str) -> np.ndarray:
    """Base64 little-endian array -> (N, width) numpy array of ``dtype`` ('<f4' or '<i4')."""
    try:
        raw = base64.b64decode(text)
    except (ValueError, TypeError) as err:
        raise ProtocolError(f"field {field!r}: not base64 ({err})") from None
    arr = np.frombuffer(raw, dtype=dtype)
    if arr.size % width:
        raise ProtocolError(f"field {field!r}: {arr.size} values is not a multiple of {width}")
    return arr.reshape(-1, width)


def encode_array(arr: np.ndarray, dtype: str) -> str:
    """numpy array -> base64 of its little-endian ``dtype`` bytes (C order)."""
    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


@dataclass
class BodyData:
    """`GET /body`: the rest body the armature is built from (Z-up world, metres)."""

    identity: str
    joint_names: list[str]  # 55
    parents: np.ndarray  # (55,) int, -1 for the pelvis
    rest_joints: np.ndarray  # (55,3) Z-up
    vertices: np.ndarray  # (V,3) float32 Z-up rest
    faces: np.ndarray  # (F,3) int32
    weights_index: np.ndarray  # (V,4) int32 joint indices
    weights_value: np.ndarray  # (V,4) float32
    # (90,) left then right hand mean pose: smplx (flat_hand_mean=False) adds it to the streamed
    # hand poses, so the bones need it too. Absent from older servers -> zeros (flat hands).
    hands_mean: np.ndarray | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BodyData":
        try:
            names = [str(n) for n in data["joint_names"]]
            parents = np.asarray(data["parents"], dtype=np.int64)
            rest = np.asarray(data["rest_joints"], dtype=np.float64).reshape(-1, 3)
            body = cls(
                identity=str(data.get("identity", "unknown")),
                joint_names=names,
                parents=parents,
                rest_joints=rest,
                vertices=b64_array(data["vertices"], "<f4", 3, "vertices"),
                faces=b64_array(data["faces"], "<i4", 3, "faces"),
                weights_index=b64_array(data["weights_index"], "<i4", 4, "weights_index"),
                weights_value=b64_array(data["weights_value"], "<f4", 4, "weights_value"),
                hands_mean=_hands_mean(data.get("hands_mean")),
            )
        except KeyError as err:
            raise ProtocolError(f"/body answer lacks field {err.args[0]!r}") from None
        if len(names) != N_JOINTS or parents.shape != (N_JOINTS,) or rest.shape != (N_JOINTS, 3):
            raise ProtocolError(f"/body: expected {N_JOINTS} joints, got {len(names)} names, parents {parents.shape}, rest {rest.shape}")
        if body.weights_index.shape[0] != body.vertices.shape[0]:
            raise ProtocolError("/body: weights_index and vertices differ in length")
        return body

    def full_pose(self, poses: np.ndarray) -> np.ndarray:
        """(T,165) streamed poses -> (T,165) absolute joint rotations (hands mean added)."""
        poses = np.asarray(poses, dtype=np.float64)
        if self.hands_mean is None:
            return poses
        out = poses.copy()
        out[:, 75:165] += self.hands_mean
        return out

    def to_json(self) -> dict[str, Any]:
        """Inverse of `from_json` (tests and fake servers build /body answers with it)."""
        extra = {} if self.hands_mean is None else {"hands_mean": {"left": self.hands_mean[:45].tolist(), "right": self.hands_mean[45:].tolist()}}
        return {**extra,
            "identity": self.identity,
            "joint_names": list(self.joint_names),
            "parents": [int(p) for p in self.parents],
            "rest_joints": np.asarray(self.rest_joints, dtype=float).tolist(),
            "vertices": encode_array(self.vertices, "<f4"),
            "faces": encode_array(self.faces, "<i4"),
            "weights_index": encode_array(self.weights_index, "<i4"),
            "weights_value": encode_array(self.weights_value, "<f4"),
        }


def _hands_mean(value: Any) -> np.ndarray | None:
    """`hands_mean` as {"left": [45], "right": [45]} or a flat [90] list -> (90,) or None."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = list(value["left"]) + list(value["right"])
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (90,):
        raise ProtocolError(f"/body field 'hands_mean': expected 90 values (left 45 + right 45), got {arr.size}")
    return arr


@dataclass
class FramesChunk:
    """One `frames` event as arrays: frame ``start`` .. ``start+count-1`` of the clip."""

    start: int
    poses: np.ndarray  # (n,165) axis-angle, global orient Z-up
    trans: np.ndarray  # (n,3)
    joints: np.ndarray  # (n,55,3) world
    object_name: str | None
    object_transforms: np.ndarray | None  # (n,4,4) world, or None

    @property
    def count(self) -> int:
        return int(self.poses.shape[0])

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "FramesChunk":
        try:
            poses = np.asarray(event["poses"], dtype=np.float64).reshape(-1, POSE_DIM)
            n = poses.shape[0]
            trans = np.asarray(event["trans"], dtype=np.float64).reshape(n, 3)
            joints = np.asarray(event.get("joints") or np.zeros((n, N_JOINTS, 3)), dtype=np.float64).reshape(n, N_JOINTS, 3)
            start = int(event["start"])
        except KeyError as err:
            raise ProtocolError(f"frames event lacks field {err.args[0]!r}") from None
        except ValueError as err:
            raise ProtocolError(f"frames event has arrays of the wrong shape: {err}") from None
        mats = event.get("object_transforms")
        obj_t = None
        if mats is not None:
            obj_t = np.asarray(mats, dtype=np.float64).reshape(n, 4, 4)
        return cls(start, poses, trans, joints, event.get("object_name"), obj_t)


def merge_chunks(chunks: list[FramesChunk]) -> FramesChunk | None:
    """The streamed chunks as one chunk from frame 0 (None when there are none). A frame sent again
    (the server re-sends the frames its repair redrew) replaces the earlier one: the last sent wins."""
    if not chunks:
        return None
    n = max(c.start + c.count for c in chunks)
    poses, trans = np.zeros((n, POSE_DIM)), np.zeros((n, 3))
    joints = np.zeros((n, N_JOINTS, 3))
    carried = all(c.object_transforms is not None for c in chunks)
    obj = np.broadcast_to(np.eye(4), (n, 4, 4)).copy() if carried else None
    for c in chunks:
        sl = slice(c.start, c.start + c.count)
        poses[sl], trans[sl], joints[sl] = c.poses, c.trans, c.joints
        if obj is not None:
            obj[sl] = c.object_transforms
    name = next((c.object_name for c in chunks if c.object_name), None)
    return FramesChunk(0, poses, trans, joints, name, obj)


def mesh_payload(objects: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """[(name, vertices (N,3) world Z-up, faces (M,3))] -> the `hosig-mesh/1` JSON payload."""
    return {
        "format": MESH_FORMAT,
        "objects": [
            {"name": name, "vertices": encode_array(v, "<f4"), "faces": encode_array(f, "<i4")}
            for name, v, f in objects
        ],
    }


def generate_request(scene_id: str, start: tuple[float, float, float | None], target: str, action: str,
                     place: str | list[float] | None = None, seed: int = 0, hand: str | None = None) -> dict[str, Any]:
    """The JSON body of `POST /generate` (fields of the engine's GenerateRequest)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    req: dict[str, Any] = {"scene": scene_id, "start": [float(v) for v in start if v is not None],
                           "target": target, "action": action, "seed": int(seed)}
    if action == "pick-place":
        if place is None:
            raise ValueError("pick-place needs a place target (object name or [x,y,z])")
        req["place"] = place
    if hand:
        req["hand"] = hand
    return req
