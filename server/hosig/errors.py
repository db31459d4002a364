"""One error hierarchy for the whole engine.

Every failure a user can cause is a `HosigError` carrying a short machine code (used on the wire,
e.g. ``"unreachable"``) and the CLI exit code (DESIGN.md §5: 2 usage, 3 unreachable/infeasible,
1 anything else). The CLI prints ``str(err)`` as one line; the server turns it into an `error`
event or an HTTP error. Messages must name the problem and the file/object/field involved.
"""

from __future__ import annotations


class HosigError(Exception):
    """Base class: a clear, user-facing problem (no traceback needed)."""

    code: str = "error"
    exit_code: int = 1


class UsageError(HosigError):
    """Bad arguments or request fields (wrong type, NaN coordinate, malformed value)."""

    code = "bad_request"
    exit_code = 2


class InputError(HosigError):
    """A file or payload that cannot be used: missing, unsupported, corrupt, empty, absurd."""

    code = "bad_input"
    exit_code = 1


class UnknownObjectError(InputError):
    """A scene object name that does not exist; the message lists the known names."""

    code = "unknown_object"

    def __init__(self, name: str, known: list[str], where: str = "scene") -> None:
        shown = ", ".join(sorted(known)[:40]) + (" …" if len(known) > 40 else "")
        super().__init__(f"unknown object {name!r} in {where}; known objects: {shown}")
        self.name = name
        self.known = sorted(known)


class UnreachableError(HosigError):
    """The request is well-formed but infeasible: no path, no stand point, out of reach."""

    code = "unreachable"
    exit_code = 3


class InfeasibleError(UnreachableError):
    """Feasibility failure that is not about paths (object too big for a hand, no approach)."""

    code = "infeasible"


class CheckpointError(InputError):
    """A model checkpoint that is missing, corrupt, or made for another architecture/body."""

    code = "bad_checkpoint"


class CancelledError(HosigError):
    """A job cancelled by the user or by a disconnecting client."""

    code = "cancelled"
    exit_code = 1
