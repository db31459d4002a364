"""`hosig data prepare|report|export-bvh` end to end on small CMU-like, AMASS and TRUMANS fixtures."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hosig.body import load_body_model
from hosig.body.skeleton import FINGER_JOINTS, JOINT_INDEX, NUM_JOINTS
from hosig.cli.main import main
from hosig.errors import InputError
from hosig.motion.data.bvh import BvhMotion, BvhSkeleton, write_bvh
from hosig.motion.data.dataset import load_dataset, save_dataset
from hosig.motion.data.prepare import PrepareConfig, prepare_dataset
from hosig.motion.data.retarget import RetargetConfig

# A CMU-like skeleton (names, parents, offsets in cm as in the cgspeed files; fingers reduced to Mid1).
_CMU = [
    ("hip", None, (0, 0, 0)), ("abdomen", "hip", (0, 20.69, -0.73)), ("chest", "abdomen", (0, 11.7, -0.49)),
    ("neck", "chest", (0, 22.19, -2.19)), ("head", "neck", (0, 7.07, 1.22)),
    ("leftEye", "head", (4.1, 8.0, 8.0)), ("rightEye", "head", (-3.7, 8.0, 8.0)),
]  # fmt: skip
for _c, _s in (("r", -1), ("l", 1)):
    _CMU += [
        (f"{_c}Collar", "chest", (_s * 2.68, 19.26, -4.88)), (f"{_c}Shldr", f"{_c}Collar", (_s * 8.78, -1.95, 1.46)),
        (f"{_c}ForeArm", f"{_c}Shldr", (_s * 28.17, -1.71, 0.49)), (f"{_c}Hand", f"{_c}ForeArm", (_s * 22.59, 0.77, 7.07)),
        (f"{_c}Mid1", f"{_c}Hand", (_s * 8.25, 1.18, 3.41)),
    ]  # fmt: skip
for _c, _s in (("r", -1), ("l", 1)):
    _CMU += [
        (f"{_c}Buttock", "hip", (_s * 8.78, 4.35, 1.22)), (f"{_c}Thigh", f"{_c}Buttock", (0, -1.71, -2.19)),
        (f"{_c}Shin", f"{_c}Thigh", (0, -36.82, 0.73)), (f"{_c}Foot", f"{_c}Shin", (_s * 0.73, -45.11, -5.12)),
    ]  # fmt: skip


def cmu_like_bvh(path: Path, frames: int = 60, seed: int = 0) -> Path:
    """A walking-ish CMU-skeleton BVH at 120 fps (plus the 4 junk leading frames CMU files have)."""
    names = [n for n, _, _ in _CMU]
    parents = np.array([-1 if p is None else names.index(p) for _, p, _ in _CMU])
    channels = [["Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation"]] + [
        ["Zrotation", "Xrotation", "Yrotation"]
    ] * (len(names) - 1)
    ends_p = [names.index(n) for n in ("head", "lFoot", "rFoot", "lMid1", "rMid1")]
    ends_o = [(0, 10, 0), (1.12, -3.7, 12.1), (-1.12, -3.7, 12.1), (2.0, 0, 0), (-2.0, 0, 0)]
    sk = BvhSkeleton(names, parents, np.array([o for _, _, o in _CMU], float), channels,
                     np.array(ends_p), np.array(ends_o, float))  # fmt: skip
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 120.0
    ph = 2 * np.pi * t
    vals = np.zeros((frames, sk.num_channels))
    starts = sk.channel_starts()
    vals[:, 0] = 30 * t
    vals[:, 1] = 88 + rng.normal(0, 0.1)
    vals[:, 2] = 100 * t
    for c, s in (("l", 1), ("r", -1)):
        vals[:, starts[names.index(f"{c}Thigh")] + 1] = 25 * s * np.sin(ph)  # X rotation (swing)
        vals[:, starts[names.index(f"{c}Shin")] + 1] = 20 + 15 * np.sin(ph + s)
        vals[:, starts[names.index(f"{c}Shldr")]] = -s * 70  # Z rotation: arms down
        vals[:, starts[names.index(f"{c}ForeArm")] + 2] = s * 20  # elbows slightly bent
    return write_bvh(path, BvhMotion(sk, 1 / 120.0, vals))


FAST = PrepareConfig(retarget=RetargetConfig(iterations=15), progress=False)


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def test_prepare_cmu_skips_bad_file_and_masks_fingers(body, tmp_path: Path) -> None:
    folder = tmp_path / "cmu" / "bvh"
    folder.mkdir(parents=True)
    cmu_like_bvh(folder / "01_01.bvh", seed=0)
    cmu_like_bvh(folder / "01_02.bvh", seed=1)
    (folder / "02_01.bvh").write_text("HIERARCHY\nROOT hip\n{\nOFFSET 0 0 0\n}\n")  # no MOTION
    (tmp_path / "cmu" / "INDEX.tsv").write_text("file\tcategory\nbvh/01_01.bvh\twalk\nbvh/01_02.bvh\trun\n")
    out = tmp_path / "out" / "cmu.npz"
    ds, report = prepare_dataset([("cmu", tmp_path / "cmu")], out, body, FAST)
    assert report["source_clips"] == 2 and report["clips"] == 4  # mirrored copies
    assert len(report["skipped"]) == 1 and "02_01.bvh" in report["skipped"][0]["error"]
    assert "MOTION" in report["skipped"][0]["error"]
    assert report["frame_rates"] == {"120": 2} and report["resampled_clips"] == 2
    assert set(report["categories"]) == {"walk", "run"}
    back = load_dataset(out)
    assert back.num_clips == 4 and back.fps == 30 and back.body_identity == body.identity
    assert not back.valid[:, FINGER_JOINTS].any()  # CMU never captured fingers
    assert not back.valid[:, JOINT_INDEX["jaw"]].any()
    toes = [JOINT_INDEX["left_foot"], JOINT_INDEX["right_foot"]]
    assert not back.valid[:, toes].any()  # CMU has no toe joint: toe bend never captured
    assert back.valid[:, [k for k in range(22) if k not in toes]].all()
    assert np.isfinite(back.clip_fit_error_mean).all() and (back.clip_fit_error_mean < 0.03).all()
    # 60 frames at 120 fps minus 4 -> 56 frames = 14 intervals of 1/30 s -> 14 frames.
    assert (back.clip_length == 14).all()
    # Floor at z=0: the lowest foot point sits near its standing height.
    rest_h = back.extra["foot_rest_heights"]
    assert abs((back.joints[:, [7, 10, 8, 11], 2] - rest_h).min()) < 0.03
    names = list(back.clip_name)
    assert "01_01#mirror" in names and back.clip_mirrored[names.index("01_01#mirror")]
    # Second run: everything comes from the per-file cache.
    _, again = prepare_dataset([("cmu", tmp_path / "cmu")], out, body, FAST)
    assert again["cached_clips"] == 2


def test_prepare_empty_folder_is_clear_error(body, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .bvh files"):
        prepare_dataset([("cmu", tmp_path / "empty")], tmp_path / "o.npz", body, FAST)
    with pytest.raises(InputError, match="not found"):
        prepare_dataset([("amass", tmp_path / "missing")], tmp_path / "o.npz", body, FAST)


def _amass_file(path: Path, width: int, fps: float, frames: int = 24) -> None:
    rng = np.random.default_rng(width)
    poses = 0.1 * rng.normal(size=(frames, width))
    poses[:, :3] = [np.pi / 2, 0, 0]  # AMASS is Z-up: upright body
    trans = np.stack([np.linspace(0, 0.5, frames), np.zeros(frames), np.full(frames, 0.9)], axis=1)
    key = "mocap_framerate" if width == 156 else "mocap_frame_rate"
    np.savez(path, poses=poses, trans=trans, betas=np.zeros(16), gender=np.array("neutral"), **{key: np.array(fps)})


def test_amass_156_and_165_and_trumans_load(body, tmp_path: Path) -> None:
    amass = tmp_path / "amass" / "CMU" / "01"
    amass.mkdir(parents=True)
    _amass_file(amass / "a_smplh.npz", 156, 60.0)
    _amass_file(amass / "b_smplx.npz", 165, 120.0)
    np.savez(amass / "shape.npz", betas=np.zeros(16))  # not a motion: skipped, reported
    trumans = tmp_path / "trumans"
    trumans.mkdir()
    n = 40
    rng = np.random.default_rng(5)
    np.save(trumans / "human_pose.npy", 0.05 * rng.normal(size=(n, 63)).astype(np.float32))
    np.save(trumans / "human_orient.npy", np.zeros((n, 3), np.float32))  # Y-up upright
    np.save(trumans / "human_transl.npy", np.zeros((n, 3), np.float32))
    np.save(trumans / "left_hand_pose.npy", 0.1 * rng.normal(size=(n, 45)).astype(np.float32))
    np.save(trumans / "right_hand_pose.npy", 0.1 * rng.normal(size=(n, 45)).astype(np.float32))
    np.save(trumans / "seg_name.npy", np.array(["seg_a"] * 25 + ["seg_b"] * 15))
    np.save(trumans / "frame_id.npy", np.concatenate([np.arange(25), np.arange(15)]))
    out = tmp_path / "mix.npz"
    ds, report = prepare_dataset([("amass", tmp_path / "amass"), ("trumans", trumans)], out, body,
                                 replace(FAST, mirror=False))  # fmt: skip
    names = list(ds.clip_name)
    assert sorted(names) == ["CMU/01/a_smplh", "CMU/01/b_smplx", "seg_a", "seg_b"]
    assert len(report["skipped"]) == 1 and "shape.npz" in report["skipped"][0]["file"]
    assert report["frame_rates"] == {"60": 1, "120": 1, "30": 2}
    k = names.index("CMU/01/a_smplh")
    assert ds.clip_length[k] == 12  # 24 frames at 60 fps -> 23/60 s -> 12 frames at 30 fps
    for name in names:  # hands present for AMASS (SMPL-H and SMPL-X) and TRUMANS
        sl = ds.clip_slice(names.index(name))
        assert ds.valid[sl][:, FINGER_JOINTS].all() and not ds.valid[sl][:, JOINT_INDEX["jaw"]].any()
    # TRUMANS hands are stored as given (already relative to the hands mean).
    seg_a = ds.poses[ds.clip_slice(names.index("seg_a"))]
    np.testing.assert_allclose(seg_a[:, 75:120], np.load(trumans / "left_hand_pose.npy")[:25], atol=1e-6)
    # Upright bodies in a Z-up world: head above pelvis, floor at z=0.
    head, pelvis = ds.joints[:, JOINT_INDEX["head"], 2], ds.joints[:, 0, 2]
    assert (head > pelvis + 0.3).all() and abs(ds.joints[:, [7, 10, 8, 11], 2].min()) < 0.15
    # AMASS SMPL-H hands (absolute) become relative to the hands mean.
    raw = np.load(amass / "a_smplh.npz")["poses"]
    got = ds.poses[ds.clip_slice(k)][0, 75:120] + body.hands_mean["left"].reshape(-1)
    np.testing.assert_allclose(got, raw[0, 66:111], atol=1e-5)


def test_dataset_validation_errors(body, tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, poses=np.zeros((3, 165)))
    with pytest.raises(InputError, match="missing fields"):
        load_dataset(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable"):
        load_dataset(tmp_path / "junk.npz")
    with pytest.raises(InputError, match="not found"):
        load_dataset(tmp_path / "nope.npz")


def test_cli_report_and_export_bvh(body, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hosig.motion.data.dataset import ClipData, from_clips
    from hosig.motion.data.smplx_motion import body_joints

    t = 8
    poses = np.zeros((t, 165))
    poses[:, 0] = np.pi / 2
    trans = np.zeros((t, 3))
    joints = body_joints(body, poses, trans)
    clip = ClipData("c", "walk", poses, trans, joints, np.ones((t, 4), np.uint8), np.ones(NUM_JOINTS, bool),
                    fit_error_mean=0.005, fit_error_max=0.01, source_skating=1.0)  # fmt: skip
    path = save_dataset(tmp_path / "d.npz", from_clips([clip], body.identity, "cmu"))
    assert main(["data", "report", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["clips"] == 1 and rep["fit_error_cm"]["mean"] == pytest.approx(0.5)
    assert rep["foot_skating_cm_s"]["source"] == pytest.approx(1.0)
    clip_path = tmp_path / "clip.npz"
    np.savez(clip_path, poses=poses, trans=trans, mocap_frame_rate=np.array(30.0))
    assert main(["data", "export-bvh", str(clip_path), str(tmp_path / "c.bvh"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == t
    assert (tmp_path / "c.bvh").read_text().startswith("HIERARCHY\nROOT pelvis")
    assert main(["data", "report", str(tmp_path / "missing.npz")]) == 1
    assert "not found" in capsys.readouterr().err


def test_cli_prepare_limit_no_mirror(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "cmu"
    folder.mkdir()
    cmu_like_bvh(folder / "05_01.bvh", frames=40)
    cmu_like_bvh(folder / "05_02.bvh", frames=40)
    out = tmp_path / "d.npz"
    argv = ["data", "prepare", "--cmu", str(folder), "--out", str(out), "--limit", "1", "--no-mirror",
            "--iterations", "5", "--no-progress", "--json"]  # fmt: skip
    assert main(argv) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["clips"] == 1 and not rep["mirrored"] and rep["categories"] == {"cmu": {"clips": 1, "frames": 9, "minutes": 0.01}}
    assert (tmp_path / "d.cache").is_dir()
    assert main(["data", "prepare", "--out", str(out)]) == 2  # no source folder: usage error
    assert "give at least one of" in capsys.readouterr().err
