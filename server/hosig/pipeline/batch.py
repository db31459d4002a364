"""Shot lists: many generations from one TOML file, one clip per shot, skipping unchanged shots.

WHY a manifest: an animator edits one shot and re-runs the list; only that shot should cost time.
A shot is skipped when its key — hash of the scene file's bytes, the shot's fields, the body
model's identity, the motion model's identity and the quality — matches the manifest and its clip
still exists.
A failing shot is recorded and the others still run. Clips and the manifest are written atomically
(`hosig.atomic`): a killed run leaves whole files or none at their final names.
`hosig.pipeline.cluster` runs the same shots on a Ray cluster through the same steps
(`check_shot`, `execute_shot`, `record_shot`); this module never imports Ray.

Format::

    [[shot]]
    name = "cup_from_table"          # file name of the clip: <out>/<name>.npz
    scene = "rooms/kitchen.glb"      # relative to the TOML file
    start = [0.5, 0.5, 0.0]          # or "0.5,0.5,0"
    target = "cup"
    action = "pick-place"            # reach | pick | pick-place (default pick)
    place = "shelf"                  # or [x, y, z]
    seed = 3
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hosig.atomic import atomic_write_bytes
from hosig.errors import InputError, UsageError
from hosig.pipeline.engine import Engine, default_engine
from hosig.pipeline.request import GenerateRequest, parse_request
from hosig.pipeline.run import generate

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "hosig-batch/1"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass
class Shot:
    name: str
    request: GenerateRequest  # scene = absolute path of the scene file
    fields: dict[str, Any]  # the shot as written (for the key)


@dataclass
class ShotResult:
    name: str
    status: str  # ok | skipped | failed
    clip: str | None = None
    frames: int | None = None
    duration_s: float | None = None
    elapsed_s: float = 0.0
    error_code: str | None = None
    error: str | None = None
    summary: dict[str, Any] | None = None


@dataclass
class BatchReport:
    shots: list[ShotResult] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def failed(self) -> int:
        return sum(1 for s in self.shots if s.status == "failed")

    def to_json(self) -> dict[str, Any]:
        counts = {k: sum(1 for s in self.shots if s.status == k) for k in ("ok", "skipped", "failed")}
        generated = [s for s in self.shots if s.status == "ok"]
        motion_s = sum(s.duration_s or 0.0 for s in generated)
        busy_s = sum(s.elapsed_s for s in generated)
        return {
            "shots": [{k: v for k, v in s.__dict__.items() if k != "summary"} for s in self.shots],
            **counts,
            "elapsed_s": round(self.elapsed_s, 3),
            "motion_s": round(motion_s, 3),
            "realtime_factor": round(motion_s / busy_s, 3) if busy_s > 0 else None,
        }


def load_shot_list(path: str | Path) -> list[Shot]:
    """Parse and validate a shot list; errors name the shot and the field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"shot list {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"shot list {str(path)!r} is not valid TOML: {err}") from None
    unknown = sorted(set(data) - {"shot"})
    if unknown:
        raise UsageError(f"shot list {str(path)!r}: unknown top-level key(s) {unknown}; shots go in [[shot]] tables")
    rows = data.get("shot")
    if not isinstance(rows, list) or not rows:
        raise UsageError(f"shot list {str(path)!r} has no [[shot]] entries")
    shots: list[Shot] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        where = f"shot list {path.name}, shot #{i + 1}"
        if not isinstance(row, dict):
            raise UsageError(f"{where}: must be a table")
        row = dict(row)
        name = row.pop("name", None)
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise UsageError(f"{where}: 'name' must be a file-safe name (letters, digits, _ . -), got {name!r}")
        where = f"shot list {path.name}, shot {name!r}"
        if name in seen:
            raise UsageError(f"{where}: duplicate name")
        seen.add(name)
        fields = dict(row)
        if isinstance(row.get("start"), str):
            try:
                row["start"] = [float(v) for v in row["start"].split(",")]
            except ValueError:
                raise UsageError(f"{where}: start: expected 'x,y[,heading]', got {row['start']!r}") from None
        scene = row.get("scene")
        if not isinstance(scene, str) or not scene:
            raise UsageError(f"{where}: 'scene' (a file path relative to the shot list) is required")
        row["scene"] = str((path.parent / scene).resolve())
        shots.append(Shot(name=name, request=parse_request(row, where), fields=fields))
    return shots


def shot_key(shot: Shot, body_identity: str, motion_identity: str, quality: str = "final") -> str:
    """Hash of everything that determines a shot's clip."""
    scene_hash = _file_sha256(Path(shot.request.scene))
    blob = json.dumps(
        {"scene": scene_hash, "shot": {k: v for k, v in shot.fields.items() if k != "scene"}, "body": body_identity, "motion": motion_identity, "quality": quality},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"scene file {str(path)!r} does not exist")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """The manifest's shots (name -> key, status, frames, ...); empty when missing or damaged."""
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged manifest only means re-generating
    return data.get("shots", {}) if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else {}


def _write_manifest(out_dir: Path, shots: dict[str, Any]) -> None:
    text = json.dumps({"format": MANIFEST_FORMAT, "shots": shots}, indent=1, sort_keys=True)
    atomic_write_bytes(out_dir / MANIFEST_NAME, text.encode("utf-8"))


def clip_path_for(out_dir: Path, shot: Shot) -> Path:
    """Where a shot's clip goes: ``<out>/<name>.npz``."""
    return out_dir / f"{shot.name}.npz"


def engine_key(shot: Shot, engine: Engine) -> str:
    """The shot's key under this engine's body model, motion model and quality."""
    return shot_key(shot, engine.body(shot.request.smplx_dir).identity, engine.motion_identity(), engine.config.quality)


def check_shot(shot: Shot, out_dir: Path, engine: Engine, manifest: dict[str, Any], force: bool) -> tuple[str | None, ShotResult | None]:
    """(key, None) when the shot must be generated, or (key, result) when it is done without
    generating: skipped (unchanged and its clip still there) or failed (its key cannot be made,
    key None)."""
    try:
        key = engine_key(shot, engine)
    except Exception as err:  # noqa: BLE001 - a bad shot must not stop the batch
        return None, ShotResult(shot.name, "failed", error_code=getattr(err, "code", "internal"), error=str(err))
    previous = manifest.get(shot.name, {})
    clip_path = clip_path_for(out_dir, shot)
    if not force and previous.get("key") == key and previous.get("status") == "ok" and clip_path.is_file():
        return key, ShotResult(shot.name, "skipped", clip=str(clip_path), frames=previous.get("frames"), duration_s=previous.get("duration_s"))
    return key, None


def execute_shot(shot: Shot, engine: Engine, clip_path: Path) -> ShotResult:
    """Generate one shot's clip at ``clip_path`` (written atomically by the pipeline)."""
    res = generate(shot.request, engine=engine, clip_path=clip_path)
    if res.summary is not None:
        return ShotResult(
            shot.name, "ok", clip=res.summary.get("clip"), frames=res.summary.get("frames"),
            duration_s=res.summary.get("duration_s"), summary=res.summary,
        )
    err_event = res.error
    return ShotResult(
        shot.name, "failed", error_code=err_event.code if err_event else "internal",
        error=err_event.message if err_event else "no result",
    )


def record_shot(out_dir: Path, manifest: dict[str, Any], shot: Shot, key: str, result: ShotResult) -> None:
    """Enter a generated (or failed) shot in the manifest and rewrite it (atomically)."""
    manifest[shot.name] = {
        "key": key, "status": result.status, "frames": result.frames, "duration_s": result.duration_s,
        "error": result.error, "clip": clip_path_for(out_dir, shot).name if result.status == "ok" else None,
    }
    _write_manifest(out_dir, manifest)


def run_batch(
    shot_list: str | Path,
    out_dir: str | Path,
    engine: Engine | None = None,
    on_shot: Callable[[int, int, Shot, ShotResult | None], None] | None = None,
    force: bool = False,
) -> BatchReport:
    """Run every shot (or skip it when unchanged); ``on_shot(i, n, shot, result)`` reports progress
    (result None when the shot starts)."""
    engine = engine or default_engine()
    shots = load_shot_list(shot_list)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out)
    report = BatchReport()
    t_batch = time.perf_counter()
    for i, shot in enumerate(shots):
        if on_shot:
            on_shot(i, len(shots), shot, None)
        t = time.perf_counter()
        key, result = check_shot(shot, out, engine, manifest, force)
        if result is None:
            assert key is not None  # check_shot: no result means a key to generate under
            result = execute_shot(shot, engine, clip_path_for(out, shot))
            record_shot(out, manifest, shot, key, result)
        result.elapsed_s = round(time.perf_counter() - t, 3)
        report.shots.append(result)
        if on_shot:
            on_shot(i, len(shots), shot, result)
    report.elapsed_s = time.perf_counter() - t_batch
    return report
