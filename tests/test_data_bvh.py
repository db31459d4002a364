"""BVH reader/writer/FK and resampling, on BVH files the tests write themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hosig.errors import InputError
from hosig.motion.data.bvh import BvhMotion, BvhSkeleton, parse_bvh, read_bvh, write_bvh
from hosig.motion.data.capture import bvh_to_capture
from hosig.motion.data.resample import resample_axis_angle, resample_linear, resample_rotmats

SMALL_BVH = """HIERARCHY
ROOT hip
{
\tOFFSET 0 0 0
\tCHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
\tJOINT spine
\t{
\t\tOFFSET 0 10 0
\t\tCHANNELS 3 Xrotation Yrotation Zrotation
\t\tEnd Site
\t\t{
\t\t\tOFFSET 0 5 0
\t\t}
\t}
\tJOINT leg
\t{
\t\tOFFSET 3 -2 0
\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\tEnd Site
\t\t{
\t\t\tOFFSET 0 -40 0
\t\t}
\t}
}
MOTION
Frames: 2
Frame Time: 0.0083333
1 2 3 0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 90 0 0 30 40 50
"""


def test_parse_small_file_and_fk() -> None:
    m = parse_bvh(SMALL_BVH, "small.bvh")
    sk = m.skeleton
    assert sk.names == ["hip", "spine", "leg"]
    assert list(sk.parents) == [-1, 0, 0]
    assert sk.channels[1] == ["Xrotation", "Yrotation", "Zrotation"]
    assert m.values.shape == (2, 12)
    pose = m.fk()
    # Frame 0: rest; root at (1,2,3).
    np.testing.assert_allclose(pose.positions[0, 1], [1, 12, 3])
    np.testing.assert_allclose(pose.end_positions[0, 0], [1, 17, 3])
    np.testing.assert_allclose(pose.end_positions[0, 1], [4, -40, 3])
    # Frame 1: root yawed 90 deg about Z: spine (0,10,0) -> (-10,0,0); spine's own X rotation
    # turns its end site (0,5,0) about the spine's X axis (world Y after the root turn).
    np.testing.assert_allclose(pose.positions[1, 1], [1 - 10, 2, 3], atol=1e-9)
    rz = Rotation.from_euler("Z", 90, degrees=True).as_matrix()
    rx = Rotation.from_euler("X", 90, degrees=True).as_matrix()
    expected_end = pose.positions[1, 1] + rz @ rx @ np.array([0, 5, 0])
    np.testing.assert_allclose(pose.end_positions[1, 0], expected_end, atol=1e-9)
    # leg: channels Z X Y applied in file order (intrinsic): Rz(30) Rx(40) Ry(50).
    leg = Rotation.from_euler("ZXY", [30, 40, 50], degrees=True).as_matrix()
    np.testing.assert_allclose(pose.rotations[1, 2], rz @ leg, atol=1e-9)


def _random_skeleton(rng: np.random.Generator) -> BvhSkeleton:
    names = ["root", "a", "b", "c", "d", "e"]
    parents = np.array([-1, 0, 1, 0, 3, 1])
    orders = [["Xposition", "Yposition", "Zposition", "Yrotation", "Xrotation", "Zrotation"],
              ["Zrotation", "Xrotation", "Yrotation"], ["Xrotation", "Zrotation", "Yrotation"],
              ["Yrotation", "Zrotation", "Xrotation"], ["Zrotation", "Yrotation", "Xrotation"],
              ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]]  # fmt: skip
    return BvhSkeleton(
        names=names, parents=parents, offsets=rng.normal(size=(6, 3)) * 10, channels=orders,
        end_parents=np.array([2, 4, 5]), end_offsets=rng.normal(size=(3, 3)) * 5,
    )  # fmt: skip


def test_round_trip_write_read_same_fk(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    sk = _random_skeleton(rng)
    values = rng.uniform(-80, 80, size=(7, sk.num_channels))
    motion = BvhMotion(sk, 1 / 60, values)
    path = write_bvh(tmp_path / "rt.bvh", motion)
    back = read_bvh(path)
    order = [back.skeleton.names.index(n) for n in sk.names]  # file order is depth-first
    assert sorted(back.skeleton.names) == sorted(sk.names)
    assert [back.skeleton.channels[i] for i in order] == sk.channels
    assert back.fps == pytest.approx(60, rel=1e-6)
    a, b = motion.fk(), back.fk()
    np.testing.assert_allclose(b.positions[:, order], a.positions, atol=1e-4)
    assert b.end_positions.shape == a.end_positions.shape
    for e, parent in enumerate(sk.end_parents):
        e_back = back.skeleton.end_for(back.skeleton.names.index(sk.names[parent]))
        np.testing.assert_allclose(b.end_positions[:, e_back], a.end_positions[:, e], atol=1e-4)


def test_writer_reorders_non_depth_first_joint_order(tmp_path: Path) -> None:
    # Joint order root, a, b(child of root), c(child of a): depth-first file order is root a c b.
    sk = BvhSkeleton(["root", "a", "b", "c"], np.array([-1, 0, 0, 1]), np.eye(4, 3) * 5 + 1,
                     [["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]]
                     + [["Zrotation", "Xrotation", "Yrotation"]] * 3)  # fmt: skip
    values = np.arange(15, dtype=float)[None].repeat(2, 0)
    motion = BvhMotion(sk, 1 / 30, values)
    back = read_bvh(write_bvh(tmp_path / "order.bvh", motion))
    assert back.skeleton.names == ["root", "a", "c", "b"]
    pa, pb = motion.fk().positions, back.fk().positions
    for i, name in enumerate(sk.names):
        np.testing.assert_allclose(pb[:, back.skeleton.names.index(name)], pa[:, i], atol=1e-4)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("MOTION", "MOTON"), "no MOTION section"),
        (lambda t: t.replace("40 50\n", "40\n"), "has 11 values, expected 12"),
        (lambda t: t.replace("1 2 3 90", "1 nan 3 90"), "NaN"),
        (lambda t: t.replace("1 2 3 90", "1 x 3 90"), "is not a number"),
        (lambda t: t.replace("Frames: 2", "Frames: 3"), "header says 3 frames"),
        (lambda t: t.replace("OFFSET 3 -2 0", "OFFSET 3 -2"), "expected a number"),
        (lambda t: t.replace("Zrotation Xrotation Yrotation\n", "Zrotation Xrotation Wrotation\n", 1), "unknown channel"),
        (lambda t: t.replace("}\nMOTION", "}\nROOT other\n{\nOFFSET 0 0 0\n}\nMOTION"), "more than one ROOT"),
        (lambda t: "", "empty"),
    ],
)
def test_corrupt_files_raise_input_error_naming_file(tmp_path: Path, mutate, message: str) -> None:
    path = tmp_path / "bad.bvh"
    path.write_text(mutate(SMALL_BVH))
    with pytest.raises(InputError) as err:
        read_bvh(path)
    assert message in str(err.value)
    assert "bad.bvh" in str(err.value)


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_bvh(tmp_path / "nope.bvh")


def test_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "line.bvh"
    path.write_text(SMALL_BVH.replace("40 50\n", "40\n"))
    with pytest.raises(InputError, match=r"line\.bvh:29:"):
        read_bvh(path)


def test_resample_120_to_30_keeps_positions() -> None:
    # A skeleton moving smoothly at 120 fps; resampled capture must match FK at the 30 fps instants.
    rng = np.random.default_rng(0)
    sk = _random_skeleton(rng)
    t120 = np.arange(121) / 120.0
    values = np.stack([np.sin(t120 * (1 + c)) * 30 + c for c in range(sk.num_channels)], axis=1)
    motion = BvhMotion(sk, 1 / 120, values)
    cap = bvh_to_capture(motion, unit_scale=1.0, up="y", target_fps=30.0)
    assert cap.num_frames == 31
    ref = motion.fk()
    frames = np.arange(0, 121, 4)
    from hosig.frames import YUP_TO_ZUP

    np.testing.assert_allclose(cap.points[:, : len(sk.names)], ref.positions[frames] @ YUP_TO_ZUP.T, atol=1e-9)
    # Non-integer ratio: 50 -> 30 fps interpolates between frames (rotations by slerp).
    rot = Rotation.from_euler("z", np.linspace(0, 90, 51)[:, None], degrees=True).as_matrix()[:, None]
    out = resample_rotmats(rot, 50.0, 30.0)
    angles = Rotation.from_matrix(out[:, 0]).as_euler("zyx", degrees=True)[:, 0]
    np.testing.assert_allclose(angles, np.arange(len(out)) * (90 / 50) * (50 / 30), atol=1e-6)
    lin = resample_linear(np.arange(51, dtype=float)[:, None], 50.0, 30.0)
    np.testing.assert_allclose(lin[:, 0], np.arange(len(lin)) * 50 / 30, atol=1e-9)
    aa = resample_axis_angle(np.tile([0.0, 0.0, 0.5], (51, 2)), 50.0, 30.0)
    assert aa.shape == (len(lin), 6)
    np.testing.assert_allclose(aa, 0.5 * np.tile([0, 0, 1.0], (len(lin), 2)), atol=1e-9)
