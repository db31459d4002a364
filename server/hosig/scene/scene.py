"""`Scene` and `SceneObject`: named triangle meshes in Blender's world frame plus derived data.

Everything here is Z-up metres. Derived data (floor height, bounds, occupancy, SDF) is computed
lazily, once per scene (and per exclusion set for occupancy/SDF), because a planner may only need
the floor while the motion guidance needs the SDF. Heavy grids are also kept on disk (see
`hosig.scene.cache`) keyed by the scene's content hash and the config.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

import numpy as np
import trimesh

from hosig.errors import InputError, UnknownObjectError
from hosig.scene import cache as _cache
from hosig.scene.config import SceneConfig
from hosig.scene.floor import find_floor_z
from hosig.scene.occupancy import Occupancy, build_occupancy
from hosig.scene.sdf import SceneSDF, build_sdf


@dataclass(eq=False)
class SceneObject:
    """One named object (Blender object / glTF node): world-space Z-up triangles."""

    name: str
    vertices: np.ndarray  # (N,3) float64, Z-up world metres
    faces: np.ndarray  # (M,3) int64

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)

    @cached_property
    def mesh(self) -> trimesh.Trimesh:
        """trimesh view of the object (vertices as given, Z-up world)."""
        return trimesh.Trimesh(self.vertices, self.faces, process=False)

    @cached_property
    def watertight(self) -> bool:
        """Closed surface, so it is filled in the occupancy: see `is_closed`."""
        return is_closed(self.vertices, self.faces)

    @cached_property
    def bounds(self) -> np.ndarray:
        """(2,3) min and max corner."""
        if len(self.vertices) == 0:
            return np.zeros((2, 3))
        used = self.vertices[np.unique(self.faces)] if len(self.faces) else self.vertices
        return np.stack([used.min(axis=0), used.max(axis=0)])

    @property
    def size(self) -> np.ndarray:
        """(3,) extent along x, y, z."""
        return self.bounds[1] - self.bounds[0]

    @property
    def center(self) -> np.ndarray:
        """(3,) centre of the bounding box."""
        return self.bounds.mean(axis=0)

    def sample_surface(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(points (n,3), normals (n,3)) area-uniform on the surface; deterministic per seed."""
        if n <= 0 or len(self.faces) == 0:
            return np.zeros((0, 3)), np.zeros((0, 3))
        tri = self.vertices[self.faces]
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        area = 0.5 * np.linalg.norm(cross, axis=1)
        rng = np.random.default_rng(seed)
        if area.sum() <= 0:
            face = rng.integers(0, len(tri), size=n)
        else:
            face = rng.choice(len(tri), size=n, p=area / area.sum())
        r1, r2 = rng.random(n), rng.random(n)
        flip = r1 + r2 > 1
        r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
        t = tri[face]
        pts = t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])
        nrm = cross[face] / np.maximum(np.linalg.norm(cross[face], axis=1, keepdims=True), 1e-12)
        return pts, nrm

    def to_json(self) -> dict:
        return {"name": self.name, "bounds": self.bounds.tolist(), "size": self.size.tolist(), "triangles": len(self.faces)}


def is_closed(vertices: np.ndarray, faces: np.ndarray, tol: float = 1e-6) -> bool:
    """True when the oriented surface has no boundary: after welding coincident vertices, every
    edge is used equally often in both directions. Unlike trimesh's `is_watertight` this accepts
    closed parts that touch (a chair's legs under its seat), which the winding fill handles."""
    if len(faces) < 4:
        return False
    # Weld on a 21-bit-per-axis lattice over the object's box (one int64 key per vertex; a 1D
    # unique is several times faster than np.unique(axis=0) on big meshes).
    lo = vertices.min(axis=0)
    step = max(float(np.max(vertices.max(axis=0) - lo)) / (2**21 - 2), tol)
    q = np.round((vertices - lo) / step).astype(np.int64)
    _, weld = np.unique((q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2], return_inverse=True)
    f = weld.reshape(-1)[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]  # drop slivers
    if len(f) < 4:
        return False
    a = f.reshape(-1)
    b = f[:, [1, 2, 0]].reshape(-1)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    edge = lo * (int(f.max()) + 1) + hi
    _, idx = np.unique(edge, return_inverse=True)
    balance = np.bincount(idx, weights=np.where(a < b, 1.0, -1.0))
    return bool(np.all(balance == 0))


def pickable_rule(size: np.ndarray, cfg: SceneConfig) -> bool:
    """Small enough for a hand: longest side <= pick_max_dim_m (0.45 m) and either a one-hand grip
    across it (smallest horizontal side <= pick_grip_m, 0.12 m: bottles, cups, books) or small
    overall (largest horizontal side <= pick_two_hand_m, 0.35 m: boxes, laptops)."""
    sx, sy, sz = (float(s) for s in size)
    if max(sx, sy, sz) > cfg.pick_max_dim_m or max(sx, sy, sz) <= 1e-4:
        return False
    return min(sx, sy) <= cfg.pick_grip_m or max(sx, sy) <= cfg.pick_two_hand_m


class Scene:
    """Named objects (Z-up world) with lazily derived floor, bounds, occupancy and SDF."""

    def __init__(self, objects: dict[str, SceneObject], source: str, content_hash: str, config: SceneConfig) -> None:
        self.objects = objects
        self.source = source
        self.content_hash = content_hash
        self.config = config
        self._derived: dict[tuple, object] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Scene({self.source!r}, {len(self.objects)} objects, hash={self.content_hash[:12]})"

    # -- objects ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self.objects)

    def object(self, name: str) -> SceneObject:
        try:
            return self.objects[name]
        except KeyError:
            raise UnknownObjectError(name, self.names(), where=self.source) from None

    def _check_names(self, exclude: Iterable[str]) -> frozenset[str]:
        ex = frozenset(exclude)
        for name in ex:
            self.object(name)
        return ex

    def pickable(self) -> list[str]:
        """Names of objects a hand can pick up (see `pickable_rule`)."""
        return [n for n, o in self.objects.items() if pickable_rule(o.size, self.config)]

    @property
    def triangle_count(self) -> int:
        return int(sum(len(o.faces) for o in self.objects.values()))

    def mesh(self, exclude: Iterable[str] = ()) -> trimesh.Trimesh:
        """All objects except `exclude` merged into one trimesh (Z-up)."""
        ex = self._check_names(exclude)
        verts, faces, off = [], [], 0
        for name, obj in self.objects.items():
            if name in ex:
                continue
            verts.append(obj.vertices)
            faces.append(obj.faces + off)
            off += len(obj.vertices)
        if not verts:
            return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
        return trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces), process=False)

    # -- derived -----------------------------------------------------------------------------
    @cached_property
    def bounds(self) -> np.ndarray:
        """(2,3) box around all objects (objects without triangles do not count)."""
        boxes = np.stack([o.bounds for o in self.objects.values() if len(o.faces)])
        return np.stack([boxes[:, 0].min(axis=0), boxes[:, 1].max(axis=0)])

    @cached_property
    def floor_z(self) -> float:
        """Height of the floor (see `hosig.scene.floor`)."""
        c = self.config
        return find_floor_z(self.objects.values(), self.source, c.floor_max_tilt_deg, c.floor_min_area_m2, c.floor_bin_m)

    def occupancy(self, exclude: Iterable[str] = (), voxel: float | None = None) -> Occupancy:
        """Bool voxel grid of all objects except `exclude`; cached.

        Default voxel: config.voxel (2 cm), doubled while the grid would exceed
        config.max_grid_voxels (a 10 m room at 2 cm is ~50 M voxels; a 100 m site is not)."""
        ex = self._check_names(exclude)
        v = float(voxel or self._fit_voxel(self.config.voxel, self.config.max_grid_voxels))
        key = ("occ", ex, v)
        with self._lock:
            if key not in self._derived:
                self._derived[key] = _cache.cached_grid(self, "occ", ex, v, lambda: self._build_occ(ex, v))
            return self._derived[key]  # type: ignore[return-value]

    def _build_occ(self, ex: frozenset[str], voxel: float) -> Occupancy:
        objs = [o for n, o in self.objects.items() if n not in ex]
        return build_occupancy(objs, voxel, self.bounds, self.config.grid_pad, self.config.grid_min_height,
                               self._floor_or_none())

    def _floor_or_none(self) -> float | None:
        """The floor height, or None for a scene without one (its grid then keeps the plain lattice)."""
        try:
            return self.floor_z
        except InputError:
            return None

    def _fit_voxel(self, voxel: float, limit: int) -> float:
        """`voxel` doubled until the scene's grid has at most `limit` voxels."""
        c = self.config
        ext = self.bounds[1] - self.bounds[0] + 2 * c.grid_pad
        ext[2] = max(ext[2], c.grid_min_height + 2 * c.grid_pad)
        v = float(voxel)
        while float(np.prod(np.ceil(ext / v) + 1)) > limit:
            v *= 2.0
        return v

    def sdf_voxel(self) -> float:
        """Fine SDF voxel: config.sdf_voxel, doubled while the fine grid would exceed
        sdf_max_voxels (only very large scenes; a 10 m room at 2 cm is ~50 M voxels)."""
        return self._fit_voxel(self.config.sdf_voxel, min(self.config.sdf_max_voxels, self.config.max_grid_voxels))

    def sdf(self, exclude: Iterable[str] = ()) -> SceneSDF:
        """Signed distance field of all objects except `exclude`; cached per exclusion set.

        Built from the (disk-cached) occupancy: the far field now, 2 cm near-field tiles lazily
        on first query (see `hosig.scene.sdf`)."""
        ex = self._check_names(exclude)
        v = self.sdf_voxel()
        key = ("sdf", ex, v)
        with self._lock:
            if key not in self._derived:
                c = self.config
                far = max(c.sdf_far_voxel, 2 * v)
                sdf = build_sdf(self.occupancy(ex, voxel=v), c.sdf_clamp, c.sdf_band, far)
                donor = self._sdf_donor(v)
                if donor is not None:  # tiles away from the objects excluded differently are the donor's
                    sdf.share_from(donor)
                self._derived[key] = sdf
            return self._derived[key]  # type: ignore[return-value]

    def _sdf_donor(self, voxel: float) -> SceneSDF | None:
        """The field (at ``voxel``) of another exclusion set with the most tiles built, if any."""
        fields = [v for k, v in self._derived.items() if k[0] == "sdf" and k[2] == voxel]
        return max(fields, key=lambda f: f.tiles_computed, default=None)

    def nbytes(self) -> int:
        """Estimated memory held: the objects' arrays and the derived grids (occupancy, SDF far
        field and the near-field tiles built so far); what the in-memory caches are bounded by."""
        # Not under self._lock: a grid being built holds it for seconds, and the caches call this
        # under their own locks. Copying a dict's values is atomic under the GIL.
        derived = tuple(self._derived.values())
        seen: set[int] = set()
        return sum(array_nbytes(v, seen) for v in [*self.objects.values(), *derived])

    def summary(self) -> dict:
        """JSON-able description (used by `hosig scene inspect` and the server)."""
        pick = set(self.pickable())
        return {
            "source": self.source,
            "content_hash": self.content_hash,
            "floor_z": self.floor_z,
            "bounds": self.bounds.tolist(),
            "triangles": self.triangle_count,
            "objects": [dict(o.to_json(), pickable=o.name in pick) for o in self.objects.values()],
        }


def array_nbytes(value: object, seen: set[int], depth: int = 3) -> int:
    """Bytes of the numpy arrays and torch tensors reachable from ``value`` through attributes,
    dicts, lists and tuples (``depth`` levels; each object counted once via ``seen``)."""
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if hasattr(value, "element_size") and hasattr(value, "nelement"):  # a torch tensor
        return int(value.element_size() * value.nelement())
    if depth <= 0:
        return 0
    if isinstance(value, dict):
        items: Iterable[object] = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        items = vars(value).values()
    else:
        return 0
    return sum(array_nbytes(v, seen, depth - 1) for v in items)


def validate_objects(objects: dict[str, SceneObject], where: str, config: SceneConfig) -> None:
    """Reject unusable geometry with a one-line InputError naming the file and object."""
    if not objects or all(len(o.faces) == 0 for o in objects.values()):
        raise InputError(f"{where}: contains no triangle meshes")
    tris = 0
    for obj in objects.values():
        if not np.all(np.isfinite(obj.vertices)):
            bad = int((~np.isfinite(obj.vertices)).any(axis=1).sum())
            raise InputError(f"{where}: object {obj.name!r} has {bad} vertices with NaN/inf coordinates")
        if len(obj.faces) and (obj.faces.min() < 0 or obj.faces.max() >= len(obj.vertices)):
            raise InputError(f"{where}: object {obj.name!r} has face indices outside its {len(obj.vertices)} vertices")
        tris += len(obj.faces)
    if tris > config.max_triangles:
        raise InputError(f"{where}: {tris} triangles exceeds the limit of {config.max_triangles} (SceneConfig.max_triangles)")
    lo = np.min([o.bounds[0] for o in objects.values() if len(o.faces)], axis=0)
    hi = np.max([o.bounds[1] for o in objects.values() if len(o.faces)], axis=0)
    ext = float(np.max(hi - lo))
    if ext > config.max_extent_m:
        raise InputError(
            f"{where}: scene extent {ext:.1f} m exceeds the limit of {config.max_extent_m:g} m "
            "(wrong units? SceneConfig.max_extent_m)"
        )
