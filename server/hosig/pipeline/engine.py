"""The warm engine: loaded body models, the motion model and the scene store, shared by every job.

WHY: loading the body model and the motion checkpoint costs seconds; the server and a batch run
load them once and keep them here, so the time to the first frames of a request is pure compute.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hosig import diskcache
from hosig.errors import UsageError
from hosig.pipeline.scenes import DEFAULT_MEMORY_BYTES, SceneStore, default_cache_dir

if TYPE_CHECKING:
    from hosig.body.model import BodyModel


@dataclass
class EngineConfig:
    """What to load: the default body (None = $HOSIG_SMPLX_DIR or the mannequin), the motion
    checkpoint (None = the committed default), the torch device, the cache folder and its caps
    (disk: `hosig.diskcache`, $HOSIG_CACHE_MAX_MB; memory: scenes kept by estimated bytes)."""

    smplx_dir: str | None = None
    motion_checkpoint: str | None = None
    device: str = "cpu"
    cache_dir: Path = field(default_factory=default_cache_dir)
    max_scenes: int = 16
    cache_max_bytes: int = field(default_factory=diskcache.max_bytes)  # uploads + grasps + grids on disk
    scene_memory_bytes: int = DEFAULT_MEMORY_BYTES  # loaded scenes kept in memory (estimated)
    nav: Any = None  # NavConfig (None = defaults)
    grasp: Any = None  # GraspConfig (None = defaults for the quality)
    quality: str = "final"  # "final" | "preview" (fewer grasp candidates/iterations, fewer sampler steps)
    max_grasps: int = 64  # grasp results kept (deterministic per scene/target/stand/hand/body)
    # the walk streams while the grasp is optimised beside it (issue #21; same clip); False: grasp first
    grasp_beside_walk: bool = True
    # the scene distances along a planned path are built in the background as soon as it is known
    prefetch_sdf: bool = True
    # redraws of a finished clip's frames around a gross failure (`pipeline.repair`); None: the quality's
    repair_rounds: int | None = None


# Preview quality: the same stages with less search, for blocking out shots quickly.
PREVIEW_GRASP = {"max_candidates": 3, "finger_candidates": 1, "iters": 40, "n_body_samples": 150, "n_hand_samples": 80}
PREVIEW_STEP_FRACTION = 0.5  # of the checkpoint's DDIM steps
QUALITIES = ("final", "preview")


class Engine:
    """Lazily loaded, thread-safe holder of the expensive objects (one per process)."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        if self.config.quality not in QUALITIES:
            raise UsageError(f"quality must be one of {', '.join(QUALITIES)}, got {self.config.quality!r}")
        self.scenes = SceneStore(self.config.cache_dir, self.config.max_scenes, self.config.cache_max_bytes,
                                 self.config.scene_memory_bytes)
        self._lock = threading.RLock()
        self._motion: Any = None
        self._motion_identity: str | None = None
        self._grasps: "OrderedDict[tuple, Any]" = OrderedDict()
        self._inflight: dict[Any, threading.Event] = {}  # grasps being optimised now (one optimisation per key)
        self._body_identity: str | None = None

    def body(self, smplx_dir: str | None = None) -> "BodyModel":
        """The body model for a request (`load_body_model` caches per path)."""
        from hosig.body.model import load_body_model

        with self._lock:
            body = load_body_model(smplx_dir or self.config.smplx_dir, device=self.config.device)
            if smplx_dir is None:
                self._body_identity = body.identity
            return body

    def motion(self) -> Any:
        """The motion model (loaded on first use, then kept)."""
        with self._lock:
            if self._motion is None:
                from hosig.motion.checkpoint import MotionModel

                self._motion = MotionModel.load(self.config.motion_checkpoint, device=self.config.device)
            return self._motion

    @property
    def motion_loaded(self) -> bool:
        return self._motion is not None

    def motion_identity(self) -> str:
        """A stable identity of the motion model: the sha256 of its weights file (read, not loaded),
        used by batch's skip logic and reported in every summary."""
        if self._motion_identity is None:
            from hosig.motion.checkpoint import resolve_paths

            weights, _ = resolve_paths(self.config.motion_checkpoint)
            if weights.is_file():
                self._motion_identity = _file_hash(weights)
            else:
                model = self.motion()  # raises the checkpoint's own clear error
                self._motion_identity = f"{type(model).__name__}:{getattr(model, 'source', '')}"
        return self._motion_identity

    def grasp_config(self) -> Any:
        """The GraspConfig for this engine's quality (None = the grasp stage's defaults)."""
        if self.config.grasp is not None or self.config.quality == "final":
            return self.config.grasp
        from dataclasses import replace

        from hosig.grasp.config import GraspConfig

        return replace(GraspConfig(), **PREVIEW_GRASP)

    def sampler_steps(self) -> int | None:
        """DDIM steps per window (None = the checkpoint's own setting)."""
        if self.config.quality == "final":
            return None
        steps = int(getattr(getattr(self.motion(), "sampler", None), "steps", 10))
        return max(2, int(round(steps * PREVIEW_STEP_FRACTION)))

    def repair_rounds(self, requested: int | None = None) -> int:
        """Redraws allowed per clip: the request's, else the config's, else the quality's (preview
        blocks shots out quickly and is not repaired; final gets `repair.REPAIR_ROUNDS`)."""
        from hosig.pipeline.repair import REPAIR_ROUNDS

        if requested is not None:
            return int(requested)
        if self.config.repair_rounds is not None:
            return int(self.config.repair_rounds)
        return REPAIR_ROUNDS if self.config.quality == "final" else 0

    def grasp(self, scene: Any, target: str, stand: tuple[float, float, float], body: Any, hand: str) -> tuple[Any, bool]:
        """(GraspResult, cached?) — grasps are deterministic, so a re-generation with another seed
        or action from the same stand point reuses the optimised pose (memory, then disk) instead
        of paying for it again; a call for a grasp another thread is optimising waits for it."""
        from hosig.grasp.generator import generate_grasp
        from hosig.pipeline.graspcache import grasp_key, load_grasp, save_grasp, scene_geometry_hash

        key = grasp_key(scene_geometry_hash(scene), target, stand, hand, body.identity, repr(self.grasp_config()))
        path = self.config.cache_dir / "grasps" / f"{key}.npz"
        with self._lock:
            if key in self._grasps:
                self._grasps.move_to_end(key)
                diskcache.touch(path)
                return self._grasps[key], True
            running = self._inflight.get(key)
            if running is None:
                running = self._inflight[key] = threading.Event()
                owner = True
            else:
                owner = False
        if not owner:  # the same grasp is being optimised (e.g. the /plan prefetch): wait for it
            running.wait()
            with self._lock:
                if key in self._grasps:
                    return self._grasps[key], True
            return self.grasp(scene, target, stand, body, hand)  # it failed there: try here
        try:
            result = load_grasp(path)
            cached = result is not None
            if cached:
                diskcache.touch(path)
            else:
                result = generate_grasp(scene, target, stand, body, hand=hand, config=self.grasp_config())
                try:
                    save_grasp(path, result)
                    diskcache.prune(self.config.cache_dir, self.config.cache_max_bytes, keep=(path,))
                except OSError:  # a read-only cache only costs the optimisation next time
                    pass
            with self._lock:
                self._grasps[key] = result
                while len(self._grasps) > self.config.max_grasps:
                    self._grasps.popitem(last=False)
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            running.set()
        return result, cached

    def warm(self) -> None:
        """Load everything now (server start-up) and run one short synthesis, so the first request
        is as fast as the rest (torch's first autograd/kernel use costs about a second)."""
        body = self.body()
        model = self.motion()
        import hosig.grasp.generator  # noqa: F401 - import costs (trimesh, scipy) paid now, not in a request
        import hosig.motion.task  # noqa: F401
        import hosig.navigation  # noqa: F401
        import hosig.scene  # noqa: F401

        try:
            from hosig.frames import heading_to_orient
            from hosig.motion.anchors import AnchorSet
            from hosig.motion.synth import synthesize

            n = int(getattr(model, "window", 64))
            anchors = AnchorSet(n)
            anchors.add(0, "root_orient", heading_to_orient(0.0))
            anchors.add(0, "pelvis", [0.0, 0.0, float("nan")])
            anchors.add(n - 1, "pelvis", [1.0, 0.0, float("nan")])
            synthesize(model, anchors, body, scene_sdf=None, seed=0, steps=2)
        except Exception as err:  # noqa: BLE001 - warm-up is an optimisation; real requests report problems
            import logging

            logging.getLogger("hosig.pipeline").info("motion warm-up skipped: %s: %s", type(err).__name__, err)

    def info(self) -> dict[str, Any]:
        """For /health: never blocks (no loading, no locks), so health answers during warm-up."""
        return {
            "device": self.config.device,
            "body_model": self._body_identity or "not loaded",
            "model_loaded": self.motion_loaded,
            "quality": self.config.quality,
        }


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


_DEFAULT: Engine | None = None
_DEFAULT_LOCK = threading.Lock()


def default_engine() -> Engine:
    """The process-wide engine used when a caller does not pass one."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Engine()
        return _DEFAULT
