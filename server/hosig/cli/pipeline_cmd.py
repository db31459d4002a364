"""`hosig generate`, `hosig batch` and `hosig serve`: the pipeline from the command line.

All three call `hosig.pipeline` (the same generator the server streams), so a clip made here is
the clip the add-on would get. Progress goes to stderr; `--json` prints the `done` summary (or the
batch report) as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from hosig.cli.common import add_body_flag, add_report_flags, emit, parse_floats
from hosig.errors import HosigError, UnreachableError, UsageError
from hosig.pipeline.events import Done, Error, Frames, Grasp, Plan, Progress

ACTIONS = ("reach", "pick", "pick-place")


class EventError(HosigError):
    """An `error` event turned back into an exception with the matching exit code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code_for(code)


def exit_code_for(code: str) -> int:
    """CLI exit code of a wire error code (2 usage, 3 unreachable/infeasible, 1 other)."""
    if code == UsageError.code:
        return 2
    if code in (UnreachableError.code, "infeasible"):
        return 3
    return 1


def parse_place(text: str | None) -> str | list[float] | None:
    """`--place shelf` (object name) or `--place 1.0,2.0,0.9` (a point)."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) == 3:
        try:
            [float(p) for p in parts]
        except ValueError:
            return text
        return parse_floats(text, "--place", (3,))
    return text


def register(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser("generate", help="walk to an object and reach / pick / pick-place it; write clip.npz")
    gen.add_argument("scene", help="scene file (.glb/.gltf/.obj/.ply)")
    gen.add_argument("--start", default=None, help="start X,Y[,HEADING] (metres, radians; Z-up world); required unless --from-clip")
    gen.add_argument("--target", default=None, help="name of the object to act on; required unless --from-clip")
    gen.add_argument("--from-clip", default=None, metavar="CLIP.npz", help="regenerate a range of this clip around --anchors (issue #20)")
    gen.add_argument("--range", default=None, metavar="A:B", help="--from-clip: frames A..B (inclusive, 0-based) to regenerate; default all")
    gen.add_argument("--anchors", default=None, metavar="ANCHORS.json",
                     help="--from-clip: [{frame, joint, position?: [x,y,z], rotation?: [w,x,y,z]}] (SMPL-X joints, Blender world)")
    gen.add_argument("--variations", type=int, default=1, help="N takes with seeds SEED..SEED+N-1, ranked best first (--out: best, others OUT.takeK.npz)")
    gen.add_argument("--action", choices=ACTIONS, default="pick")
    gen.add_argument("--place", default=None, help="pick-place: object name (its top) or X,Y,Z")
    gen.add_argument("--hand", choices=("right", "left", "auto"), default="right")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--repair", type=int, default=None, metavar="N",
                     help="redraw the frames around a gross failure found in the finished clip up to N times "
                          "(default: 3 at final quality, 0 at preview; 0: never)")
    gen.add_argument("--out", default=None, help="clip file to write (npz); none written when omitted")
    gen.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    add_model_flag(gen)
    add_body_flag(gen)
    add_report_flags(gen)
    gen.set_defaults(func=cmd_generate)

    bat = subparsers.add_parser("batch", help="run a shot list (TOML); one clip per shot, unchanged shots skipped")
    bat.add_argument("shotlist", help="shot list .toml ([[shot]] tables)")
    bat.add_argument("--out", required=True, help="output folder (clips + manifest.json)")
    bat.add_argument("--force", action="store_true", help="re-generate shots even when unchanged")
    bat.add_argument("--device", choices=("cpu", "cuda"), default=None,
                     help="default cpu; with --ray, cuda where the cluster has GPUs")
    bat.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                     help="run the shots on a Ray cluster: 'auto' (the default value: a running cluster, else a local "
                          "one) or its address; needs the cluster extra (docs/CLUSTER.md)")
    bat.add_argument("--workers", type=int, default=None, help="--ray: at most this many workers (default: all the cluster fits)")
    bat.add_argument("--threads", type=int, default=None,
                     help="--ray: torch threads per worker (default: this machine's, so clips equal a local run's)")
    add_model_flag(bat)
    add_body_flag(bat)
    add_report_flags(bat)
    bat.set_defaults(func=cmd_batch)

    srv = subparsers.add_parser("serve", help="run the local inference server (FastAPI, NDJSON streaming)")
    srv.add_argument("--host", default="127.0.0.1", help="bind address (non-loopback needs --token)")
    srv.add_argument("--port", type=int, default=8765)
    srv.add_argument("--token", default=os.environ.get("HOSIG_TOKEN"), help="require 'Authorization: Bearer T' (default $HOSIG_TOKEN)")
    srv.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    srv.add_argument("--queue", type=int, default=4, help="jobs that may wait behind the running one before 503")
    srv.add_argument("--max-upload-mb", type=float, default=256.0, help="largest scene upload accepted")
    srv.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                     help="also answer requests whose Host header is NAME (repeatable; '*' = any; also $HOSIG_ALLOW_HOSTS, "
                          "comma-separated); other non-loopback Hosts get 421 bad_host")
    srv.add_argument("--cache-max-mb", type=float, default=None,
                     help="cap on the disk cache (uploads, grasps, grids; least recently used pruned); "
                          "default $HOSIG_CACHE_MAX_MB or 2048")
    srv.add_argument("--threads", type=int, default=None, metavar="N",
                     help="torch intra-op threads for the server (default $HOSIG_THREADS, else torch's own: one per core); "
                          "1 is faster when the cores are shared with other work")
    add_model_flag(srv)
    add_body_flag(srv)
    srv.set_defaults(func=cmd_serve)


def add_model_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="motion checkpoint (.safetensors/.json or folder); default: the committed model")
    parser.add_argument("--quality", choices=("final", "preview"), default="final",
                        help="preview: fewer grasp candidates/iterations and sampler steps, for blocking out shots")


def _engine(args: argparse.Namespace, device: str | None = None):
    from hosig.pipeline.engine import Engine, EngineConfig

    return Engine(EngineConfig(smplx_dir=args.smplx_dir, device=device or args.device, motion_checkpoint=args.model, quality=args.quality))


def cmd_generate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    from hosig.pipeline.request import parse_request
    from hosig.pipeline.run import run

    request = parse_request(_request_fields(args), "arguments")
    console = Console(stderr=True)
    summary: dict[str, Any] | None = None
    with Bar(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
             console=console, transient=True, disable=args.json and not console.is_terminal) as bar:
        task = bar.add_task("scene", total=1.0)
        for event in run(request, engine=_engine(args), clip_path=args.out):
            if isinstance(event, Plan):
                bar.update(task, description=f"planned {event.leg} {event.length_m:.1f} m")
            elif isinstance(event, Grasp):
                bar.update(task, description=f"grasp ({event.hand} hand)")
            elif isinstance(event, Progress):
                bar.update(task, description=event.stage, completed=event.fraction)
            elif isinstance(event, Frames):
                bar.update(task, description=f"motion: frame {event.start + event.count}")
            elif isinstance(event, Error):
                raise EventError(event.code, event.message)
            elif isinstance(event, Done):
                summary = event.summary
    if summary is None:
        raise EventError("internal", "the pipeline ended without a result")
    if not args.out and not args.json:
        sys.stderr.write("note: no --out given, clip not written\n")
    emit(summary, args)
    return 0


def _request_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request of `hosig generate`: a new shot, or (--from-clip) a range regenerated around anchors."""
    if args.from_clip is None:
        if args.start is None or args.target is None:
            raise UsageError("--start and --target are required (or --from-clip CLIP.npz to regenerate a clip)")
        if args.range is not None or args.anchors is not None or args.variations != 1:
            raise UsageError("--range, --anchors and --variations need --from-clip")
        return {"scene": args.scene, "start": parse_floats(args.start, "--start", (2, 3)), "target": args.target,
                "action": args.action, "place": parse_place(args.place), "seed": args.seed, "smplx_dir": args.smplx_dir,
                "hand": args.hand, "repair": args.repair}
    if args.repair is not None:
        raise UsageError("--repair applies to new shots, not to --from-clip (rank takes with --variations)")
    if not os.path.isfile(args.from_clip):
        raise UsageError(f"--from-clip: no such file {args.from_clip!r}")
    fields: dict[str, Any] = {"scene": args.scene, "base_clip": args.from_clip, "seed": args.seed,
                              "smplx_dir": args.smplx_dir, "variations": args.variations,
                              "anchors": _read_anchors(args.anchors) if args.anchors else []}
    if args.range is not None:
        fields["range"] = parse_range(args.range)
    return fields


def parse_range(text: str) -> list[int]:
    """`--range 120:180` -> [120, 180] (UsageError otherwise)."""
    parts = text.split(":")
    try:
        first, last = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--range: expected A:B (two frame numbers), got {text!r}") from None
    return [first, last]


def _read_anchors(path: str) -> list[Any]:
    """The anchors JSON file: a list, or an object with an "anchors" list."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as err:
        raise UsageError(f"--anchors: cannot read {path!r}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"--anchors: {path!r} is not JSON ({err})") from None
    if isinstance(data, dict) and "anchors" in data:
        data = data["anchors"]
    if not isinstance(data, list):
        raise UsageError("--anchors: expected a list of {frame, joint, position?, rotation?}")
    return data


def cmd_batch(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from hosig.pipeline.batch import run_batch

    console = Console(stderr=True)

    def on_shot(i: int, n: int, shot: Any, result: Any) -> None:
        if result is None:
            console.print(f"[{i + 1}/{n}] {shot.name} …", highlight=False)
        else:
            extra = f" ({result.error_code}: {result.error})" if result.status == "failed" else ""
            console.print(f"[{i + 1}/{n}] {shot.name}: {result.status} in {result.elapsed_s:.1f} s{extra}", highlight=False)

    if args.ray is not None:
        report = _batch_on_ray(args, console)
    elif args.workers is not None or args.threads is not None:
        raise UsageError("--workers and --threads apply to --ray only")
    else:
        report = run_batch(args.shotlist, args.out, engine=_engine(args, args.device or "cpu"), on_shot=on_shot, force=args.force)
    data = report.to_json()
    if args.json:
        emit(data, args)
    else:
        table = Table(title=f"batch: {data['ok']} generated, {data['skipped']} skipped, {data['failed']} failed in {data['elapsed_s']:.1f} s")
        for col in ("shot", "status", "frames", "seconds", "time", "clip / error"):
            table.add_column(col)
        for s in report.shots:
            detail = (s.clip or "") if s.status != "failed" else f"{s.error_code}: {s.error}"
            table.add_row(s.name, s.status, str(s.frames or ""), f"{s.duration_s:.1f}" if s.duration_s else "", f"{s.elapsed_s:.1f}", detail)
        console.print(table)
    return 1 if report.failed else 0


def _batch_on_ray(args: argparse.Namespace, console: Any) -> Any:
    """`hosig batch --ray`: the shots on a Ray actor pool, a progress bar over shots on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    from hosig.pipeline.batch import load_shot_list
    from hosig.pipeline.cluster import ClusterOptions, require_ray, run_batch_ray

    require_ray()  # before any work: the error names the extra to install
    for flag, value in (("--workers", args.workers), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    options = ClusterOptions(address=args.ray, workers=args.workers, threads=args.threads)
    with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
             console=console, disable=args.json and not console.is_terminal) as bar:
        task = bar.add_task("shots", total=len(load_shot_list(args.shotlist)))

        def on_shot(i: int, n: int, shot: Any, result: Any) -> None:
            extra = f" ({result.error_code}: {result.error})" if result.status == "failed" else ""
            bar.update(task, advance=1, description=f"{shot.name}: {result.status}")
            bar.console.print(f"[{i + 1}/{n}] {shot.name}: {result.status} in {result.elapsed_s:.1f} s{extra}", highlight=False)

        # the driver's engine only makes shot keys (CPU); the workers' device follows the cluster
        with _stdout_to_stderr():
            return run_batch_ray(args.shotlist, args.out, engine=_engine(args, "cpu"), options=options, on_shot=on_shot,
                                 force=args.force, device=args.device)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send whatever is printed in the block, by Python or native code, to stderr: Ray prints its
    workers' and raylet's messages on the driver's stdout, which `--json` keeps for one object."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cmd_serve(args: argparse.Namespace) -> int:
    from hosig.api.serve import ServeOptions, serve

    serve(ServeOptions(host=args.host, port=args.port, token=args.token, device=args.device, queue=args.queue,
                       smplx_dir=args.smplx_dir, max_upload_mb=args.max_upload_mb, model=args.model, quality=args.quality,
                       allow_hosts=tuple(args.allow_host), cache_max_mb=args.cache_max_mb, threads=args.threads))
    return 0
