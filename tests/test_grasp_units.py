"""Grasp building blocks: light kinematics vs the body model, hand frame, object SDF, candidates, prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from hosig.body import load_body_model
from hosig.errors import InfeasibleError, UnreachableError
from hosig.grasp import generator
from hosig.grasp.candidates import PALM_HALF_WIDTH, generate_candidates
from hosig.grasp.config import GraspConfig
from hosig.grasp.hand import build_hand, curl_to_hand_pose, mean_flexion
from hosig.grasp.kin import LiteBody, forward_kinematics, local_rotations, skin
from hosig.grasp.objsdf import ObjectSDF
from hosig.grasp.prior import load_prior
from hosig.grasp import testscenes


@pytest.fixture(scope="module")
def body():
    return load_body_model()


@pytest.fixture(scope="module")
def lite(body):
    return LiteBody.from_body(body)


def test_lite_kinematics_matches_body_model(body, lite):
    g = torch.Generator().manual_seed(0)
    go = torch.randn(2, 3, generator=g) * 0.4
    tr = torch.randn(2, 3, generator=g) * 0.3
    bp = torch.randn(2, 63, generator=g) * 0.3
    lh = torch.randn(2, 45, generator=g) * 0.3
    rh = torch.randn(2, 45, generator=g) * 0.3
    out = body.forward(global_orient=go, transl=tr, body_pose=bp, left_hand_pose=lh, right_hand_pose=rh)
    g_rot, g_pos = forward_kinematics(lite, local_rotations(lite, go, bp, lh, rh), tr)
    assert torch.allclose(g_pos, out.joints, atol=1e-4)
    idx = torch.arange(0, out.vertices.shape[1], 7)
    # No pose blend shapes in the light skinning: millimetres at most on the mannequin.
    assert (skin(lite, g_rot, g_pos, idx) - out.vertices[:, idx]).abs().max() < 5e-3


@pytest.mark.parametrize("side", ["left", "right"])
def test_hand_frame_is_orthonormal_and_palm_faces_down_in_t_pose(lite, side):
    h = build_hand(lite, side)
    frame = np.stack([h.fwd, h.thumb, h.palm])
    assert np.allclose(frame @ frame.T, np.eye(3), atol=1e-6)
    assert h.palm[1] < -0.8  # SMPL-X T-pose: palms face down (-Y in the model frame)
    assert h.fwd[0] * (1 if side == "left" else -1) > 0.9  # fingers point away from the body
    assert len(h.palm_verts) >= 5 and all(len(t) >= 3 for t in h.tip_verts)


def test_curl_closes_fingers_toward_the_palm(lite):
    h = build_hand(lite, "right")
    mean = lite.right_hand_mean.numpy()
    open_pose = curl_to_hand_pose(h, np.zeros((1, 5)), 0.0, mean)[0]
    closed = curl_to_hand_pose(h, np.full((1, 5), 1.2), 0.9, mean)[0]
    assert abs(mean_flexion(h, open_pose, mean)) < 1e-6
    assert mean_flexion(h, closed, mean) > 1.0
    # The closed index fingertip moves to the palm side (along the palm normal).
    zero = torch.zeros(1, 3)
    tips = []
    for pose in (open_pose, closed):
        rot = local_rotations(lite, zero, torch.zeros(1, 63), torch.zeros(1, 45), torch.tensor(pose[None], dtype=torch.float32))
        _, pos = forward_kinematics(lite, rot, zero)
        tips.append(pos[0, h.fingers[0][2]].numpy())
    assert (tips[1] - tips[0]) @ h.palm > 0.03


def test_object_sdf_signs_and_accuracy():
    mesh = trimesh.creation.cylinder(radius=0.04, height=0.2, sections=48)
    sdf = ObjectSDF(mesh)
    pts = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.045, 0.05], [0.0, 0.0, 0.13], [0.3, 0.0, 0.0]])
    d = sdf.query_np(pts)
    assert d[0] < -0.03 and d[1] > 0 and d[3] > 0
    assert abs(d[1] - 0.01) < 2e-3 and abs(d[2] - 0.005) < 2e-3 and abs(d[3] - 0.03) < 3e-3
    assert d[4] == pytest.approx(sdf.far)
    p = torch.tensor(pts[1:2], requires_grad=True)
    sdf.query(p).sum().backward()
    assert p.grad[0, 0] > 0.9  # gradient is the outward normal


def test_candidates_side_grasp_for_bottle_and_top_for_floor_box():
    cfg = GraspConfig()
    case = testscenes.bottle_on_table()
    cands = generate_candidates(case.scene, case.target, case.stand, "right", cfg)
    assert cands and all(c.kind == "side" for c in cands)
    assert all(c.span <= cfg.max_width for c in cands)
    case = testscenes.box_on_floor()
    cands = generate_candidates(case.scene, case.target, case.stand, "right", cfg)
    assert any(c.kind == "top" for c in cands)
    # a side grip of a low box keeps the palm's lower edge off the floor
    assert all(c.point[2] - PALM_HALF_WIDTH >= cfg.approach_clearance for c in cands if c.kind == "side")


def test_candidates_avoid_the_wall_side():
    case = testscenes.bottle_beside_wall()
    cands = generate_candidates(case.scene, case.target, case.stand, "right", GraspConfig())
    wall_x = case.scene.object("wall").bounds[0, 0]
    for c in cands:  # the palm is never between the bottle and the wall
        assert c.point[0] < wall_x - 0.05
        assert c.approach[0] > -0.5


def test_candidates_reject_big_and_far_objects():
    case = testscenes.bottle_on_table()
    big = testscenes._scene({"crate": testscenes._box([0.3, -0.3, 0.0], [0.9, 0.3, 0.5])})
    with pytest.raises(InfeasibleError, match="too big for a hand"):
        generate_candidates(big, "crate", (0.0, 0.0, 0.0), "right", GraspConfig())
    with pytest.raises(UnreachableError, match="out of reach"):
        generate_candidates(case.scene, case.target, (-2.0, -2.0, 0.0), "right", GraspConfig())


def test_hollow_mug_on_a_counter_is_held_round_its_body_or_on_its_rim():
    """A palm from above rests on the rim, never down in the cavity; side grips keep the palm's
    lower edge off the counter."""
    cfg = GraspConfig()
    case = testscenes.open_mug_on_counter()
    lo, hi = case.scene.object("mug").bounds
    cands = generate_candidates(case.scene, "mug", case.stand, "right", cfg)
    assert cands
    for c in cands:
        if c.kind == "side":
            assert c.point[2] - PALM_HALF_WIDTH >= lo[2] + cfg.approach_clearance
        else:
            assert c.point[2] == pytest.approx(hi[2], abs=1e-6)


def test_a_mug_under_a_low_board_is_held_round_its_upper_body():
    """With every ordinary grip blocked (a board 4 cm over the mug bars the hand from above, the
    counter the palm of a grip across its middle), the side grip is raised clear of the counter."""
    cfg = GraspConfig()
    case = testscenes.open_mug_on_counter()
    objects = {n: (o.vertices, o.faces) for n, o in case.scene.objects.items()}
    board = testscenes._box([0.95, -0.3, 1.04], [1.5, 0.4, 1.06])
    objects["board"] = (board.vertices, board.faces)
    from hosig.scene import SceneConfig, encode_payload, load_scene

    scene = load_scene(encode_payload(objects), SceneConfig(disk_cache=False))
    lo, hi = scene.object("mug").bounds
    cands = generate_candidates(scene, "mug", case.stand, "right", cfg)
    assert cands and {c.kind for c in cands} == {"side"}
    assert all(c.point[2] - PALM_HALF_WIDTH >= lo[2] + cfg.approach_clearance for c in cands)


def test_a_bowl_is_held_by_its_rim_and_a_phone_from_above():
    """A bowl wider than a hand gets rim grips spanning its wall; a phone lying flat on a table is
    taken from above (its open hand may come close to the table), never refused."""
    cfg = GraspConfig()
    stand = (0.0, -0.72, np.pi / 2)
    bowl = testscenes._scene({"table": testscenes._table(0.0, 0.0), "bowl": testscenes.open_vessel(0.05, -0.2, 0.75, 0.085, 0.065)})
    cands = generate_candidates(bowl, "bowl", stand, "right", cfg)
    assert cands and {c.kind for c in cands} == {"rim"}
    assert all(c.span <= cfg.max_width and c.point[2] == pytest.approx(0.815, abs=1e-6) for c in cands)
    phone = testscenes._scene({"table": testscenes._table(0.0, 0.0), "phone": testscenes._box([0.0, -0.3, 0.75], [0.07, -0.15, 0.758])})
    cands = generate_candidates(phone, "phone", stand, "right", cfg)
    assert cands and {c.kind for c in cands} == {"top"}


def test_auto_hand_takes_the_other_hand_when_the_first_is_blocked(monkeypatch):
    case = testscenes.bottle_on_table()
    real = generator.generate_candidates

    def right_blocked(scene, target, stand, side, config, sdf=None):
        if side == "right":
            raise InfeasibleError(f"object {target!r}: no free approach direction for the right hand (3 blocked)")
        return real(scene, target, stand, side, config, sdf=sdf)

    monkeypatch.setattr(generator, "generate_candidates", right_blocked)
    centre = case.scene.object(case.target).center
    auto = generator._hand_order("auto", case.stand, centre)
    found = generator._candidates_by_side(case.scene, case.target, case.stand, auto, GraspConfig(), None)
    assert [side for side, _ in found] == ["left"] and found[0][1]
    with pytest.raises(InfeasibleError, match="right hand"):
        generator._candidates_by_side(case.scene, case.target, case.stand, ["right"], GraspConfig(), None)

    def both_blocked(scene, target, stand, side, config, sdf=None):
        raise InfeasibleError(f"object {target!r}: no free approach direction for the {side} hand (2 blocked)")

    monkeypatch.setattr(generator, "generate_candidates", both_blocked)
    with pytest.raises(InfeasibleError, match="right hand.*left hand"):
        generator._candidates_by_side(case.scene, case.target, case.stand, ["right", "left"], GraspConfig(), None)


def test_auto_hand_takes_the_other_hand_when_the_first_ends_short_of_the_object(monkeypatch):
    """A hand whose best pose stays 5 cm off the object is not a grasp: with 'auto' the other hand
    is optimised too and the one that reaches wins; a hand named by the request is never swapped."""
    case = testscenes.bottle_on_table()
    real = generator._grasp_with
    tried: list[str] = []

    def right_falls_short(ctx, side, cands):
        tried.append(side)
        result = real(ctx, side, cands)
        if side == "right":
            result.contact_distance_m = 0.05
        return result

    monkeypatch.setattr(generator, "_grasp_with", right_falls_short)
    stand = (case.stand[0], case.stand[1], case.stand[2])
    result = generator.generate_grasp(case.scene, case.target, stand, load_body_model(), hand="auto")
    assert tried == ["right", "left"]
    assert result.hand == "left" and result.contact_distance_m <= GraspConfig().max_contact_distance
    tried.clear()
    with pytest.raises(InfeasibleError, match="right hand"):  # a named hand is never swapped
        generator.generate_grasp(case.scene, case.target, stand, load_body_model(), hand="right")
    assert tried == ["right"]


def test_pose_prior_loads_and_prefers_its_mean():
    prior = load_prior()
    mean = prior.mean[None]
    odd = mean + torch.randn(1, 63, generator=torch.Generator().manual_seed(1)) * 0.8
    assert prior.energy(mean).item() < 1e-6 < prior.energy(odd).item()
    assert prior.limit_violation(mean).item() == 0.0
    assert prior.note["source"]["kind"] in ("cmu-bvh", "hosig-dataset")


def test_no_hand_reaching_the_object_is_a_clear_refusal_not_a_grasp_in_the_air(monkeypatch):
    """When every hand's best pose ends 8 cm off the object there is no grasp from this stand
    point: InfeasibleError naming the object, the hands tried and the distance."""
    case = testscenes.bottle_on_table()
    real = generator._grasp_with

    def short_of_it(ctx, side, cands):
        result = real(ctx, side, cands)
        result.contact_distance_m = 0.08
        return result

    monkeypatch.setattr(generator, "_grasp_with", short_of_it)
    stand = (case.stand[0], case.stand[1], case.stand[2])
    with pytest.raises(InfeasibleError, match=r"no grasp reaches it.*right and left hands.*0\.080 m"):
        generator.generate_grasp(case.scene, case.target, stand, load_body_model(), hand="auto")
