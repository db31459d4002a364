"""Load a SMPL-X body model (a real file or the embedded mannequin) and run it in Blender's Z-up world.

Why a wrapper: every stage needs the same three things — a differentiable posed body in Z-up world
coordinates, a fast skeleton-only forward kinematics consistent with it, and a stable identity of
the body (written into clips and checkpoints so a motion is never replayed on the wrong skeleton).
smplx itself prints warnings on stdout; stdout is reserved for ``--json``, so loading redirects them
to stderr.
"""

from __future__ import annotations

import contextlib
import io
import functools
import hashlib
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hosig import frames
from hosig.body import skeleton as skel
from hosig.errors import InputError

MANNEQUIN_PATH = Path(__file__).resolve().parent.parent / "assets" / "mannequin" / "SMPLX_NEUTRAL.npz"
MODEL_FILENAMES = ("SMPLX_NEUTRAL.npz", "SMPLX_NEUTRAL.pkl")
REQUIRED_KEYS = (
    "v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table",
    "hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr", "lmk_faces_idx", "lmk_bary_coords",
)  # fmt: skip


@dataclass
class BodyOutput:
    """Posed body in Z-up world: vertices (B,V,3), joints (B,55,3)."""

    vertices: torch.Tensor
    joints: torch.Tensor


@dataclass
class RestMesh:
    """What the Blender add-on needs to build the rig: Z-up rest mesh and top-4 skinning weights."""

    vertices: np.ndarray  # (V,3) float32, model rest pose rotated by YUP_TO_ZUP
    faces: np.ndarray  # (F,3) int32
    weights_index: np.ndarray  # (V,4) int32 joint indices
    weights_value: np.ndarray  # (V,4) float32, rows sum to 1
    rest_joints: np.ndarray  # (55,3) float32, Z-up


class BodyModel:
    """A loaded SMPL-X model. Parameters and outputs are Z-up world (see `forward`)."""

    def __init__(self, module: torch.nn.Module, source: str, identity: str, path: Path, device: str) -> None:
        self.smplx = module
        self.source = source
        self.identity = identity
        self.path = path
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.parents = skel.PARENTS.copy()
        self.joint_names = list(skel.JOINT_NAMES)
        v = module.v_template.detach().cpu().numpy().astype(np.float64)
        jreg = module.J_regressor.detach().cpu().numpy().astype(np.float64)
        self.v_template_y = v  # (V,3) model frame
        self.rest_joints_y = jreg[: skel.NUM_JOINTS] @ v  # (55,3) model frame
        self.faces = np.asarray(module.faces, dtype=np.int64)
        self.num_vertices = int(v.shape[0])
        self.num_betas = int(module.num_betas)
        self.num_expression = int(module.num_expression_coeffs)
        self.hands_mean = {
            "left": module.left_hand_mean.detach().cpu().numpy().copy(),
            "right": module.right_hand_mean.detach().cpu().numpy().copy(),
        }
        self.floor_y = float(v[:, 1].min())  # sole height of the rest body (model frame)
        self.standing_height = float(v[:, 1].max() - v[:, 1].min())
        self.standing_pelvis_height = float(self.rest_joints_y[0, 1] - self.floor_y)  # pelvis joint over the soles at rest
        # rest offsets of each joint from its parent (model frame), for fk
        offsets = self.rest_joints_y.copy()
        offsets[1:] -= self.rest_joints_y[self.parents[1:]]
        self._offsets = torch.tensor(offsets, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ posing
    def _batch(self, value: torch.Tensor | np.ndarray | None, batch: int, width: int) -> torch.Tensor:
        if value is None:
            return torch.zeros(batch, width, dtype=self.dtype, device=self.device)
        t = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        return t.reshape(-1, width).expand(batch, width) if t.numel() == width else t.reshape(batch, width)

    def forward(
        self,
        global_orient: torch.Tensor | np.ndarray,
        transl: torch.Tensor | np.ndarray,
        body_pose: torch.Tensor | np.ndarray | None = None,
        left_hand_pose: torch.Tensor | np.ndarray | None = None,
        right_hand_pose: torch.Tensor | np.ndarray | None = None,
        jaw_pose: torch.Tensor | np.ndarray | None = None,
        leye_pose: torch.Tensor | np.ndarray | None = None,
        reye_pose: torch.Tensor | np.ndarray | None = None,
        betas: torch.Tensor | np.ndarray | None = None,
        expression: torch.Tensor | np.ndarray | None = None,
    ) -> BodyOutput:
        """Posed body in Z-up world. All parameters are batched (B, ...) axis-angle.

        ``global_orient`` (B,3) is the Z-up orient (``frames.YUP_TO_ZUP`` already applied) and
        ``transl`` (B,3) the matching translation (``frames.transl_yup_to_zup``), so the output is
        world coordinates directly. Hand poses are relative to the hands mean (smplx,
        flat_hand_mean=False). Differentiable with respect to every tensor argument.
        """
        go = torch.as_tensor(global_orient, dtype=self.dtype, device=self.device).reshape(-1, 3)
        batch = go.shape[0]
        out = self.smplx(
            global_orient=go,
            transl=self._batch(transl, batch, 3),
            body_pose=self._batch(body_pose, batch, 3 * skel.NUM_BODY_JOINTS),
            left_hand_pose=self._batch(left_hand_pose, batch, 45),
            right_hand_pose=self._batch(right_hand_pose, batch, 45),
            jaw_pose=self._batch(jaw_pose, batch, 3),
            leye_pose=self._batch(leye_pose, batch, 3),
            reye_pose=self._batch(reye_pose, batch, 3),
            betas=self._batch(betas, batch, self.num_betas),
            expression=self._batch(expression, batch, self.num_expression),
            return_verts=True,
        )
        return BodyOutput(vertices=out.vertices, joints=out.joints[:, : skel.NUM_JOINTS])

    __call__ = forward

    def fk(self, rotmats: torch.Tensor, root_pos: torch.Tensor) -> torch.Tensor:
        """Skeleton-only forward kinematics in Z-up world (rest skeleton of zero betas).

        ``rotmats`` (B,55,3,3): local joint rotations, ``rotmats[:,0]`` the Z-up global orient;
        ``root_pos`` (B,3) the pelvis joint's world position. Returns joints (B,55,3); matches
        `forward`'s joints for the same pose (hand rotations here are absolute, i.e. hands mean
        included).
        """
        rotmats = rotmats.to(self.dtype)
        offsets = self._offsets.to(rotmats.device)
        glob: list[torch.Tensor] = [rotmats[:, 0]]
        pos: list[torch.Tensor] = [root_pos.to(self.dtype)]
        for j in range(1, skel.NUM_JOINTS):
            p = int(self.parents[j])
            glob.append(glob[p] @ rotmats[:, j])
            pos.append(pos[p] + (glob[p] @ offsets[j][:, None]).squeeze(-1))
        return torch.stack(pos, dim=1)

    def full_pose_rotmats(self, full_pose: torch.Tensor) -> torch.Tensor:
        """(B,165) axis-angle full pose as smplx assembles it (hand poses relative to the hands mean)
        -> (B,55,3,3) absolute local rotations for `fk`."""
        from hosig.body.rotations import axis_angle_to_matrix

        pose = full_pose.reshape(-1, skel.NUM_JOINTS, 3).clone()
        mean_l = torch.as_tensor(self.hands_mean["left"], dtype=pose.dtype, device=pose.device).reshape(15, 3)
        mean_r = torch.as_tensor(self.hands_mean["right"], dtype=pose.dtype, device=pose.device).reshape(15, 3)
        pose[:, 25:40] = pose[:, 25:40] + mean_l
        pose[:, 40:55] = pose[:, 40:55] + mean_r
        return axis_angle_to_matrix(pose)

    def zero_pose(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """Keyword arguments for `forward`: every parameter zero (the model-frame rest pose)."""
        z = functools.partial(torch.zeros, dtype=self.dtype, device=self.device)
        return {
            "global_orient": z(batch, 3), "transl": z(batch, 3), "body_pose": z(batch, 63),
            "left_hand_pose": z(batch, 45), "right_hand_pose": z(batch, 45), "jaw_pose": z(batch, 3),
            "leye_pose": z(batch, 3), "reye_pose": z(batch, 3), "betas": z(batch, self.num_betas),
            "expression": z(batch, self.num_expression),
        }  # fmt: skip

    def rest_joints_for(self, betas: np.ndarray | None = None) -> np.ndarray:
        """(55,3) model-frame rest joints for ``betas`` (B,) — e.g. the J0 that
        `frames.transl_yup_to_zup` needs when a clip has non-zero betas."""
        if betas is None or not np.any(betas):
            return self.rest_joints_y.copy()
        b = np.zeros(self.num_betas)
        b[: min(len(betas), self.num_betas)] = np.asarray(betas, dtype=np.float64)[: self.num_betas]
        dirs = self.smplx.shapedirs.detach().cpu().numpy().astype(np.float64)  # (V,3,num_betas)
        v = self.v_template_y + dirs @ b
        jreg = self.smplx.J_regressor.detach().cpu().numpy().astype(np.float64)
        return jreg[: skel.NUM_JOINTS] @ v

    # ------------------------------------------------------------------ standing placement
    def standing_orient(self, heading: float) -> np.ndarray:
        """(3,) Z-up axis-angle global orient of an upright body facing ``heading``."""
        from scipy.spatial.transform import Rotation

        return Rotation.from_matrix(frames.heading_to_orient(heading)).as_rotvec()

    def standing_transl(self, heading: float, x: float, y: float) -> np.ndarray:
        """(3,) transl putting the upright rest-pose body (zero betas) with its soles on z=0 and its
        pelvis at (x, y), facing ``heading`` (use with `standing_orient`)."""
        del heading  # the orient turns about the pelvis, which does not move
        j0 = self.rest_joints_y[0]
        pelvis_world = np.array([x, y, j0[1] - self.floor_y])
        return pelvis_world - j0

    # ------------------------------------------------------------------ exports
    def rest_mesh_zup(self) -> RestMesh:
        """Rest mesh, top-4 weights and rest joints in Z-up (model rest pose rotated by YUP_TO_ZUP)."""
        w = self.smplx.lbs_weights.detach().cpu().numpy()
        order = np.argsort(-w, axis=1, kind="stable")[:, :4]
        value = np.take_along_axis(w, order, axis=1)
        value = value / np.maximum(value.sum(axis=1, keepdims=True), 1e-12)
        return RestMesh(
            vertices=frames.points_yup_to_zup(self.v_template_y).astype(np.float32),
            faces=self.faces.astype(np.int32),
            weights_index=order.astype(np.int32),
            weights_value=value.astype(np.float32),
            rest_joints=frames.points_yup_to_zup(self.rest_joints_y).astype(np.float32),
        )

    def info(self) -> dict:
        return {
            "source": self.source,
            "identity": self.identity,
            "path": str(self.path),
            "vertices": self.num_vertices,
            "faces": int(len(self.faces)),
            "joints": skel.NUM_JOINTS,
            "standing_height_m": round(self.standing_height, 4),
            "num_betas": self.num_betas,
            "joint_names": self.joint_names,
        }


# ---------------------------------------------------------------------------------------------------
# Loading


def resolve_model_path(smplx_dir: str | Path | None = None) -> tuple[Path, bool]:
    """(model file, is_embedded_mannequin) from the argument, $HOSIG_SMPLX_DIR, or the mannequin."""
    chosen = smplx_dir if smplx_dir not in (None, "") else os.environ.get("HOSIG_SMPLX_DIR") or None
    if chosen is None:
        return MANNEQUIN_PATH, True
    path = Path(chosen).expanduser()
    if path.is_dir():
        for name in MODEL_FILENAMES:
            if (path / name).is_file():
                return path / name, False
        raise InputError(f"no SMPL-X model in folder {path}: expected one of {', '.join(MODEL_FILENAMES)}")
    if not path.exists():
        raise InputError(f"SMPL-X model not found: {path}")
    if path.suffix not in (".npz", ".pkl"):
        raise InputError(f"unsupported SMPL-X model file {path}: expected .npz or .pkl")
    return path, False


def _check_npz(path: Path) -> None:
    """Fail early with a message naming the file and what is wrong (smplx's own errors are opaque)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            missing = [k for k in REQUIRED_KEYS if k not in keys]
            if missing:
                raise InputError(f"{path} is not a SMPL-X model file: missing keys {', '.join(missing)}")
            v = data["v_template"]
            jreg = data["J_regressor"]
            w = data["weights"]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise InputError(f"cannot read SMPL-X model file {path}: {type(err).__name__}: {err}") from None
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputError(f"{path}: v_template has shape {v.shape}, expected (V,3)")
    if jreg.shape[0] < skel.NUM_JOINTS or jreg.shape[1] != v.shape[0]:
        raise InputError(f"{path}: J_regressor has shape {jreg.shape}, expected (55,{v.shape[0]})")
    if w.shape != (v.shape[0], jreg.shape[0]):
        raise InputError(f"{path}: weights has shape {w.shape}, expected ({v.shape[0]},{jreg.shape[0]})")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mannequin_version(path: Path) -> int:
    with np.load(path, allow_pickle=False) as data:
        return int(data["mannequin_version"]) if "mannequin_version" in data.files else 0


@functools.lru_cache(maxsize=8)
def _load(path_str: str, embedded: bool, device: str, mtime_ns: int) -> BodyModel:
    import smplx

    path = Path(path_str)
    if path.suffix == ".npz":
        _check_npz(path)
    identity = f"mannequin-v{_mannequin_version(path)}" if embedded else f"sha256:{_file_sha256(path)}"
    try:
        # smplx prints notices on stdout (stdout is for --json): capture them; the mannequin's
        # 10+10 shape/expression fallback is by design, so its notice is dropped, others go to stderr.
        notices = io.StringIO()
        with contextlib.redirect_stdout(notices):
            kwargs = dict(use_pca=False, flat_hand_mean=False, ext=path.suffix[1:], num_betas=10,
                          num_expression_coeffs=10, batch_size=1)
            if path.name.lower().startswith("smplx"):
                module = smplx.create(str(path), model_type="smplx", **kwargs)
            else:  # smplx.create infers the type from the file name; the class it would build:
                module = smplx.SMPLX(str(path), **kwargs)
        if not embedded and notices.getvalue():
            sys.stderr.write(notices.getvalue())
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure inside smplx means an unusable file
        raise InputError(f"cannot load SMPL-X model {path}: {type(err).__name__}: {err}") from None
    if module.v_template.shape[0] == 0 or module.J_regressor.shape[0] < skel.NUM_JOINTS:
        raise InputError(f"{path}: not a 55-joint SMPL-X model")
    if not bool(module.posedirs.any()):
        # All-zero pose correctives (the mannequin): smplx would still multiply a (B,486) pose
        # feature by a (486, V*3) zero matrix, most of a forward's cost. A (486,3) zero matrix gives
        # (B,1,3) offsets that broadcast over the vertices: the same result, ~10x cheaper.
        module.posedirs = torch.zeros(module.posedirs.shape[0], 3, dtype=module.posedirs.dtype)
    module = module.to(device)
    module.requires_grad_(False)
    module.eval()
    return BodyModel(module, "mannequin" if embedded else str(path), identity, path, device)


def load_body_model(smplx_dir: str | Path | None = None, device: str = "cpu") -> BodyModel:
    """The body model: ``smplx_dir`` (folder with SMPLX_NEUTRAL.npz/.pkl, or a file), else
    ``$HOSIG_SMPLX_DIR``, else the embedded mannequin. Cached per file (and its mtime) and device."""
    path, embedded = resolve_model_path(smplx_dir)
    if not path.is_file():
        raise InputError(f"SMPL-X model not found: {path}" + (" (the embedded mannequin is missing: run `hosig body build-mannequin --out " + str(path) + "`)" if embedded else ""))
    return _load(str(path.resolve()), embedded, device, path.stat().st_mtime_ns)


def timed_load(smplx_dir: str | Path | None = None, device: str = "cpu") -> tuple[BodyModel, float]:
    """`load_body_model` and the wall time it took in milliseconds (cold or cached)."""
    t0 = time.perf_counter()
    body = load_body_model(smplx_dir, device)
    return body, (time.perf_counter() - t0) * 1000.0
