"""BVH motion capture: reader, forward kinematics and writer.

Why our own: the format is tiny, but every capture source bends it a little (channel orders per
joint, position channels on non-root joints, End Sites, CRLF, tabs), and bad files must fail with a
message that names the file and line instead of a numpy traceback. FK is vectorised over frames.

Conventions (the common reading of the format):
- A joint's local transform is ``T(translation) @ R`` with ``R`` the product of its rotation
  channels *in the listed order* (``Zrotation Xrotation Yrotation`` -> ``Rz @ Rx @ Ry``), degrees.
- Translation is the joint's OFFSET; position channels, where present, *replace* it (the root's
  position channels are its position in the world of the file).
- End Sites are kept as extra points (parent index + offset); their positions come out of FK too.
- Exactly one ROOT. Units and up axis are whatever the file uses; callers convert.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hosig.errors import InputError

ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
_AXIS = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BvhSkeleton:
    """Joint hierarchy of a BVH file (joints in file order, parents before children)."""

    names: list[str]
    parents: np.ndarray  # (K,) int, -1 for the root
    offsets: np.ndarray  # (K,3) float64 rest offsets from the parent (file units)
    channels: list[list[str]]  # per joint, channel names in file order
    end_parents: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (E,)
    end_offsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (E,3)

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"BVH skeleton has no joint {name!r}") from None

    def channel_starts(self) -> np.ndarray:
        """(K,) first column of each joint's channels in a motion row."""
        counts = np.array([len(c) for c in self.channels], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    def rest_positions(self) -> np.ndarray:
        """(K,3) joint positions with all channels at their rest values (offset-only pose)."""
        pos = np.zeros((len(self.names), 3))
        for k, p in enumerate(self.parents):
            pos[k] = self.offsets[k] if p < 0 else pos[p] + self.offsets[k]
        return pos

    def end_for(self, joint: int) -> int | None:
        """Index of the (first) End Site under ``joint``, or None."""
        hits = np.nonzero(self.end_parents == joint)[0]
        return int(hits[0]) if len(hits) else None


@dataclass
class BvhMotion:
    """A parsed BVH file: skeleton, frame time (s) and the raw channel values (F,C)."""

    skeleton: BvhSkeleton
    frame_time: float
    values: np.ndarray  # (F,C) float64, columns in file order
    path: str = "<memory>"

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    def local_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame local rotations (F,K,3,3) and translations (F,K,3) from the channels."""
        return channels_to_local(self.skeleton, self.values)

    def fk(self) -> "BvhPose":
        """World-space forward kinematics of every frame."""
        rot, trans = self.local_transforms()
        return forward_kinematics(self.skeleton, rot, trans)


@dataclass
class BvhPose:
    """FK result: world positions (F,K,3), world rotations (F,K,3,3), End Sites (F,E,3)."""

    positions: np.ndarray
    rotations: np.ndarray
    end_positions: np.ndarray


# --------------------------------------------------------------------------------------- maths
def axis_rotation(axis: str, angle_rad: np.ndarray) -> np.ndarray:
    """(...,3,3) rotation matrices about a principal axis ('X','Y','Z')."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    out = np.zeros(np.shape(angle_rad) + (3, 3))
    i = _AXIS[axis]
    j, k = (i + 1) % 3, (i + 2) % 3
    out[..., i, i] = 1.0
    out[..., j, j] = c
    out[..., k, k] = c
    out[..., j, k] = -s
    out[..., k, j] = s
    return out


def channels_to_local(skeleton: BvhSkeleton, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Motion rows (F,C) -> local rotations (F,K,3,3) and local translations (F,K,3)."""
    values = np.asarray(values, dtype=np.float64)
    n_frames, n_joints = values.shape[0], len(skeleton.names)
    rot = np.broadcast_to(np.eye(3), (n_frames, n_joints, 3, 3)).copy()
    trans = np.broadcast_to(skeleton.offsets, (n_frames, n_joints, 3)).copy()
    col = 0
    for k, chans in enumerate(skeleton.channels):
        r = None
        for name in chans:
            v = values[:, col]
            col += 1
            if name in POSITION_CHANNELS:
                trans[:, k, _AXIS[name[0]]] = v
            else:
                m = axis_rotation(name[0], np.deg2rad(v))
                r = m if r is None else r @ m
        if r is not None:
            rot[:, k] = r
    return rot, trans


def forward_kinematics(skeleton: BvhSkeleton, local_rot: np.ndarray, local_trans: np.ndarray) -> BvhPose:
    """World positions/rotations from local rotations (F,K,3,3) and translations (F,K,3)."""
    n_frames, n_joints = local_rot.shape[:2]
    g_rot = np.empty_like(local_rot)
    g_pos = np.empty((n_frames, n_joints, 3))
    for k, p in enumerate(skeleton.parents):
        if p < 0:
            g_rot[:, k] = local_rot[:, k]
            g_pos[:, k] = local_trans[:, k]
        else:
            g_rot[:, k] = g_rot[:, p] @ local_rot[:, k]
            g_pos[:, k] = g_pos[:, p] + np.einsum("fij,fj->fi", g_rot[:, p], local_trans[:, k])
    ends = np.empty((n_frames, len(skeleton.end_parents), 3))
    for e, p in enumerate(skeleton.end_parents):
        ends[:, e] = g_pos[:, p] + g_rot[:, p] @ skeleton.end_offsets[e]
    return BvhPose(g_pos, g_rot, ends)


def rotations_to_channels(rot: np.ndarray, order: str) -> np.ndarray:
    """(...,3,3) rotations -> (...,3) Euler degrees for channels in ``order`` (e.g. 'ZXY')."""
    from scipy.spatial.transform import Rotation

    shape = rot.shape[:-2]
    eul = Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_euler(order.upper(), degrees=True)
    return eul.reshape(shape + (3,))


# ------------------------------------------------------------------------------------- reading
class _Tokens:
    """Whitespace tokens with their line numbers, for error messages."""

    def __init__(self, text: str, path: str) -> None:
        self.items: list[tuple[str, int]] = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            for tok in line.split():
                self.items.append((tok, lineno))
        self.pos = 0
        self.path = path

    def error(self, msg: str, lineno: int | None = None) -> InputError:
        if lineno is None:
            lineno = self.items[min(self.pos, len(self.items) - 1)][1] if self.items else 1
        return InputError(f"{self.path}:{lineno}: corrupt BVH: {msg}")

    def next(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.items):
            raise self.error(f"unexpected end of file while reading {what}")
        tok = self.items[self.pos]
        self.pos += 1
        return tok

    def expect(self, word: str) -> int:
        tok, line = self.next(repr(word))
        if tok != word:
            raise self.error(f"expected {word!r}, found {tok!r}", line)
        return line

    def number(self, what: str) -> float:
        tok, line = self.next(what)
        try:
            val = float(tok)
        except ValueError:
            raise self.error(f"expected a number for {what}, found {tok!r}", line) from None
        if not math.isfinite(val):
            raise self.error(f"non-finite {what} {tok!r}", line)
        return val

    def peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None


def _parse_hierarchy(tok: _Tokens) -> BvhSkeleton:
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    end_parents: list[int] = []
    end_offsets: list[list[float]] = []

    def parse_offset(what: str) -> list[float]:
        tok.expect("OFFSET")
        return [tok.number(f"{what} OFFSET") for _ in range(3)]

    def parse_joint(name: str, parent: int) -> None:
        tok.expect("{")
        idx = len(names)
        if name in names:
            raise tok.error(f"joint name {name!r} used twice")
        names.append(name)
        parents.append(parent)
        offsets.append(parse_offset(f"joint {name!r}"))
        chans: list[str] = []
        if tok.peek() == "CHANNELS":
            tok.next("CHANNELS")
            count_tok, line = tok.next("channel count")
            if not count_tok.isdigit():
                raise tok.error(f"joint {name!r}: channel count {count_tok!r} is not a number", line)
            for _ in range(int(count_tok)):
                ch, line = tok.next(f"channel of {name!r}")
                if ch not in ROTATION_CHANNELS + POSITION_CHANNELS:
                    raise tok.error(f"joint {name!r}: unknown channel {ch!r}", line)
                chans.append(ch)
        channels.append(chans)
        while True:
            word, line = tok.next(f"body of joint {name!r}")
            if word == "}":
                return
            if word == "JOINT":
                child, _ = tok.next("joint name")
                parse_joint(child, idx)
            elif word == "End":
                tok.expect("Site")
                tok.expect("{")
                end_parents.append(idx)
                end_offsets.append(parse_offset(f"End Site of {name!r}"))
                tok.expect("}")
            else:
                raise tok.error(f"unexpected {word!r} inside joint {name!r}", line)

    tok.expect("HIERARCHY")
    word, line = tok.next("ROOT")
    if word != "ROOT":
        raise tok.error(f"expected ROOT, found {word!r}", line)
    root, _ = tok.next("root name")
    parse_joint(root, -1)
    nxt = tok.peek()
    if nxt == "ROOT":
        _, line = tok.next("ROOT")
        raise tok.error("more than one ROOT: multi-character/multi-root BVH files are not supported", line)
    return BvhSkeleton(
        names=names,
        parents=np.asarray(parents, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.float64).reshape(-1, 3),
        channels=channels,
        end_parents=np.asarray(end_parents, dtype=np.int64),
        end_offsets=np.asarray(end_offsets, dtype=np.float64).reshape(-1, 3),
    )


_FRAMES_RE = re.compile(r"^\s*Frames\s*:\s*(\S+)\s*$")
_TIME_RE = re.compile(r"^\s*Frame\s+Time\s*:\s*(\S+)\s*$")


def parse_bvh(text: str, path: str = "<memory>") -> BvhMotion:
    """Parse BVH text; raises InputError naming ``path`` and the line on anything malformed."""
    lines = text.splitlines()
    motion_line = next((i for i, ln in enumerate(lines) if ln.strip() == "MOTION"), None)
    if motion_line is None:
        if not text.strip():
            raise InputError(f"{path}: empty BVH file")
        raise InputError(f"{path}: corrupt BVH: no MOTION section")
    tok = _Tokens("\n".join(lines[:motion_line]), path)
    if not tok.items:
        raise InputError(f"{path}:1: corrupt BVH: no HIERARCHY before MOTION")
    skeleton = _parse_hierarchy(tok)
    if tok.peek() is not None:
        word, line = tok.next("end of hierarchy")
        raise tok.error(f"unexpected {word!r} after the hierarchy", line)

    def header(i: int, regex: re.Pattern, what: str) -> str:
        if i >= len(lines):
            raise InputError(f"{path}:{i + 1}: corrupt BVH: missing {what!r} line after MOTION")
        m = regex.match(lines[i])
        if not m:
            raise InputError(f"{path}:{i + 1}: corrupt BVH: expected {what!r}, found {lines[i].strip()[:60]!r}")
        return m.group(1)

    frames_tok = header(motion_line + 1, _FRAMES_RE, "Frames:")
    time_tok = header(motion_line + 2, _TIME_RE, "Frame Time:")
    try:
        n_frames = int(frames_tok)
    except ValueError:
        raise InputError(f"{path}:{motion_line + 2}: corrupt BVH: frame count {frames_tok!r} is not an integer") from None
    try:
        frame_time = float(time_tok)
    except ValueError:
        raise InputError(f"{path}:{motion_line + 3}: corrupt BVH: frame time {time_tok!r} is not a number") from None
    if not (math.isfinite(frame_time) and frame_time > 0):
        raise InputError(f"{path}:{motion_line + 3}: corrupt BVH: frame time must be positive, got {time_tok!r}")
    if n_frames < 1:
        raise InputError(f"{path}:{motion_line + 2}: corrupt BVH: no frames (Frames: {n_frames})")

    first = motion_line + 3
    data_lines = lines[first:]
    while data_lines and not data_lines[-1].strip():
        data_lines.pop()
    n_chan = skeleton.num_channels
    if len(data_lines) != n_frames:
        raise InputError(
            f"{path}:{first + min(len(data_lines), n_frames) + 1}: corrupt BVH: header says {n_frames} frames "
            f"but the file has {len(data_lines)} motion lines"
        )
    flat = " ".join(data_lines).split()
    values: np.ndarray | None = None
    if len(flat) == n_frames * n_chan:
        try:
            values = np.asarray(flat, dtype=np.float64).reshape(n_frames, n_chan)
        except ValueError:
            values = None
    if values is None:  # find the first bad line for the message
        for i, ln in enumerate(data_lines):
            parts = ln.split()
            if len(parts) != n_chan:
                raise InputError(
                    f"{path}:{first + i + 1}: corrupt BVH: frame {i} has {len(parts)} values, expected {n_chan}"
                )
            for p in parts:
                try:
                    float(p)
                except ValueError:
                    raise InputError(f"{path}:{first + i + 1}: corrupt BVH: frame {i}: {p!r} is not a number") from None
        raise InputError(f"{path}: corrupt BVH: motion data could not be read")  # pragma: no cover
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            f"{path}:{first + row + 1}: corrupt BVH: frame {row} channel {col} is {values[row, col]} (NaN/inf)"
        )
    return BvhMotion(skeleton=skeleton, frame_time=frame_time, values=values, path=path)


def read_bvh(path: str | Path) -> BvhMotion:
    """Read a BVH file (raises InputError for missing, unreadable or corrupt files)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: BVH file not found")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise InputError(f"{p}: cannot read BVH file: {err}") from None
    return parse_bvh(text, str(p))


# ------------------------------------------------------------------------------------- writing
def format_bvh(motion: BvhMotion, precision: int = 6) -> str:
    """BVH text for a skeleton + channel values (inverse of `parse_bvh`)."""
    sk = motion.skeleton
    children: dict[int, list[int]] = {k: [] for k in range(len(sk.names))}
    for k, p in enumerate(sk.parents):
        if p >= 0:
            children[int(p)].append(k)
    out: list[str] = ["HIERARCHY"]
    fmt = f"{{:.{precision}f}}"

    def vec(v: np.ndarray) -> str:
        return " ".join(fmt.format(float(x)) for x in v)

    def emit(k: int, depth: int) -> None:
        pad = "  " * depth
        kind = "ROOT" if sk.parents[k] < 0 else "JOINT"
        out.append(f"{pad}{kind} {sk.names[k]}")
        out.append(pad + "{")
        out.append(f"{pad}  OFFSET {vec(sk.offsets[k])}")
        if sk.channels[k]:
            out.append(f"{pad}  CHANNELS {len(sk.channels[k])} {' '.join(sk.channels[k])}")
        for c in children[k]:
            emit(c, depth + 1)
        for e in np.nonzero(sk.end_parents == k)[0]:
            out.append(f"{pad}  End Site")
            out.append(pad + "  {")
            out.append(f"{pad}    OFFSET {vec(sk.end_offsets[e])}")
            out.append(pad + "  }")
        out.append(pad + "}")

    roots = [k for k, p in enumerate(sk.parents) if p < 0]
    if len(roots) != 1:
        raise InputError(f"BVH writer: skeleton must have exactly one root, has {len(roots)}")
    emit(roots[0], 0)
    # The file lists channels in depth-first order, which need not be the skeleton's joint order.
    order: list[int] = []

    def dfs(k: int) -> None:
        order.append(k)
        for c in children[k]:
            dfs(c)

    dfs(roots[0])
    starts = sk.channel_starts()
    cols = np.concatenate([np.arange(starts[k], starts[k] + len(sk.channels[k])) for k in order]).astype(np.int64)
    values = np.asarray(motion.values)[:, cols]
    out.append("MOTION")
    out.append(f"Frames: {values.shape[0]}")
    out.append(f"Frame Time: {motion.frame_time:.8f}")
    body = np.char.mod(f"%.{precision}f", values)
    out.extend(" ".join(row) for row in body)
    return "\n".join(out) + "\n"


def write_bvh(path: str | Path, motion: BvhMotion, precision: int = 6) -> Path:
    """Write ``motion`` as a BVH file (joints may be in any parent-before-child order)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(format_bvh(motion, precision))
    return p
