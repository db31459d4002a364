"""What every subcommand shares: `--json`, `--debug`, `--smplx-dir`, output and error handling.

A handler returns a JSON-able dict (the report). With ``--json`` exactly that object is printed on
stdout; otherwise `render_human` (or the handler's own printer) writes a readable table to stderr
so stdout stays clean for pipes. Errors are `HosigError`s: one line on stderr, exit code from the
error (2 usage, 3 unreachable, 1 other); a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any, Callable

import numpy as np

from hosig.errors import UsageError
from hosig.jsonable import to_jsonable  # noqa: F401 - re-exported for the subcommands

Handler = Callable[[argparse.Namespace], dict[str, Any]]

# "-3,-2", "-1.5,2,0.7", "-.5,1e-3": a value, never an option (argparse alone knows only "-3" and "-.5").
NEGATIVE_NUMBERS = re.compile(r"^-\.?\d[\d.,eE+-]*$")


class HosigArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose options take comma-separated coordinates that start with a minus.

    Every subcommand parser is of this class (``add_subparsers`` passes it on), so ``--start -3,-2``
    and ``--start=-3,-2`` mean the same on every command.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBERS


def add_report_flags(parser: argparse.ArgumentParser) -> None:
    """`--json` for machine-readable output (every reporting subcommand takes it)."""
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def add_body_flag(parser: argparse.ArgumentParser) -> None:
    """`--smplx-dir` on every command that uses a body (default: $HOSIG_SMPLX_DIR or the mannequin)."""
    parser.add_argument(
        "--smplx-dir",
        default=None,
        help="folder (or file) with a real SMPLX_NEUTRAL.npz/.pkl; default $HOSIG_SMPLX_DIR, else the mannequin",
    )


def emit(report: dict[str, Any], args: argparse.Namespace, human: Callable[[dict[str, Any]], str] | None = None) -> None:
    """Print the report: JSON on stdout with --json, else a human rendering on stderr."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(to_jsonable(report)) + "\n")
        sys.stdout.flush()
        return
    text = human(report) if human else render_human(report)
    sys.stderr.write(text.rstrip("\n") + "\n")


def render_human(report: dict[str, Any], indent: int = 0) -> str:
    """A compact key: value listing; long lists are summarised."""
    lines: list[str] = []
    pad = "  " * indent
    for key, value in report.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(render_human(value, indent + 1))
        elif isinstance(value, (list, tuple, np.ndarray)) and len(value) > 8:
            lines.append(f"{pad}{key}: [{len(value)} items]")
        elif isinstance(value, float):
            lines.append(f"{pad}{key}: {value:.4g}")
        else:
            lines.append(f"{pad}{key}: {to_jsonable(value)}")
    return "\n".join(lines)


def parse_floats(text: str, name: str, counts: tuple[int, ...]) -> list[float]:
    """Parse "x,y[,h]" style arguments; finite numbers only, with a message naming the flag."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    if len(values) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise UsageError(f"{name}: expected {want} comma-separated numbers, got {len(values)} in {text!r}")
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"{name}: values must be finite numbers, got {text!r}")
    return values
