"""Motion synthesis behaviour: inpainting, guidance, seams, long clips, task timeline, errors, CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hosig.errors import CancelledError, HosigError, UnreachableError
from hosig.motion.anchors import AnchorSet
from hosig.motion.checkpoint import MotionModel
from hosig.motion.synth import MotionChunk

from motion_toy import tiny_model_dir


@pytest.fixture(scope="module")
def body():
    from hosig.body import load_body_model

    return load_body_model()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, body):
    return tiny_model_dir(tmp_path_factory.mktemp("motion_tiny"), body)


@pytest.fixture()
def model(tiny_dir):
    return MotionModel.load(tiny_dir)


def walk_anchors(n: int, speed: float = 1.2, every: int = 8, wobble: float = 0.3) -> tuple[AnchorSet, np.ndarray]:
    a = AnchorSet(n)
    frames = np.arange(0, n, every)
    xy = np.stack([frames / 30 * speed, wobble * np.sin(frames / 40)], 1)
    for f, p in zip(frames, xy):
        a.add(int(f), "pelvis", [p[0], p[1], np.nan])
    return a, np.concatenate([frames[:, None], xy], 1)


def pelvis_error(clip, targets: np.ndarray) -> float:
    f = targets[:, 0].astype(int)
    return float(np.linalg.norm(clip.joints[f, 0, :2] - targets[:, 1:], axis=1).mean())


def test_hard_anchors_are_met_exactly(model, body):
    a, _ = walk_anchors(90)
    a.add(40, "pelvis", [1.7, 0.1, 0.88], hard=True)
    a.add(40, "pose:left_knee", [0.6, 0.0, 0.0], hard=True)
    hand = np.linspace(-0.3, 0.3, 45)
    a.add(70, "right_hand_pose", hand, hard=True)
    clip = model.synthesize(a, body, seed=1)
    assert clip.n_frames == 90
    assert np.allclose(clip.joints[40, 0], [1.7, 0.1, 0.88], atol=1e-4)
    assert np.allclose(clip.poses[40, 12:15], [0.6, 0.0, 0.0], atol=1e-4)  # left_knee = joint 4
    assert np.allclose(clip.poses[70, 120:165], hand, atol=1e-4)
    assert np.isfinite(clip.poses).all() and np.isfinite(clip.joints).all()


def test_guidance_lowers_pelvis_and_wrist_error(model, body):
    model.sampler.guidance_iters = 4  # the tiny test model barely knows motion: guidance does the work
    a, targets = walk_anchors(64)
    wrist = np.array([2.45, -0.25, 1.0])
    a.add(60, "right_wrist", wrist)
    plain = model.synthesize(a, body, seed=2, guidance=False, refine_pass=False)
    guided = model.synthesize(a, body, seed=2, guidance=True, refine_pass=False)
    assert pelvis_error(guided, targets) < 0.7 * pelvis_error(plain, targets)
    e_plain = np.linalg.norm(plain.joints[60, 21] - wrist)
    e_guided = np.linalg.norm(guided.joints[60, 21] - wrist)
    assert e_guided < 0.7 * e_plain
    # the analytic correction (arm IK, feet locked, pelvis kept) then brings the wrist closer still
    # (not all the way: the tiny model's walk lurches faster than a person, and the last despike
    # eases the upper body's soft-targeted frames there)
    full = model.synthesize(a, body, seed=2)
    e_full = np.linalg.norm(full.joints[60, 21] - wrist)
    assert e_full < 0.5 * e_guided, (e_full, e_guided)


def test_window_seams_are_continuous_and_streamed(model, body):
    n = 200
    a, _ = walk_anchors(n)
    chunks: list[MotionChunk] = []
    clip = model.synthesize(a, body, seed=3, on_window=chunks.append)
    # chunks tile the clip in order and equal it
    starts = [c.start for c in chunks]
    assert starts[0] == 0 and all(c.start + c.count == d.start for c, d in zip(chunks, chunks[1:]))
    assert chunks[-1].start + chunks[-1].count == n and len(chunks) >= 3
    assert np.allclose(np.concatenate([c.poses for c in chunks]), clip.poses, atol=1e-5)
    # no velocity spike where one window hands over to the next
    vel = np.linalg.norm(np.diff(clip.joints[:, :22], axis=0), axis=-1).mean(-1)  # (T-1,) mean joint speed
    seams = [s for s in starts[1:]]
    seam_jump = max(vel[max(0, s - 2): s + 2].max() for s in seams)
    interior = np.percentile(vel, 95)
    assert seam_jump < 2.0 * interior + 1e-3


def test_forty_second_path_is_one_continuous_clip(model, body):
    n = 40 * 30
    a, targets = walk_anchors(n, speed=1.0, every=10, wobble=1.0)
    chunks = []
    clip = model.synthesize(a, body, seed=4, steps=4, refine_pass=False, on_window=chunks.append)
    assert clip.n_frames == n and sum(c.count for c in chunks) == n
    assert np.isfinite(clip.joints).all()
    speed = np.linalg.norm(np.diff(clip.joints[:, 0], axis=0), axis=-1) * 30
    seams = [c.start for c in chunks[1:]]
    assert len(seams) >= 20
    # no jump where windows meet, anywhere along 40 m: seam speeds look like the rest of the clip
    assert max(speed[s - 2: s + 2].max() for s in seams) < 2.0 * np.percentile(speed, 95) + 1e-3
    assert pelvis_error(clip, targets) < 0.3
    assert abs(clip.joints[-1, 0, 0] - targets[-1, 1]) < 1.5


def test_unreachable_anchor_and_cancel_and_nan_guard(tiny_dir, body):
    model = MotionModel.load(tiny_dir)
    a, targets = walk_anchors(60)
    end = targets[-1, 1:]
    a.add(59, "right_wrist", [end[0] + 3.0, end[1], 1.0])
    with pytest.raises(UnreachableError, match="right_wrist"):
        model.synthesize(a, body)
    b, _ = walk_anchors(200)
    with pytest.raises(CancelledError):
        calls = []
        model.synthesize(b, body, on_window=calls.append, cancel=lambda: len(calls) >= 1)
    with torch.no_grad():
        model.net.out.weight.fill_(float("nan"))
    c, _ = walk_anchors(40)
    with pytest.raises(HosigError, match="NaN"):
        model.synthesize(c, body)


def _fake_grasp(body, stand):
    """A standing pose with the right arm reaching forward, at the stand point."""
    from scipy.spatial.transform import Rotation

    from hosig.frames import heading_to_orient
    from hosig.motion.representation import aa_to_matrix

    go = Rotation.from_matrix(heading_to_orient(stand[2])).as_rotvec()
    body_pose = np.zeros(63)
    body_pose[16 * 3 - 3 + 2] = 0.2  # right shoulder (joint 17) roll
    body_pose[17 * 3 - 3 + 1] = 0.0
    pelvis = np.array([stand[0], stand[1], 0.95])
    full = np.zeros(165)
    full[:3] = go
    full[3:66] = body_pose
    with torch.no_grad():
        joints = body.fk(body.full_pose_rotmats(torch.as_tensor(full[None], dtype=torch.float32)),
                         torch.as_tensor(pelvis[None], dtype=torch.float32))[0].numpy()
    del aa_to_matrix
    return SimpleNamespace(hand="right", global_orient=go, body_pose=body_pose, left_hand_pose=np.zeros(45),
                           right_hand_pose=np.full(45, 0.3), joints=joints, wrist=joints[21], target="cup")


def _plan(start, stand, duration):
    times = np.linspace(0, duration, 6)
    way = np.linspace(start[:2], stand[:2], 6)
    return SimpleNamespace(start=np.asarray(start, float), stand=np.asarray(stand, float), waypoints=way, times=times,
                           target_point=np.array([stand[0] + 0.5, stand[1], 0.9]), target="cup")


def test_pick_place_task_timeline_and_object_transforms(model, body):
    from hosig.motion.task import LIFT_FRAMES, attach_object, build_task

    leg1 = _plan([0, 0, 0], [1.5, 0, 0], 1.5)
    leg2 = _plan([1.5, 0, 0], [1.5, 1.5, np.pi / 2], 1.5)
    grasp = _fake_grasp(body, leg1.stand)
    task = build_task("pick-place", [leg1, leg2], grasp, place_point=[1.5, 2.0, 0.8], body=body,
                      object_base=np.array([2.0, 0.0, 0.85]))
    assert 0 < task.grasp_frame < task.place_frame < task.release_frame < task.n_frames
    assert task.attached == (task.grasp_frame, task.release_frame)
    clip = model.synthesize(task.anchors, body, seed=5, steps=4, grasp_frame=task.grasp_frame,
                            release_frame=task.release_frame, touch_spans=task.touch_spans, path=task.path)
    # the grasp pose is hard: the wrist is on the grasp's wrist
    assert np.linalg.norm(clip.joints[task.grasp_frame, 21] - grasp.wrist) < 0.03
    # the lift keeps the hips over the ground the grasp stage checked (none pressed into the counter)
    lift = clip.joints[task.grasp_frame: task.grasp_frame + LIFT_FRAMES + 1, 0, :2]
    assert np.abs(lift - np.asarray(grasp.joints)[0, :2]).max() < 0.01
    attach_object(clip, task, body, "cup")
    tr = clip.object_transforms
    assert np.allclose(tr[: task.grasp_frame + 1], np.eye(4), atol=1e-5)
    moved = tr[task.release_frame - 1, :3, 3]
    assert np.linalg.norm(moved) > 0.3  # carried towards the place
    assert np.allclose(tr[task.release_frame:], tr[task.release_frame - 1], atol=1e-6)
    path = clip.save(task and (__import__("pathlib").Path(model.source).parent / "pp.npz"))
    from hosig.clip import MotionClip

    back = MotionClip.load(path)
    assert back.grasp_frame == task.grasp_frame and back.object_name == "cup"


def test_task_turns_the_body_round_before_a_grasp_facing_back(body):
    """A stand point facing back the way the body walked: the timeline gives it time and heading
    anchors to turn (not a 180 degree spin at the grasp frame); the grasp pose pins the trunk and
    the grasping arm, while legs and the free arm stay the sampler's (no foot snapping to the grasp
    stage's stance)."""
    from hosig.motion.task import build_task

    ahead = build_task("pick", [_plan([0, 0, 0], [1.5, 0, 0], 1.5)], _fake_grasp(body, [1.5, 0, 0]), body=body)
    leg = _plan([0, 0, 0], [1.5, 0, np.pi], 1.5)
    task = build_task("pick", [leg], _fake_grasp(body, leg.stand), body=body)
    assert task.grasp_frame >= ahead.grasp_frame + 15  # about half a second more to turn round
    heads = sorted((a.frame, float(a.value[0])) for a in task.anchors.anchors if a.target == "heading")
    before = [h for f, h in heads if f <= task.grasp_frame]
    steps = [abs((b - a + np.pi) % (2 * np.pi) - np.pi) for a, b in zip(before[:-1], before[1:])]
    assert max(steps) < np.radians(45)  # a gradual turn
    assert np.cos(before[0]) > 0.99 and np.cos(before[-1]) < -0.99  # from walking +x to facing -x
    at = {a.target: a.hard for a in task.anchors.anchors if a.frame == task.grasp_frame and a.target.startswith("pose:")}
    assert at["pose:spine3"] and at["pose:right_shoulder"] and at["pose:right_elbow"]
    assert not at["pose:left_knee"] and not at["pose:right_ankle"] and not at["pose:left_shoulder"]


def test_pick_place_turns_round_before_carrying_back_the_way_it_came(body):
    """The place lies behind the body that picked: it turns on the spot, gradually, before the carry
    sets off (walked backwards, then asked for a half turn at once, the sampler flipped the body)."""
    from hosig.motion.task import build_task

    leg1 = _plan([0, 0, 0], [1.5, 0, 0], 1.5)
    leg2 = _plan([1.5, 0, 0], [0.0, 0.2, np.pi], 1.5)
    task = build_task("pick-place", [leg1, leg2], _fake_grasp(body, leg1.stand), place_point=[-0.5, 0.2, 0.8],
                      body=body, object_base=np.array([2.0, 0.0, 0.85]))
    heads = sorted((a.frame, float(a.value[0])) for a in task.anchors.anchors
                   if a.target == "heading" and task.grasp_frame <= a.frame < task.place_frame)
    steps = [abs((b - a + np.pi) % (2 * np.pi) - np.pi) for (_, a), (_, b) in zip(heads[:-1], heads[1:])]
    assert max(steps) < np.radians(45), f"heading jumps {np.degrees(max(steps)):.0f} degrees"
    assert np.cos(heads[0][1]) > 0.99 and np.cos(heads[-1][1]) < -0.95  # from facing +x to walking -x
    # the pelvis stays at the pick until the turn is done
    turned = next(f for f, h in heads if np.cos(h) < -0.9)
    pel = [a for a in task.anchors.anchors if a.target == "pelvis" and task.grasp_frame <= a.frame <= turned]
    assert all(abs(a.value[0] - 1.5) < 0.05 for a in pel)


def test_a_carried_object_touches_the_scene_only_at_the_grasp_and_the_place(body):
    """The carrying arm keeps out of the furniture on the walk between: only the frames around the
    grasp and around the place are touch spans (where its joints may come to a table's surface)."""
    from hosig.motion.task import build_task

    leg1 = _plan([0, 0, 0], [1.5, 0, 0], 1.5)
    leg2 = _plan([1.5, 0, 0], [4.0, 0.0, 0.0], 2.5)
    task = build_task("pick-place", [leg1, leg2], _fake_grasp(body, leg1.stand), place_point=[4.5, 0.0, 0.8],
                      body=body, object_base=np.array([2.0, 0.0, 0.85]))
    (a0, b0), (a1, b1) = task.touch_spans
    assert a0 < task.grasp_frame < b0 <= a1 < task.place_frame < b1 <= task.n_frames
    walking = [a.frame for a in task.anchors.anchors if a.target == "pelvis" and b0 <= a.frame < task.place_frame]
    assert a1 - b0 > 30 and any(b0 <= f < a1 for f in walking)  # the carry walk lies between the spans


def test_cli_motion_synth(tiny_dir, tmp_path, capsys):
    from hosig.cli.main import main

    plan = {"start": [0, 0, 0], "stand": [1.2, 0, 0], "waypoints": [[0, 0], [0.6, 0], [1.2, 0]],
            "times": [0, 0.6, 1.2], "target_point": [1.7, 0, 0.9], "target": "cup"}
    (tmp_path / "path.json").write_text(json.dumps(plan))
    code = main(["motion", "synth", "--path", str(tmp_path / "path.json"), "--model", str(tiny_dir),
                 "--out", str(tmp_path / "clip.npz"), "--json", "--seed", "1"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip())
    assert report["frames"] > 36 and (tmp_path / "clip.npz").is_file()
    assert "pelvis_path_error_cm" in report["metrics"]
    code = main(["motion", "synth", "--path", str(tmp_path / "nope.json"), "--model", str(tiny_dir),
                 "--out", str(tmp_path / "x.npz")])
    assert code == 1


def test_default_model_loads_and_samples_on_cpu(body):
    from hosig.motion.checkpoint import resolve_paths

    weights, config = resolve_paths(None)
    assert weights.is_file() and config.is_file(), "the default motion model must be committed in assets/motion"
    assert weights.stat().st_size <= 50 * 1024 * 1024
    model = MotionModel.load()
    a, _ = walk_anchors(45)
    clip = model.synthesize(a, body, seed=0, steps=4)
    assert clip.n_frames == 45 and np.isfinite(clip.joints).all()


def test_scene_guidance_lowers_penetration(model, body, tmp_path):
    import base64

    import trimesh

    from hosig.scene import load_scene

    box = trimesh.creation.box(extents=[1.6, 0.6, 1.0])
    box.apply_translation([1.6, 0.33, 0.5])  # a counter whose edge is 3 cm from the walking line
    floor = trimesh.creation.box(extents=[6, 4, 0.02])
    floor.apply_translation([1.5, 0, -0.01])
    enc = lambda a, t: base64.b64encode(np.ascontiguousarray(a, dtype=t).tobytes()).decode()  # noqa: E731
    payload = {"format": "hosig-mesh/1", "objects": [
        {"name": n, "vertices": enc(m.vertices, "<f4"), "faces": enc(m.faces, "<i4")} for n, m in (("counter", box), ("floor", floor))
    ]}
    scene = load_scene(payload)
    sdf = scene.sdf()
    a, _ = walk_anchors(90, wobble=0.0)

    def penetration(clip) -> float:
        pts = torch.as_tensor(clip.joints[:, :22].reshape(-1, 3))
        with torch.no_grad():
            d = sdf.query(pts).numpy()
        return float(np.clip(0.06 - d, 0, None).sum())

    plain = model.synthesize(a, body, seed=6, steps=4, refine_pass=False)
    guided = model.synthesize(a, body, scene_sdf=sdf, seed=6, steps=4, refine_pass=False)
    assert penetration(plain) > 0.0
    assert penetration(guided) < 0.8 * penetration(plain)


def test_planted_feet_stay_still_in_a_synthesized_walk(body):
    """End to end with the shipped model, through windows, refine and seams: while a foot is
    planted (contacts) its ball joint does not move; with planting off, the same walk glides."""
    model = MotionModel.load()
    a, _ = walk_anchors(150)
    clip = model.synthesize(a, body, seed=3)
    balls = clip.joints[:, [10, 11]]  # (T,2,3) left/right ball of the foot
    steps = 0
    for side in range(2):
        down = clip.contacts[:, 2 * side + 1] > 0.5
        both = down[1:] & down[:-1]
        slide = np.linalg.norm(np.diff(balls[:, side, :2], axis=0), axis=-1)[both]
        assert slide.max() < 0.002, f"planted foot moved {slide.max() * 100:.2f} cm in a frame"
        steps += int((down[1:] & ~down[:-1]).sum())
    assert steps >= 4  # 5 s of walking: it steps
    glide = model.synthesize(a, body, seed=3, plant_feet=False)  # same seed, same network
    moved = np.linalg.norm(np.diff(glide.joints[:, [10, 11], :2], axis=0), axis=-1)
    assert moved.mean() > 5 * np.linalg.norm(np.diff(balls[:, :, :2], axis=0), axis=-1)[
        (clip.contacts[1:, [1, 3]] > 0.5) & (clip.contacts[:-1, [1, 3]] > 0.5)].mean()


def test_a_walk_on_a_raised_or_lowered_floor_is_the_same_walk(body):
    """The network stands on the floor wherever it is: the same request on a floor at +0.5 m or
    -1 m gives the same motion relative to the floor (before, a raised floor read as a body 0.5 m too
    tall and the walk leapt into the air)."""
    model = MotionModel.load()
    a, _ = walk_anchors(75)
    clips = {}
    for floor in (0.0, 0.5, -1.0):
        shifted = AnchorSet(a.n_frames)
        for anchor in a.anchors:
            shifted.add(anchor.frame, anchor.target, anchor.value + np.array([0.0, 0.0, floor]), hard=anchor.hard)
        clips[floor] = model.synthesize(shifted, body, seed=0, steps=4, floor_z=floor)
    base = clips[0.0].joints
    assert 0.7 < float(np.median(base[:, 0, 2])) < 1.0  # a walking pelvis, floor at 0
    for floor in (0.5, -1.0):
        lifted = clips[floor].joints - np.array([0.0, 0.0, floor])
        np.testing.assert_allclose(lifted, base, atol=2e-3)


def test_a_hard_run_is_eased_into_its_free_neighbours():
    """A channel anchored from the window's start (a walk's path) up to frame 52, then free and
    10 cm away: the gap is spread over the following frames, never one frame's jump; a channel
    hard only in the context is left to the blend."""
    from hosig.motion.synth import HARD_EASE_FRAMES, ease_into_hard

    w, d = 64, 3
    x0 = torch.zeros(1, w, d)
    x0[0, 52:, 1] = -0.1
    x0[0, :, 2] = 0.5
    hard = torch.zeros(1, w, d, dtype=torch.bool)
    hard[0, :52, 1] = True
    hard[0, :8, :] = True  # the context: every channel
    out = ease_into_hard(x0, torch.zeros(1, w, d), hard)[0]
    steps = (out[1:, 1] - out[:-1, 1]).abs()
    assert steps.max() <= 0.1 / (HARD_EASE_FRAMES + 1) + 1e-6, f"a {steps.max() * 100:.1f} cm step"
    assert torch.allclose(out[52 + HARD_EASE_FRAMES:, 1], torch.tensor(-0.1))  # the free motion beyond
    assert torch.allclose(out[8:, 2], torch.tensor(0.5))  # only hard in the context: untouched


def test_a_walk_follows_its_timed_path_on_every_frame(body):
    """The task anchors the pelvis on every frame of a walk (hard): a body cannot fall behind
    its path and sprint to catch it up at the next window."""
    from hosig.motion.task import _walk

    plan = SimpleNamespace(times=np.array([0.0, 2.0, 4.0]), waypoints=np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]]))
    anchors = AnchorSet(200)
    end = _walk(anchors, plan, 10)
    pelvis = sorted((a for a in anchors.anchors if a.target == "pelvis"), key=lambda a: a.frame)
    assert [a.frame for a in pelvis] == list(range(10, end + 1)) and all(a.hard for a in pelvis)
    xy = np.stack([a.value[:2] for a in pelvis])
    assert np.linalg.norm(np.diff(xy, axis=0), axis=1).max() <= 1.0 / 30 + 1e-9  # the plan's pace, 1 m/s


def test_a_target_on_a_lowered_floor_is_within_reach_of_a_body_standing_on_it():
    """A cup on a floor 1.26 m below z = 0, the body standing beside it: reachable there; the
    same cup seen from a floor at z = 0 (1.26 m under the feet) is not."""
    from hosig.motion.synth import check_reach

    floor = -1.26
    anchors = AnchorSet(60)
    anchors.add(50, "pelvis", [0.0, 0.0, np.nan])
    anchors.add(50, "right_wrist", [0.3, 0.1, floor + 0.08])
    check_reach(anchors, floor)
    with pytest.raises(UnreachableError):
        check_reach(anchors, 0.0)


def test_a_walking_body_never_crouches_even_where_the_network_does(model, body, monkeypatch):
    """A network that samples a deep crouch (pelvis 0.45 m) on every frame: while the pelvis
    follows a walking path it stays at a walking height; standing still after the walk, it may go
    down (a body bends to a low shelf), reached smoothly over the fade."""
    import hosig.motion.synth as synth

    model.sampler.guidance_iters = 2  # the bounds act with guidance, as in the shipped model
    real = synth._denoiser

    def crouching(model, cond):
        denoise = real(model, cond)
        low = (0.45 - float(model.stats.mean[2])) / float(model.stats.std[2])

        def wants_to_crouch(x, t):
            out = denoise(x, t).clone()
            out[..., 2] = low
            return out

        return wants_to_crouch

    monkeypatch.setattr(synth, "_denoiser", crouching)
    a = AnchorSet(90)
    for f in range(60):  # a navigation path: hard on every frame
        a.add(f, "pelvis", [f / 30 * 1.2, 0.0, np.nan], hard=True)
    for f in range(60, 90, 4):  # then standing where it arrived
        a.add(f, "pelvis", [59 / 30 * 1.2, 0.0, np.nan])
    clip = model.synthesize(a, body, seed=2)
    z = clip.joints[:, 0, 2]
    walking_low = synth.WALK_PELVIS_FRACTION * body.standing_pelvis_height
    assert z[:60].min() >= walking_low - 1e-3
    assert z[85:].max() < 0.5  # standing still, the (crouching) network has its way
    assert np.abs(np.diff(z)).max() < 0.05  # ... without a jump


def test_walking_frames_and_their_floor_fade():
    from hosig.motion.synth import walking_floor, walking_frames

    xy = np.zeros((40, 2))
    xy[:20, 0] = np.arange(20) * 0.04  # 1.2 m/s, then standing still
    xy[20:, 0] = xy[19, 0]
    hard = np.ones((40, 2), dtype=bool)
    walk = walking_frames(hard, xy)
    assert walk[:20].all() and not walk[20:].any()
    assert not walking_frames(np.zeros((40, 2), dtype=bool), xy).any()  # a free (soft) path is not a walk
    floor = walking_floor(walk, 0.8, fade=9)
    assert np.allclose(floor[:20], 0.8) and np.allclose(floor[30:], 0.0)
    assert np.all(np.diff(floor[19:30]) < 0)  # fades out after the walk
