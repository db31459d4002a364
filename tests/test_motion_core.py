"""Motion stage core: representation round trip, anchors, training determinism, checkpoints."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hosig.errors import CheckpointError, InputError, UsageError
from hosig.motion.anchors import AnchorSet
from hosig.motion.checkpoint import MotionModel
from hosig.motion.representation import CanonFrame, decode, encode_window, to_world

from motion_toy import tiny_model_dir, write_toy_dataset


@pytest.fixture(scope="module")
def body():
    from hosig.body import load_body_model

    return load_body_model()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, body):
    return tiny_model_dir(tmp_path_factory.mktemp("motion_tiny"), body)


def _rotmats(aa: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix()


def test_encode_decode_round_trip_is_exact():
    rng = np.random.default_rng(3)
    t = 40
    poses = rng.normal(size=(t, 165)) * 0.6
    poses[:, 66:75] = 0.0  # jaw and eyes are not modelled
    pelvis = rng.normal(size=(t, 3)) * 2
    contacts = rng.integers(0, 2, size=(t, 4)).astype(np.float32)
    feats, frame = encode_window(poses, pelvis, contacts)
    assert feats.shape == (t, 319)
    # canonical frame: first pelvis at the origin (xy), first heading 0
    assert np.allclose(feats[0, :2].numpy(), 0.0, atol=1e-6)
    dec = decode(feats.double())
    from hosig.motion.representation import heading_of

    assert abs(float(heading_of(dec.rotmats[0, 0]))) < 1e-5
    poses2, pelvis2 = to_world(dec, frame)
    # float32 features: the last bits differ between processes (CPU kernel paths), ~4e-4 at worst
    # on a rotation matrix entry (0.02 deg); a wrong axis or sign is off by far more
    assert np.abs(_rotmats(poses2) - _rotmats(poses)).max() < 2e-3
    assert np.abs(pelvis2 - pelvis).max() < 1e-5
    assert np.array_equal(dec.contacts.numpy().astype(np.float32), contacts)


def test_anchor_window_is_in_canonical_frame_and_validates():
    a = AnchorSet(50)
    a.add(10, "pelvis", [3.0, 4.0, np.nan], hard=True)
    a.add(12, "right_wrist", [3.5, 4.0, 1.0])
    frame = CanonFrame(3.0, 2.0, np.pi / 2)
    w = a.window(5, 20, frame)
    # (3,4) is 2 m ahead of (3,2) along +Y (the heading) -> canonical (2, 0)
    assert np.allclose(w.feat_val[5, 0:2].numpy(), [2.0, 0.0], atol=1e-6)
    assert w.hard_mask[5, 0:2].all() and not w.hard_mask[5, 2]
    assert w.joint_mask[7].sum() == 3
    with pytest.raises(UsageError):
        a.add(3, "no_such_joint", [0, 0, 0])
    with pytest.raises(UsageError):
        a.add(3, "right_hand_pose", np.zeros(10))
    bad = AnchorSet(10, [])
    bad.add(12, "pelvis", [0, 0, 0])
    with pytest.raises(UsageError):
        bad.validate()


def test_training_is_deterministic_and_resumable(tmp_path, body):
    from hosig.motion.model import DenoiserConfig
    from hosig.motion.train import TrainConfig, train

    data = write_toy_dataset(tmp_path / "toy.npz", body, n_clips=4, frames=64)
    arch = DenoiserConfig(window=32, d_model=32, layers=1, heads=2, ff=64)

    def run(out, steps, resume=False):
        cfg = TrainConfig(steps=steps, batch=4, ckpt_every=3, warmup=2, seed=5, denoiser=arch, stats_windows=64, val_windows=8)
        return train(data, tmp_path / out, cfg, resume=resume, progress=False)

    run("a", 6)
    run("b", 6)
    run("c", 3)
    run("c", 6, resume=True)
    from safetensors.torch import load_file

    wa, wb, wc = (load_file(str(tmp_path / d / "model.safetensors")) for d in "abc")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert all(torch.allclose(wa[k], wc[k], atol=1e-6) for k in wa)
    meta = json.loads((tmp_path / "a" / "model.json").read_text())
    assert meta["train"]["step"] == 6 and meta["data_report"]["frames"] == 4 * 64
    assert meta["body_identity"] == body.identity


def test_checkpoint_round_trip_and_bad_checkpoints(tiny, tmp_path):
    m = MotionModel.load(tiny)
    x = torch.randn(1, m.window, 319)
    t = torch.tensor([500])
    zeros = torch.zeros_like(x)
    j = torch.zeros(1, m.window, 18)
    from hosig.motion.checkpoint import save_checkpoint

    out = save_checkpoint(tmp_path / "copy" / "model.safetensors", m.net, m.stats, m.body_identity, {}, {})
    m2 = MotionModel.load(out)
    with torch.no_grad():
        assert torch.equal(m.net(x, t, zeros, zeros, j, j), m2.net(x, t, zeros, zeros, j, j))
    assert torch.equal(m.stats.mean, m2.stats.mean)

    with pytest.raises(CheckpointError, match="does not exist"):
        MotionModel.load(tmp_path / "missing")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        MotionModel.load(corrupt)
    mismatch = tmp_path / "mismatch"
    shutil.copytree(tiny, mismatch)
    doc = json.loads((mismatch / "model.json").read_text())
    doc["denoiser"]["layers"] += 1
    (mismatch / "model.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="does not match"):
        MotionModel.load(mismatch)
    badjson = tmp_path / "badjson"
    shutil.copytree(tiny, badjson)
    (badjson / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        MotionModel.load(badjson)
    with pytest.raises(CheckpointError, match="trained for body"):
        m.check_body("sha256:someone-else")


def test_dataset_errors_name_the_file(tmp_path):
    from hosig.motion.train import load_dataset

    with pytest.raises(InputError, match="does not exist"):
        load_dataset(tmp_path / "nope.npz", 32)
    np.savez(tmp_path / "partial.npz", poses=np.zeros((3, 165)))
    with pytest.raises(InputError, match="lacks fields"):
        load_dataset(tmp_path / "partial.npz", 32)


def test_fine_tuning_starts_from_the_given_model_and_keeps_its_settings(tiny, tmp_path, body):
    """`hosig train --init`: the run starts at the base weights, keeps its normalisation and sampler,
    and the trajectory-weighted loss trains; a base model for another body is refused."""
    from dataclasses import replace as dc_replace

    from hosig.errors import CheckpointError
    from hosig.motion.train import TrainConfig, train

    base = MotionModel.load(tiny)
    base.sampler = dc_replace(base.sampler, steps=7, guidance_iters=3)
    data = write_toy_dataset(tmp_path / "toy.npz", body, n_clips=4, frames=96)
    cfg = TrainConfig(steps=2, batch=4, ckpt_every=2, warmup=1, lr=1e-5, trajectory_weight=5.0, stats_windows=64,
                      val_windows=8, denoiser=base.config)
    train(data, tmp_path / "ft", cfg, progress=False, init=base)
    tuned = MotionModel.load(tmp_path / "ft")
    assert torch.equal(tuned.stats.mean, base.stats.mean)  # the base normalisation, not the new data's
    assert tuned.sampler.steps == 7 and tuned.sampler.guidance_iters == 3
    assert json.loads((tmp_path / "ft" / "model.json").read_text())["train"]["init"] == str(base.source)
    drift = max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(tuned.net.parameters(), base.net.parameters()))
    assert 0 < drift < 0.01  # two tiny steps away from the base, not a fresh network
    base.body_identity = "someone-else"
    with pytest.raises(CheckpointError, match="trained for body"):
        train(data, tmp_path / "ft2", cfg, progress=False, init=base)


def test_every_optional_model_in_models_loads_for_the_shipped_body(body):
    """README points animators at `--model models/<name>`: each must load (no pickle) and sample a frame."""
    from pathlib import Path

    folders = sorted(p for p in (Path(__file__).resolve().parents[1] / "models").iterdir() if (p / "model.json").is_file())
    assert folders, "models/ holds no checkpoint"
    for folder in folders:
        m = MotionModel.load(folder)
        m.check_body(body.identity)
        x = torch.randn(1, m.window, 319)
        z = torch.zeros_like(x)
        with torch.no_grad():
            out = m.net(x, torch.tensor([999]), z, z, torch.zeros(1, m.window, 18), torch.zeros(1, m.window, 18))
        assert torch.isfinite(out).all(), folder.name


def test_a_pelvis_turned_over_is_penalised_and_a_stoop_is_not():
    """The heading term can be lowered by pitching the trunk through the vertical (its horizontal
    forward flips); the upright term bars that way (bodies folded at sharp turns), not a stoop."""
    from types import SimpleNamespace

    from hosig.frames import heading_to_orient
    from hosig.motion.guidance import Energy

    target = np.array([np.cos(2.0), np.sin(2.0)])  # a heading 115 deg from where the body faces
    me = SimpleNamespace(anchors=SimpleNamespace(headings=[(0, target, 1.0)]))

    def energies(orient: np.ndarray) -> tuple[float, float]:
        rot = torch.eye(3).repeat(1, 55, 1, 1)
        rot[0, 0] = torch.as_tensor(orient, dtype=torch.float32)
        return float(Energy.heading_energy(me, rot)), float(Energy.upright_energy(me, rot))

    upright = heading_to_orient(0.0)
    about_side = lambda a: Rotation.from_rotvec([0.0, a, 0.0]).as_matrix()  # noqa: E731 - pitch about the body's side (world y)
    assert energies(heading_to_orient(2.0)) == pytest.approx((0.0, 0.0), abs=1e-5)
    assert energies(upright)[1] == 0.0
    assert energies(about_side(0.8) @ upright)[1] == 0.0  # a stoop of 45 deg
    heading, tilt = energies(about_side(np.pi) @ upright)  # turned over: the heading term gains...
    assert heading < energies(upright)[0]
    assert tilt > 2.0  # ...and the upright term pays far more


def test_a_jump_at_a_window_seam_is_eased_out_and_a_key_is_kept():
    """An arm solved afresh at a window's first new frame continues the streamed frames' motion;
    the correction fades out, and a hard key (a grasp pose) is left exactly as it is."""
    from hosig.motion.synth import SEAM_EASE_FRAMES, SEAM_JOINTS, ease_seam

    w, c = 40, 8
    shoulder = SEAM_JOINTS.index(17)  # left_shoulder
    angle = np.r_[np.linspace(0.0, 0.07, c), 0.35 + np.linspace(0.08, 0.4, w - c)]  # a 0.34 rad jump at frame c
    rot = torch.eye(3).repeat(w, 55, 1, 1)
    rot[:, 17] = torch.as_tensor(Rotation.from_rotvec(np.outer(angle, [0.0, 0.0, 1.0])).as_matrix(), dtype=torch.float32)
    held = np.zeros((w, len(SEAM_JOINTS)), bool)
    eased = ease_seam(rot, c, held)
    turned = Rotation.from_matrix(eased[:, 17].numpy().astype(np.float64)).as_rotvec()[:, 2]
    steps = np.diff(turned)
    assert abs(steps[c - 1] - steps[c - 2]) < 0.02  # frame c continues the context's pace
    assert np.allclose(turned[c + SEAM_EASE_FRAMES:], angle[c + SEAM_EASE_FRAMES:], atol=1e-5)  # beyond: untouched
    held[c + 2, shoulder] = True
    kept = ease_seam(rot, c, held)
    assert torch.allclose(kept[c + 2, 17], rot[c + 2, 17], atol=1e-6)
