"""Entry point of the `hosig` command: builds the parser from the subcommand modules."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from hosig import __version__
from hosig.cli.common import HosigArgumentParser
from hosig.errors import HosigError

# Each module defines ``register(subparsers)``; each subcommand sets ``func`` (args -> int | None).
SUBCOMMAND_MODULES: list[str] = [
    "hosig.cli.body_cmd",
    "hosig.cli.scene_cmd",
    "hosig.cli.navigate_cmd",
    "hosig.cli.grasp_cmd",
    "hosig.cli.pipeline_cmd",
    "hosig.cli.eval_cmd",
    "hosig.cli.blender_cmd",
    "hosig.cli.demo_cmd",
    "hosig.cli.motion_cmd",
    "hosig.cli.data_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = HosigArgumentParser(
        prog="hosig",
        description="HOSIG for Blender: scene-aware human-object interaction motion, from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"hosig {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=HosigArgumentParser)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # a dependency is missing: that is a real error
                raise
            sys.stderr.write(f"hosig: warning: subcommand module {name} is not installed\n")
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    debug = args.debug or os.environ.get("HOSIG_DEBUG") == "1"
    try:
        code = args.func(args)
        return int(code or 0)
    except HosigError as err:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"hosig {args.command}: error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"hosig {args.command}: interrupted\n")
        return 130
    except Exception as err:  # noqa: BLE001 - last-resort: one line unless --debug
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"hosig {args.command}: internal error: {type(err).__name__}: {err} (rerun with --debug)\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
