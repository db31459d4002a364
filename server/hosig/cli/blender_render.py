"""Clip files into Blender from the engine side: a .blend of keyed armatures, contact sheets.

The engine never imports bpy. These functions check the clips here (readable, same body identity),
write the body as the server's ``GET /body`` answers it (`hosig.api.app._body_payload`, the same
function) to a temp file and run the add-on's headless entry point in a subprocess
(``python -m hosig_blender.headless import|sheet``) with ``hosig_blender`` importable from the
source checkout, exactly as `hosig demo` launches it.

`render_sheet` is what an evaluation calls to show a person its worst clips: one row per clip,
each rendered in its own scene.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hosig.errors import InputError

SUMMARY_PREFIX = "HOSIG_SUMMARY "
ERROR_PREFIX = "HOSIG_ERROR "
TILE = (320, 240)  # the headless side's default tile size (hosig_blender.headless.TILE)
PAD = 4  # pixels between and around tiles (hosig_blender.headless.PAD)


def sheet_size(rows: int, columns: int, tile: tuple[int, int] = TILE, pad: int = PAD) -> tuple[int, int]:
    """(width, height) in pixels of a contact sheet of ``rows`` x ``columns`` tiles."""
    return columns * tile[0] + (columns + 1) * pad, rows * tile[1] + (rows + 1) * pad


def body_payload(smplx_dir: str | None = None) -> dict[str, Any]:
    """The body JSON exactly as the server's ``GET /body`` answers it for this body model."""
    from hosig.api.app import _body_payload
    from hosig.body.model import load_body_model

    return _body_payload(load_body_model(smplx_dir))


def check_clips(paths: list[str | Path], identity: str) -> list[Any]:
    """Load every clip (missing file, not a clip -> `InputError`) and check it was made with the
    body ``identity``; nothing is written before this passes."""
    from hosig.clip import MotionClip

    clips = []
    for path in paths:
        clip = MotionClip.load(path)
        if clip.body_identity and clip.body_identity != identity:
            raise InputError(f"clip {str(path)!r} was made for body {clip.body_identity!r}, but the body model here is "
                             f"{identity!r} (pass the clip's model with --smplx-dir)")
        clips.append(clip)
    return clips


def _addon_root() -> Path:
    from hosig.demo import addon_root

    return addon_root()


def run_headless(mode_args: list[str], timeout_s: float = 1800.0) -> dict[str, Any]:
    """Run ``python -m hosig_blender.headless <mode_args>`` (bpy in a subprocess); its summary."""
    if importlib.util.find_spec("bpy") is None:
        raise InputError("the bpy module is not installed in this Python: pip install 'hosig[blender]' (bpy==5.0.1)")
    root = _addon_root()
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "hosig_blender.headless", *mode_args]
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise InputError(f"Blender (headless) did not finish within {timeout_s:.0f} s") from None
    lines = proc.stdout.splitlines()
    errors = [ln[len(ERROR_PREFIX):] for ln in lines if ln.startswith(ERROR_PREFIX)]
    if errors:
        raise InputError(errors[-1])
    summaries = [ln[len(SUMMARY_PREFIX):] for ln in lines if ln.startswith(SUMMARY_PREFIX)]
    if proc.returncode != 0 or not summaries:
        tail = (proc.stdout[-800:] + "\n" + proc.stderr[-1500:]).strip().splitlines()
        raise InputError(f"Blender (headless) failed with exit code {proc.returncode}: " + " | ".join(tail[-6:]))
    return json.loads(summaries[-1])


def import_clips(clips: list[str | Path], out: str | Path, scene: str | Path | None = None,
                 sheet: str | Path | None = None, frames: int = 6, labels: list[str] | None = None,
                 smplx_dir: str | None = None, tile: tuple[int, int] = TILE) -> dict[str, Any]:
    """Clip files -> ``out`` (.blend) with one keyed armature per clip (and ``scene`` imported
    first); ``sheet``: a contact sheet PNG, one row per clip. Returns the headless summary."""
    from hosig.body.model import load_body_model

    clips = [Path(c) for c in clips]
    if not clips:
        raise InputError("no clip files given")
    if labels is not None and len(labels) != len(clips):
        raise InputError(f"{len(labels)} labels for {len(clips)} clips")
    if scene is not None and not Path(scene).is_file():
        raise InputError(f"scene file {str(scene)!r} does not exist")
    if frames < 1:
        raise InputError("--frames must be at least 1")
    identity = load_body_model(smplx_dir).identity
    check_clips(clips, identity)
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="hosig-blender-") as tmp:
        body_json = Path(tmp) / "body.json"
        body_json.write_text(json.dumps(body_payload(smplx_dir)))
        args = ["import", "--body", str(body_json), "--clips", *[str(c.resolve()) for c in clips], "--out", str(out),
                "--frames", str(frames), "--tile", f"{tile[0]}x{tile[1]}"]
        if scene is not None:
            args += ["--scene", str(Path(scene).resolve())]
        if sheet is not None:
            args += ["--sheet", str(Path(sheet).resolve())]
        if labels:
            args += ["--labels", *labels]
        return run_headless(args)


def retarget_clips(clips: list[str | Path], rig: str | Path, armature: str, out: str | Path,
                   scene: str | Path | None = None, fbx: str | Path | None = None, bvh: str | Path | None = None,
                   preset: str | None = None, nla: bool = False, smplx_dir: str | None = None) -> dict[str, Any]:
    """Clip files retargeted onto the armature ``armature`` of ``rig`` (.blend, never written),
    saved as ``out``; ``fbx`` / ``bvh``: export each shot too. Returns the headless summary (bone
    map, unmapped bones, contact figures per shot)."""
    from hosig.body.model import load_body_model

    clips = [Path(c) for c in clips]
    if not clips:
        raise InputError("no clip files given")
    if not Path(rig).is_file():
        raise InputError(f"rig file {str(rig)!r} does not exist")
    if Path(out).resolve() == Path(rig).resolve():
        raise InputError(f"--out {str(out)!r} is the rig file itself; the rig file is never written: name another file")
    if scene is not None and not Path(scene).is_file():
        raise InputError(f"scene file {str(scene)!r} does not exist")
    check_clips(clips, load_body_model(smplx_dir).identity)
    with tempfile.TemporaryDirectory(prefix="hosig-blender-") as tmp:
        body_json = Path(tmp) / "body.json"
        body_json.write_text(json.dumps(body_payload(smplx_dir)))
        args = ["retarget", "--body", str(body_json), "--clips", *[str(c.resolve()) for c in clips],
                "--rig", str(Path(rig).resolve()), "--armature", armature, "--out", str(Path(out).resolve())]
        for flag, value in (("--scene", scene), ("--fbx", fbx), ("--bvh", bvh)):
            if value is not None:
                args += [flag, str(Path(value).resolve())]
        if preset:
            args += ["--preset", preset]
        if nla:
            args.append("--nla")
        return run_headless(args)


def render_sheet(items: list[dict[str, Any]], out_png: str | Path, frames: int = 5, smplx_dir: str | None = None,
                 tile: tuple[int, int] = TILE) -> Path:
    """One contact sheet of several clips, one row each: ``items`` are ``{"scene": glb path or None,
    "clip": npz path, "label": str, "target": object name or None, "frames": clip frames or absent}``;
    each row is rendered in a fresh Blender file with its own scene and clip (its own frames, or
    ``frames`` tiles evenly over the clip — every row needs the same count —, body
    orange, target blue — default the clip's carried object —, label and frame stamped), in one
    headless subprocess. Returns the PNG's path (``sheet_size(len(items), frames)`` pixels)."""
    from hosig.body.model import load_body_model

    if not items:
        raise InputError("render_sheet: no items")
    norm = []
    for i, item in enumerate(items):
        if "clip" not in item:
            raise InputError(f"render_sheet: item {i} has no 'clip'")
        scene = item.get("scene")
        if scene is not None and not Path(scene).is_file():
            raise InputError(f"scene file {str(scene)!r} does not exist")
        norm.append({"scene": str(Path(scene).resolve()) if scene else None, "clip": str(Path(item["clip"]).resolve()),
                     "label": str(item.get("label") or Path(item["clip"]).stem), "target": item.get("target"),
                     "frames": [int(f) for f in item.get("frames") or []]})
    check_clips([n["clip"] for n in norm], load_body_model(smplx_dir).identity)
    out_png = Path(out_png).resolve()
    with tempfile.TemporaryDirectory(prefix="hosig-blender-") as tmp:
        body_json = Path(tmp) / "body.json"
        body_json.write_text(json.dumps(body_payload(smplx_dir)))
        items_json = Path(tmp) / "items.json"
        items_json.write_text(json.dumps(norm))
        summary = run_headless(["sheet", "--body", str(body_json), "--items", str(items_json), "--out", str(out_png),
                                "--frames", str(frames), "--tile", f"{tile[0]}x{tile[1]}"])
    return Path(summary["sheet"])
