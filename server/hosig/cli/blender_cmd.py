"""`hosig blender build [--out DIR]`: the installable extension zip, built by Blender's own tool.
`hosig blender import CLIP.npz [...] --out OUT.blend [--scene S.glb] [--sheet S.png]`: clip files
as keyed armatures in a .blend (bpy in a subprocess, see `blender_render`).
`hosig blender retarget CLIP.npz [...] --rig RIG.blend --armature NAME --out OUT.blend [--fbx F] [--bvh B]`:
the clips on the animator's own rig (the add-on's `retarget_blender`, headless).

Blender's ``blender --command extension build`` is a thin wrapper around ``blender_ext.py`` (the
``bl_pkg`` core add-on's CLI, plain Python), which the bpy wheel ships. We run that script with
Blender's valid-tags list, exactly as the wrapper does; with no wheel we try a ``blender`` on PATH,
and with neither we write the same zip ourselves (manifest at the root + the whitelisted files).
The manifest's ``[build]`` section decides what ships (only the add-on). This module never imports
bpy: it only locates the wheel's files.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from hosig.cli.common import add_body_flag, add_report_flags, emit
from hosig.errors import InputError

MANIFEST = "blender_manifest.toml"
# hosig_blender.bonemaps.PRESETS and "auto" (the engine does not import the add-on)
RETARGET_PRESETS = ("auto", "mixamo", "unreal", "rigify_metarig", "rigify_def", "rigify_rig", "auto_rig_pro")


def addon_source_dir() -> Path:
    """The repository root holding blender_manifest.toml (server/hosig/cli -> repo)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / MANIFEST).is_file():
        raise InputError(f"{root / MANIFEST} not found: `hosig blender build` needs a source checkout (the add-on is not installed with the package)")
    return root


def wheel_build_tool() -> tuple[Path, Path] | None:
    """(blender_ext.py, tags.py) from the installed bpy wheel, or None."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        for script in sorted(Path(base).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")):
            tags = script.parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"
            return script, tags
    return None


def build_command(source: Path, out: Path) -> list[str]:
    """The command line that builds the zip (wheel tool first, then a `blender` on PATH)."""
    tool = wheel_build_tool()
    if tool is not None:
        script, tags = tool
        cmd = [sys.executable, str(script), "build", "--source-dir", str(source), "--output-dir", str(out)]
        if tags.is_file():
            cmd += ["--valid-tags", str(tags)]
        return cmd
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension", "build", "--source-dir", str(source), "--output-dir", str(out)]
    return []  # neither: `build_extension` zips it the way Blender's tool does (see `fallback_zip`)


def _shipped_files(source: Path) -> list[str]:
    """What our manifest's [build] whitelist ships: the entry point and the hosig_blender package
    (no caches, dot-files or .pyc), with the manifest itself — the same list Blender's tool makes."""
    files = ["__init__.py"]
    for path in sorted((source / "hosig_blender").rglob("*")):
        rel = path.relative_to(source).as_posix()
        parts = rel.split("/")
        if path.is_dir() or "__pycache__" in parts or any(p.startswith(".") for p in parts) or rel.endswith(".pyc"):
            continue
        files.append(rel)
    return [MANIFEST, *files]


def fallback_zip(source: Path, out: Path, manifest: dict[str, Any]) -> Path:
    """Without Blender: the extension zip built as `blender --command extension build` would
    (manifest at the zip root, the [build] files beside it, deflate)."""
    import zipfile

    for key in ("schema_version", "id", "version", "name", "type", "blender_version_min", "license"):
        if key not in manifest:
            raise InputError(f"{source / MANIFEST}: missing required field {key!r}")
    zip_path = out / f"{manifest['id']}-{manifest['version']}.zip"
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in _shipped_files(source):
            zf.write(source / rel, rel)
    tmp.replace(zip_path)
    return zip_path


def build_extension(out: str | Path, force_fallback: bool = False) -> dict[str, Any]:
    """Build the zip into ``out``; returns {zip, files, id, version, command}.

    ``force_fallback`` skips Blender's tool (tests compare both ways)."""
    source = addon_source_dir()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest = tomllib.loads((source / MANIFEST).read_text())
    cmd = build_command(source, out) if not force_fallback else []
    zip_path = out / f"{manifest['id']}-{manifest['version']}.zip"
    if cmd:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=source)
        if proc.returncode != 0:
            detail = (proc.stdout + proc.stderr).strip().splitlines()
            raise InputError(f"Blender's extension build failed for {source / MANIFEST}: " + " | ".join(detail[-5:]))
        if not zip_path.is_file():
            raise InputError(f"Blender's extension build reported success but {zip_path} is missing: {proc.stdout.strip()}")
    else:
        fallback_zip(source, out, manifest)
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        files = sorted(zf.namelist())
    return {"zip": str(zip_path), "id": manifest["id"], "version": manifest["version"], "files": files,
            "bytes": zip_path.stat().st_size,
            "command": (" ".join(cmd[1:3]) if cmd[0] == sys.executable else cmd[0]) if cmd else "built-in zip (no Blender found)"}


def _cmd_build(args: argparse.Namespace) -> int:
    report = build_extension(args.out)
    emit(report, args, human=lambda r: f"built {r['zip']} ({len(r['files'])} files, {r['bytes'] / 1024:.0f} KiB)\n"
                                       "install: Blender > Edit > Preferences > Get Extensions > Install from Disk")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from hosig.cli.blender_render import import_clips

    report = import_clips(args.clips, args.out, scene=args.scene, sheet=args.sheet, frames=args.frames,
                          labels=args.labels, smplx_dir=args.smplx_dir)

    def human(r: dict[str, Any]) -> str:
        lines = [f"wrote {r['blend']}"]
        for a in r["armatures"]:
            obj = f", {a['object']} keyed" if a.get("object_keyed") else ""
            lines.append(f"  {a['name']}: {a['frames']} frames ({a['frame_range'][0]}-{a['frame_range'][1]}){obj}")
        if r.get("sheet"):
            lines.append(f"sheet {r['sheet']}")
        return "\n".join(lines)

    emit(report, args, human=human)
    return 0


def _cmd_retarget(args: argparse.Namespace) -> int:
    from hosig.cli.blender_render import retarget_clips

    report = retarget_clips(args.clips, args.rig, args.armature, args.out, scene=args.scene, fbx=args.fbx, bvh=args.bvh,
                            preset=args.preset, nla=args.nla, smplx_dir=args.smplx_dir)

    def human(r: dict[str, Any]) -> str:
        lines = [f"wrote {r['blend']} ({r['armature']}, bone map {r['preset']}, {len(r['bone_map'])} bones mapped, "
                 f"{len(r['unmapped'])} left at rest)"]
        for s in r["shots"]:
            feet = s["contacts"]["feet"]
            slide = max(f["target_slide_cm_s"] for f in feet.values())
            grasp = s["contacts"].get("grasp")
            hand = f", hand-object {grasp['hand_object_cm']:.1f} cm" if grasp else ""
            check = s.get("control_check_cm") or {}  # a control rig: its controls against the solve
            if check:
                hand += f", controls within {check['fk_cm']:.2f} cm" + (
                    f" (IK hands/feet {check['ik_ends_cm']:.2f} cm)" if "ik_ends_cm" in check else "")
            lines.append(f"  {s['action']}: frames {s['frames'][0]}-{s['frames'][1]}, scale {s['scale']:.3f}, "
                         f"planted-foot slide {slide:.2f} cm/s{hand}" + "".join(f", {k} {s[k]}" for k in ("fbx", "bvh") if s.get(k)))
        return "\n".join(lines)

    emit(report, args, human=human)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("blender", help="the Blender extension (build the installable zip, import clips)")
    sub = parser.add_subparsers(dest="blender_command", metavar="ACTION")
    build = sub.add_parser("build", help="build the extension zip with Blender's own extension build command")
    build.add_argument("--out", default="dist", help="output folder (default: dist)")
    add_report_flags(build)
    build.set_defaults(func=_cmd_build)
    imp = sub.add_parser("import", help="clip files (.npz) as keyed SMPL-X armatures in a .blend (headless Blender)")
    imp.add_argument("clips", nargs="+", help="clip files written by hosig generate / hosig batch")
    imp.add_argument("--out", required=True, help="the .blend to write")
    imp.add_argument("--scene", default=None, help="a .glb/.gltf scene imported first (its carried objects get keyed)")
    imp.add_argument("--sheet", default=None, help="also render a contact sheet PNG: one row per clip")
    imp.add_argument("--frames", type=int, default=6, help="contact-sheet tiles per clip (default 6)")
    imp.add_argument("--labels", nargs="+", default=None, help="one label per clip for the sheet (default: clip names)")
    add_body_flag(imp)
    add_report_flags(imp)
    imp.set_defaults(func=_cmd_import)
    ret = sub.add_parser("retarget", help="clip files retargeted onto your own rig (Mixamo, Unreal, Rigify, any humanoid); FBX/BVH export")
    ret.add_argument("clips", nargs="+", help="clip files written by hosig generate / hosig batch")
    ret.add_argument("--rig", required=True, help="the .blend holding your armature (read only: never written)")
    ret.add_argument("--armature", required=True, help="the armature object's name in the rig file")
    ret.add_argument("--out", required=True, help="the .blend to write (the rig with one action per clip)")
    ret.add_argument("--scene", default=None, help="a .glb/.gltf scene imported first (its carried objects follow the hand)")
    ret.add_argument("--fbx", default=None, help="also export FBX (OUT_<clip>.fbx for several clips)")
    ret.add_argument("--bvh", default=None, help="also export BVH (OUT_<clip>.bvh for several clips)")
    ret.add_argument("--preset", default=None, choices=RETARGET_PRESETS,
                     help="bone map (default: detect from the bone names, else automatic from the hierarchy)")
    ret.add_argument("--nla", action="store_true", help="push each clip's action onto an NLA strip")
    add_body_flag(ret)
    add_report_flags(ret)
    ret.set_defaults(func=_cmd_retarget)
    parser.set_defaults(func=lambda _a: (parser.print_help(sys.stderr), 2)[1])
