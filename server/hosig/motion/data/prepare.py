"""`hosig data prepare`: folders of capture (CMU BVH, AMASS npz, TRUMANS arrays) -> one dataset file.

Why it is built this way:
- One item per source file (or TRUMANS segment). Each finished item is cached next to the output
  (``<out stem>.cache/<key>.npz``, key = content hash of the file + the preparation config + the
  body identity + a code version), so an interrupted or repeated run only does new work.
- A bad item is skipped and reported, never aborting the run; an empty folder is an error.
- Mirrored copies are made at assembly from the cached originals (cheap, exact involution).
- Progress goes to stderr (tqdm); the returned dict is the report.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from hosig.errors import HosigError, InputError, UsageError
from hosig.motion.data.contacts import ContactConfig
from hosig.motion.data.dataset import ClipData, MotionDataset, from_clips, save_dataset
from hosig.motion.data.retarget import RetargetConfig

CODE_VERSION = "prepare-v3"
KINDS = ("cmu", "amass", "trumans")


@dataclass(frozen=True)
class PrepareConfig:
    """What shapes the output (part of the cache key) plus run options (not part of it)."""

    mirror: bool = True
    retarget: RetargetConfig = RetargetConfig()
    contact: ContactConfig = ContactConfig()
    limit: int | None = None
    workers: int = 1
    use_cache: bool = True
    progress: bool = True

    def cache_fingerprint(self) -> str:
        payload = json.dumps(
            {"retarget": asdict(self.retarget), "contact": asdict(self.contact), "code": CODE_VERSION}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Item:
    """One unit of work: a file, or a segment of a TRUMANS folder."""

    kind: str
    path: str
    name: str
    category: str
    start: int = 0
    end: int = 0
    key_material: str = ""


@dataclass
class ItemResult:
    clip: ClipData | None
    item: Item
    error: str | None = None
    cached: bool = False
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- enumerating work
def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def list_items(kind: str, folder: str | Path) -> list[Item]:
    """Enumerate the work in one source folder; InputError when there is nothing to read."""
    folder = Path(folder)
    if kind not in KINDS:
        raise UsageError(f"unknown source kind {kind!r} (expected one of {', '.join(KINDS)})")
    if not folder.exists():
        raise InputError(f"{folder}: {kind} folder not found")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (give the folder that holds the {kind} files)")
    if kind == "cmu":
        from hosig.motion.data.cmu import read_index

        files = sorted(folder.rglob("*.bvh"))
        if not files:
            raise InputError(f"{folder}: no .bvh files found (empty CMU folder?)")
        index = read_index(folder)
        return [
            Item("cmu", str(f), f.stem, index.get(f.stem, {}).get("category", "") or "cmu") for f in files
        ]
    if kind == "amass":
        files = sorted(folder.rglob("*.npz"))
        if not files:
            raise InputError(f"{folder}: no .npz files found (empty AMASS folder?)")
        items = []
        for f in files:
            rel = f.relative_to(folder)
            category = rel.parts[0] if len(rel.parts) > 1 else "amass"
            items.append(Item("amass", str(f), str(rel.with_suffix("")).replace(os.sep, "/"), category))
        return items
    from hosig.motion.data.trumans import REQUIRED, trumans_segments

    segs = trumans_segments(folder)
    stamp = "|".join(
        f"{n}:{(folder / (n + '.npy')).stat().st_size}:{(folder / (n + '.npy')).stat().st_mtime_ns}" for n in REQUIRED
    )
    seen: Counter[str] = Counter()
    items = []
    for name, s, e in segs:
        seen[name] += 1
        label = name if seen[name] == 1 else f"{name}~{seen[name]}"
        items.append(Item("trumans", str(folder), label, "trumans", s, e, key_material=f"{stamp}|{s}:{e}"))
    return items


# ---------------------------------------------------------------------------------- processing
def _cmu_valid() -> np.ndarray:
    from hosig.body.skeleton import JOINT_INDEX, NUM_JOINTS

    valid = np.zeros(NUM_JOINTS, dtype=bool)
    valid[:22] = True  # pelvis + 21 body joints; jaw, eyes and fingers were never captured
    valid[[JOINT_INDEX["left_foot"], JOINT_INDEX["right_foot"]]] = False  # no toe joint in CMU
    return valid


def process_item(item: Item, body, config: PrepareConfig) -> ClipData:
    """Turn one item into a finished (un-mirrored) clip. Raises HosigError on bad input."""
    from hosig.body.skeleton import FOOT_JOINTS, JOINT_NAMES
    from hosig.motion.data.contacts import floor_drift, foot_skating, planted_sliding
    from hosig.motion.data.retarget import foot_rest_heights, retarget
    from hosig.motion.data.smplx_motion import SmplxMotion, body_joints, finish_clip

    rest_h = foot_rest_heights(body)
    if item.kind == "cmu":
        from hosig.motion.data.cmu import CMU_JOINT_MAP, load_cmu_capture

        cap = load_cmu_capture(item.path)
        res = retarget(cap, CMU_JOINT_MAP, body, config.retarget)
        j0 = np.asarray(body.rest_joints_y, dtype=np.float64)[0]
        motion = SmplxMotion(
            name=item.name, category=item.category, poses=res.poses, trans=res.root_pos - j0,
            valid=_cmu_valid(), source_fps=cap.source_fps,
        )  # fmt: skip
        joints = body_joints(body, motion.poses, motion.trans)
        clip = finish_clip(body, motion, rest_h, joints=joints, contact_config=config.contact, align_floor=False)
        err = np.linalg.norm(joints[:, res.target_joints] - res.targets, axis=-1)
        clip.fit_error_mean = float(err.mean())
        clip.fit_error_max = float(err.max())
        src_feet = np.stack([cap.point(CMU_JOINT_MAP.positions[JOINT_NAMES[k]]) for k in FOOT_JOINTS], axis=1)
        src_feet[..., 2] -= floor_drift(src_feet[:, [1, 3]], cap.fps, config.retarget.drift)[:, None]  # as retargeted
        clip.source_skating = foot_skating(src_feet, cap.fps).mean_cm_s
        clip.source_sliding = planted_sliding(src_feet, cap.fps, config=config.contact).mean_cm_s
        return clip
    hands = body.hands_mean
    left, right = np.asarray(hands["left"]), np.asarray(hands["right"])
    if item.kind == "amass":
        from hosig.motion.data.amass import load_amass

        motion = load_amass(item.path, left, right, category=item.category)
        motion.name = item.name
    else:
        from hosig.motion.data.trumans import load_trumans_clip

        motion = load_trumans_clip(item.path, item.start, item.end, item.name, np.asarray(body.rest_joints_y)[0])
    if len(motion.poses) < 2:
        raise InputError(f"{item.path}: clip {item.name!r} is shorter than 2 frames at 30 fps")
    return finish_clip(body, motion, rest_h, contact_config=config.contact)


def _clip_to_arrays(clip: ClipData) -> dict[str, np.ndarray]:
    return {
        "name": np.array(clip.name), "category": np.array(clip.category), "poses": clip.poses.astype(np.float32),
        "trans": clip.trans.astype(np.float32), "joints": clip.joints.astype(np.float32),
        "contacts": clip.contacts.astype(np.uint8), "valid": np.asarray(clip.valid, dtype=bool),
        "fit_error_mean": np.array(clip.fit_error_mean), "fit_error_max": np.array(clip.fit_error_max),
        "source_skating": np.array(clip.source_skating), "source_fps": np.array(clip.source_fps),
        "source_sliding": np.array(clip.source_sliding),
    }  # fmt: skip


def _clip_from_arrays(d: Any) -> ClipData:
    return ClipData(
        name=str(d["name"]), category=str(d["category"]), poses=d["poses"], trans=d["trans"], joints=d["joints"],
        contacts=d["contacts"], valid=d["valid"], fit_error_mean=float(d["fit_error_mean"]),
        fit_error_max=float(d["fit_error_max"]), source_skating=float(d["source_skating"]),
        source_fps=float(d["source_fps"]), source_sliding=float(d["source_sliding"]),
    )  # fmt: skip


class ItemCache:
    """Finished clips on disk, keyed by item content + config + body identity."""

    def __init__(self, folder: Path, fingerprint: str, body_identity: str, enabled: bool = True) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.body_identity = body_identity
        self.enabled = enabled

    def key(self, item: Item) -> str:
        material = item.key_material or _file_hash(Path(item.path))
        raw = f"{item.kind}|{item.name}|{item.category}|{material}|{self.fingerprint}|{self.body_identity}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def get(self, key: str) -> ClipData | None:
        path = self.folder / f"{key}.npz"
        if not (self.enabled and path.is_file()):
            return None
        try:
            with np.load(path, allow_pickle=False) as d:
                return _clip_from_arrays(d)
        except Exception:  # noqa: BLE001 - a damaged cache entry is simply recomputed
            return None

    def put(self, key: str, clip: ClipData) -> None:
        if not self.enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{key}.tmp.npz"
        np.savez(tmp, **_clip_to_arrays(clip))
        tmp.replace(self.folder / f"{key}.npz")


_WORKER_BODY = None


def _worker_init(smplx_dir: str | None) -> None:
    import torch

    torch.set_num_threads(1)
    global _WORKER_BODY
    from hosig.body import load_body_model

    _WORKER_BODY = load_body_model(smplx_dir)


def _worker_run(item: Item, config: PrepareConfig) -> tuple[ClipData | None, str | None]:
    try:
        return process_item(item, _WORKER_BODY, config), None
    except HosigError as err:
        return None, str(err)
    except Exception as err:  # noqa: BLE001 - one bad file never aborts the run
        return None, f"{item.path}: {type(err).__name__}: {err}"


def _run_items(
    items: list[Item], body, config: PrepareConfig, cache: ItemCache, smplx_dir: str | None
) -> Iterator[ItemResult]:
    todo: list[tuple[Item, str]] = []
    for item in items:
        try:
            key = cache.key(item)
        except OSError as err:
            yield ItemResult(None, item, error=f"{item.path}: cannot read: {err}")
            continue
        hit = cache.get(key)
        if hit is not None:
            yield ItemResult(hit, item, cached=True)
        else:
            todo.append((item, key))
    if config.workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=config.workers, initializer=_worker_init, initargs=(smplx_dir,)) as pool:
            futures = [(item, key, pool.submit(_worker_run, item, config)) for item, key in todo]
            for item, key, fut in futures:
                clip, error = fut.result()
                if clip is not None:
                    cache.put(key, clip)
                yield ItemResult(clip, item, error=error)
        return
    for item, key in todo:
        try:
            clip = process_item(item, body, config)
        except HosigError as err:
            yield ItemResult(None, item, error=str(err))
            continue
        except Exception as err:  # noqa: BLE001 - one bad file never aborts the run
            yield ItemResult(None, item, error=f"{item.path}: {type(err).__name__}: {err}")
            continue
        cache.put(key, clip)
        yield ItemResult(clip, item)


def mirrored_clip(clip: ClipData, body) -> ClipData:
    """The left/right mirror of a finished clip (names suffixed ``#mirror``)."""
    from hosig.motion.data.mirror import mirror_contacts, mirror_joints, mirror_poses, mirror_trans, mirror_valid

    hands = body.hands_mean
    j0 = np.asarray(body.rest_joints_y, dtype=np.float64)[0]
    return ClipData(
        name=f"{clip.name}#mirror", category=clip.category,
        poses=mirror_poses(clip.poses, np.asarray(hands["left"]), np.asarray(hands["right"])),
        trans=mirror_trans(clip.trans, j0), joints=mirror_joints(clip.joints), contacts=mirror_contacts(clip.contacts),
        valid=mirror_valid(clip.valid), mirrored=True, fit_error_mean=clip.fit_error_mean,
        fit_error_max=clip.fit_error_max, source_skating=clip.source_skating, source_fps=clip.source_fps,
        source_sliding=clip.source_sliding,
    )  # fmt: skip


def default_cache_dir(out: Path) -> Path:
    return out.with_name(out.stem + ".cache")


def prepare_dataset(
    sources: list[tuple[str, str | Path]],
    out: str | Path,
    body,
    config: PrepareConfig = PrepareConfig(),
    smplx_dir: str | None = None,
) -> tuple[MotionDataset, dict[str, Any]]:
    """Prepare, write ``out`` and return (dataset, report)."""
    from tqdm import tqdm

    from hosig.motion.data.retarget import foot_rest_heights

    if not sources:
        raise UsageError("give at least one of --cmu DIR, --amass DIR, --trumans DIR")
    t0 = time.perf_counter()
    out = Path(out)
    items: list[Item] = []
    for kind, folder in sources:
        items.extend(list_items(kind, folder))
    if config.limit is not None:
        if config.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {config.limit}")
        items = items[: config.limit]
    cache = ItemCache(default_cache_dir(out), config.cache_fingerprint(), body.identity, config.use_cache)
    clips: list[ClipData] = []
    skipped: list[dict[str, str]] = []
    cached = 0
    bar = tqdm(total=len(items), desc="prepare", unit="clip", file=sys.stderr, disable=not config.progress)
    for res in _run_items(items, body, config, cache, smplx_dir):
        bar.update(1)
        if res.clip is None:
            skipped.append({"file": res.item.path, "clip": res.item.name, "error": res.error or "unknown error"})
            bar.write(f"skipped {res.item.name}: {res.error}", file=sys.stderr)
            continue
        cached += int(res.cached)
        clips.append(res.clip)
    bar.close()
    if not clips:
        detail = "; ".join(s["error"] for s in skipped[:3])
        raise InputError(f"no usable clips in {', '.join(str(f) for _, f in sources)} ({len(skipped)} skipped: {detail})")
    originals = list(clips)
    if config.mirror:
        clips = clips + [mirrored_clip(c, body) for c in originals]
    kinds = sorted({k for k, _ in sources})
    ds = from_clips(clips, body_identity=body.identity, source="+".join(kinds))
    ds.extra["foot_rest_heights"] = np.asarray(foot_rest_heights(body), dtype=np.float32)
    save_dataset(out, ds)
    report = summarise(ds, originals, skipped, cached, time.perf_counter() - t0, out)
    return ds, report


def summarise(
    ds: MotionDataset, originals: list[ClipData], skipped: list[dict[str, str]], cached: int, seconds: float, out: Path
) -> dict[str, Any]:
    """The prepare report: clips, frames, minutes, categories, frame rates, fit, skipped files."""
    per_cat: dict[str, dict[str, float]] = {}
    for k in range(ds.num_clips):
        cat = str(ds.clip_category[k])
        entry = per_cat.setdefault(cat, {"clips": 0, "frames": 0, "minutes": 0.0})
        entry["clips"] += 1
        entry["frames"] += int(ds.clip_length[k])
        entry["minutes"] = round(entry["frames"] / ds.fps / 60.0, 2)
    rates = Counter(f"{c.source_fps:g}" for c in originals)
    resampled = sum(1 for c in originals if abs(c.source_fps - ds.fps) > 1e-3)
    fit = np.array([c.fit_error_mean for c in originals])
    fit_max = np.array([c.fit_error_max for c in originals])
    frames = np.array([c.num_frames for c in originals])
    has_fit = np.isfinite(fit)
    report: dict[str, Any] = {
        "out": str(out),
        "source": ds.source,
        "body_identity": ds.body_identity,
        "clips": ds.num_clips,
        "source_clips": len(originals),
        "mirrored": bool(ds.clip_mirrored.any()),
        "frames": ds.num_frames,
        "minutes": round(ds.num_frames / ds.fps / 60.0, 2),
        "categories": dict(sorted(per_cat.items())),
        "frame_rates": dict(rates),
        "resampled_clips": resampled,
        "skipped": skipped,
        "cached_clips": cached,
        "seconds": round(seconds, 1),
    }
    if resampled:
        report["notes"] = [f"{resampled} clip(s) resampled to {ds.fps} fps from {', '.join(sorted(rates))} fps"]
    if has_fit.any():
        report["fit_error_cm"] = {
            "mean": round(float(np.average(fit[has_fit], weights=frames[has_fit])) * 100, 3),
            "max": round(float(fit_max[has_fit].max()) * 100, 3),
        }
    return report
