"""The post-sampling correction keeps the body out of furniture (skin points against the scene SDF)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from hosig.frames import YUP_TO_ZUP
from hosig.motion.refine import RefineConfig, SceneTerm, refine
from hosig.motion.representation import CanonFrame, aa_to_matrix, matrix_to_aa, skeleton_fk
from hosig.motion.skin import skin_points, world_points

from slabs import Slab


@pytest.fixture(scope="module")
def body():
    from hosig.body import load_body_model

    return load_body_model()


def _payload(boxes: dict[str, tuple[list[float], list[float]]]) -> dict:
    import trimesh

    enc = lambda a, t: base64.b64encode(np.ascontiguousarray(a, dtype=t).tobytes()).decode()  # noqa: E731
    objects = []
    for name, (extents, centre) in boxes.items():
        m = trimesh.creation.box(extents=extents)
        m.apply_translation(centre)
        objects.append({"name": name, "vertices": enc(m.vertices, "<f4"), "faces": enc(m.faces, "<i4")})
    return {"format": "hosig-mesh/1", "objects": objects}


def _standing(body, frames: int, arm_down: float = 1.2) -> tuple[torch.Tensor, torch.Tensor]:
    """(W,55,3,3) rotations (hands relative to their mean) and (W,3) pelvis of a body standing at
    the origin facing +y, arms lowered by ``arm_down`` rad from the T-pose."""
    aa = torch.zeros(frames, 55, 3)
    aa[:, 16, 2] = -arm_down  # left shoulder
    aa[:, 17, 2] = arm_down  # right shoulder
    rot = aa_to_matrix(aa)
    rot[:, 0] = torch.as_tensor(YUP_TO_ZUP, dtype=torch.float32)
    pelvis_height = float(body.rest_joints_y[0, 1] - body.floor_y)
    pel = torch.tensor([0.0, 0.0, pelvis_height]).expand(frames, 3).clone()
    return rot, pel


def _skin_world(body, rot: torch.Tensor, pel: torch.Tensor) -> np.ndarray:
    w = rot.shape[0]
    aa = torch.as_tensor(matrix_to_aa(rot.numpy().astype(np.float64)).reshape(w, 165), dtype=torch.float32)
    glob, pos = skeleton_fk(body).transforms(body.full_pose_rotmats(aa), pel, 55)
    return world_points(skin_points(body), glob, pos).numpy()


def test_skin_points_sit_on_the_posed_mesh(body):
    """The sparse skin is the mesh itself (linear blend skinning), hands sampled densely."""
    rot, pel = _standing(body, 3)
    torch.manual_seed(0)
    rot[:, 1:22] = rot[:, 1:22] @ aa_to_matrix(0.3 * torch.randn(3, 21, 3))
    aa = matrix_to_aa(rot.numpy().astype(np.float64)).reshape(3, 165)
    skin = skin_points(body)
    pts = _skin_world(body, rot, pel)
    with torch.no_grad():
        out = body.forward(global_orient=aa[:, :3], transl=np.zeros((3, 3)), body_pose=aa[:, 3:66],
                           left_hand_pose=aa[:, 75:120], right_hand_pose=aa[:, 120:165])
    verts = out.vertices.numpy() - out.joints.numpy()[:, :1] + pel.numpy()[:, None]
    assert np.abs(pts - verts[:, skin.vertex]).max() < 0.005
    assert skin.on_hands.sum() >= 200  # fingers are what touches furniture
    rest_y = np.asarray(body.v_template_y)[:, 1]
    soles = np.flatnonzero(rest_y < rest_y.min() + 0.015)
    assert np.isin(soles, skin.vertex).all()  # every sole vertex: a toe dips between sparser samples


def test_refine_lifts_a_hand_out_of_a_table_top(body):
    """A hand grazing 1 cm into a table top is bent out of it with a small, local correction;
    frames before `fixed` (already streamed) stay exactly as they were."""
    from hosig.scene import load_scene

    w = 12
    rot, pel = _standing(body, w, arm_down=0.6)  # hands well away from the hips
    skin = skin_points(body)
    hand = _skin_world(body, rot, pel)[0][skin.main_carrier == 21]
    top = float(hand[:, 2].min()) + 0.01
    scene = load_scene(_payload({
        "table_top": ([0.3, 0.3, 0.04], [float(hand[:, 0].mean()), float(hand[:, 1].mean()), top - 0.02]),
        "floor": ([4.0, 4.0, 0.02], [0.0, 0.0, -0.01]),
    }))
    sdf = scene.sdf()
    term = SceneTerm(sdf, CanonFrame(0.0, 0.0, 0.0), floor_z=0.0)

    def depth(r: torch.Tensor) -> np.ndarray:
        d = sdf.query_np(_skin_world(body, r, pel).reshape(-1, 3)).reshape(w, -1)
        return np.clip(-d, 0, None).max(1)  # (W,) deepest point per frame

    assert (depth(rot) > 0.004).all()
    out, _ = refine(body, rot, pel, None, [], np.zeros(4), fixed=2, cfg=RefineConfig(), lock_feet=False, scene=term)
    assert torch.equal(out[:2], rot[:2])  # streamed frames are final
    assert depth(out)[2:].max() < 0.002
    moved = np.linalg.norm(_skin_world(body, out, pel) - _skin_world(body, rot, pel), axis=-1).max(0)  # (P,)
    assert moved[skin.main_carrier == 21].max() < 0.08  # lifted, not thrown
    assert moved[np.isin(skin.main_carrier, (20, 7, 8, 10, 11))].max() < 0.02, moved[np.isin(skin.main_carrier, (20, 7, 8, 10, 11))].max()  # free hand, feet stay


def test_refine_without_scene_leaves_a_clean_pose_alone(body):
    rot, pel = _standing(body, 6)
    out, _ = refine(body, rot, pel, None, [], np.zeros(4), lock_feet=False)
    assert torch.allclose(out, rot)


def _mesh_z(body, rot: torch.Tensor, pel: torch.Tensor) -> np.ndarray:
    """(W,V) world z of every mesh vertex of the posed body."""
    w = rot.shape[0]
    aa = matrix_to_aa(rot.numpy().astype(np.float64)).reshape(w, 165)
    with torch.no_grad():
        out = body.forward(global_orient=aa[:, :3], transl=np.zeros((w, 3)), body_pose=aa[:, 3:66],
                           left_hand_pose=aa[:, 75:120], right_hand_pose=aa[:, 120:165])
    verts = out.vertices.numpy() - out.joints.numpy()[:, :1] + pel.numpy()[:, None]
    return verts[..., 2]


def test_refine_lifts_a_dipped_toe_out_of_the_floor_everywhere(body):
    """A toe bent down through the floor (toe-off) comes out at every mesh vertex, not only at
    the sampled ones: the eval counts a frame with any vertex 1 mm under the floor."""
    from hosig.scene import load_scene

    w = 6
    rot, pel = _standing(body, w)
    toe_vertices = body.smplx.lbs_weights.detach().numpy().argmax(1) == 10  # left toes
    pel[:, 2] -= float(_mesh_z(body, rot[:1], pel[:1])[0].min())  # soles exactly on z = 0
    for angle in np.linspace(0.05, 1.0, 20):  # bend the toes down until they are 4 mm under
        bent = rot.clone()
        bent[:, 10] = rot[:, 10] @ aa_to_matrix(torch.tensor([[float(angle), 0.0, 0.0]])).expand(w, 3, 3)
        if _mesh_z(body, bent[:1], pel[:1])[0, toe_vertices].min() < -0.004:
            break
    else:
        pytest.fail("could not bend the toes into the floor")
    scene = load_scene(_payload({"floor": ([4.0, 4.0, 0.02], [0.0, 0.0, -0.01])}))
    term = SceneTerm(scene.sdf(), CanonFrame(0.0, 0.0, 0.0), floor_z=0.0)
    out, _ = refine(body, bent, pel, None, [], np.zeros(4), lock_feet=False, scene=term)
    z = _mesh_z(body, out, pel)
    assert z.min() > -0.001, z.min()
    right_foot = np.isin(body.smplx.lbs_weights.detach().numpy().argmax(1), (8, 11))
    assert np.abs(z[:, right_foot] - _mesh_z(body, bent, pel)[:, right_foot]).max() < 0.005  # the other foot stays


def test_refine_lifts_a_sunken_body_instead_of_bending_it(body):
    """Soles all 2 mm under the floor: with the pelvis height free the body rises a few
    millimetres and keeps its pose (with the pelvis fixed it could only bend out)."""
    from hosig.scene import load_scene

    w = 6
    rot, pel = _standing(body, w)
    pel[:, 2] -= float(_mesh_z(body, rot[:1], pel[:1])[0].min()) + 0.002  # every sole 2 mm down
    scene = load_scene(_payload({"floor": ([4.0, 4.0, 0.02], [0.0, 0.0, -0.01])}))
    term = SceneTerm(scene.sdf(), CanonFrame(0.0, 0.0, 0.0), floor_z=0.0)
    out_rot, out_pel = refine(body, rot, pel, None, [], np.zeros(4), lock_feet=False, scene=term,
                                     height_free=torch.ones(w, dtype=torch.bool))
    assert _mesh_z(body, out_rot, out_pel).min() > -0.001
    rise = (out_pel[:, 2] - pel[:, 2]).numpy()
    assert (rise > 0.001).all() and (rise < 0.01).all()
    assert torch.allclose(out_pel[:, :2], pel[:, :2])  # the path is the path
    assert (out_rot - rot).abs().max() < 0.05  # lifted, not bent


def test_refine_reaches_with_planted_legs_locked_and_never_starts_for_held_feet(body):
    """As synthesis calls it: planted legs come locked, so the body bends to reach while the feet
    stay exactly put (the correction must never re-open the skating the planter closed); held
    (swinging) feet alone never start the solver."""
    from hosig.motion.refine import REFINE_JOINTS
    from hosig.motion.representation import FOOT_CONTACT_JOINTS

    w = 20
    rot, pel = _standing(body, w)
    fk = skeleton_fk(body)
    with torch.no_grad():
        joints = fk(rot, pel, 22)
    feet = joints[:, FOOT_CONTACT_JOINTS].numpy()
    target = joints[10, 21].numpy() + np.array([0.0, 0.25, -0.25])  # forward and down: the trunk must lean
    locked = torch.zeros(w, len(REFINE_JOINTS), dtype=torch.bool)
    locked[:, [REFINE_JOINTS.index(j) for j in (1, 2, 4, 5, 7, 8, 10, 11)]] = True
    out, out_pel = refine(body, rot, pel, None, [(10, 21, target, 1.0)], np.zeros(4), lock_feet=False, locked=locked)
    with torch.no_grad():
        after = fk(out, out_pel, 22)
    assert np.linalg.norm(after[10, 21].numpy() - target) < 0.015
    assert np.abs(after[:, FOOT_CONTACT_JOINTS].numpy() - feet).max() < 1e-5
    same, _ = refine(body, rot, pel, None, [], np.zeros(4), lock_feet=False, held_feet=(feet, np.ones((w, 4))))
    assert torch.equal(same, rot)


def test_refine_moves_a_limb_out_of_furniture_smoothly_in_time(body):
    """A body bobbing 6 cm every other frame dips its hand 4 cm into a table top on alternate frames:
    the correction lifts the hand out on every frame it must, and the correction itself changes
    smoothly from frame to frame (a per-frame fix made arms jump up to 15 m/s before grasps)."""
    from hosig.scene import load_scene

    w = 16
    rot, pel = _standing(body, w, arm_down=0.6)
    skin = skin_points(body)
    on_hand = skin.main_carrier == 21
    hand = _skin_world(body, rot, pel)[0][on_hand]
    top = float(hand[:, 2].min()) + 0.04
    pel = pel.clone()
    pel[0::2, 2] += 0.06  # even frames clear of the table, odd frames 4 cm in
    scene = load_scene(_payload({
        "table_top": ([0.3, 0.3, 0.04], [float(hand[:, 0].mean()), float(hand[:, 1].mean()), top - 0.02]),
        "floor": ([4.0, 4.0, 0.02], [0.0, 0.0, -0.01]),
    }))
    sdf = scene.sdf()
    out, _ = refine(body, rot, pel, None, [], np.zeros(4), fixed=2, cfg=RefineConfig(), lock_feet=False,
                    scene=SceneTerm(sdf, CanonFrame(0.0, 0.0, 0.0), floor_z=0.0))
    depth = np.clip(-sdf.query_np(_skin_world(body, out, pel).reshape(-1, 3)).reshape(w, -1), 0, None).max(1)
    assert depth[2:].max() < 0.004, f"{depth[2:].max() * 1000:.1f} mm inside"
    correction = (_skin_world(body, out, pel) - _skin_world(body, rot, pel))[:, on_hand].mean(1)  # (W,3)
    jerk = np.linalg.norm(correction[2:] - 2 * correction[1:-1] + correction[:-2], axis=-1)
    free = jerk[2:]  # frames t, t+1, t+2 all after the streamed ones
    assert free.max() < 0.01, f"the correction jumps {free.max() * 100:.1f} cm/frame² between frames"


def test_a_hand_deep_in_a_thin_wall_leaves_it_on_the_body_s_side():
    """Its nearest face is the far one (the next room): the way out is the near face instead."""
    from hosig.motion.walls import ways_out

    wall = Slab(0, 1.0, 1.1)  # a 10 cm wall; the body stands at x < 1
    points = np.array([[1.08, 0.0, 1.0],   # past the wall's middle: nearest face the far one
                       [1.02, 0.0, 1.0],   # near face nearest: the plain distance already leads out right
                       [0.90, 0.0, 1.0]])  # outside
    pelvis = np.zeros((3, 3))
    pelvis[:, 2] = 1.0
    exit_point, normal = ways_out(wall, points, pelvis, wall.query_np(points) < 0)
    assert normal[0] == pytest.approx([-1.0, 0.0, 0.0]) and exit_point[0, 0] == pytest.approx(1.0, abs=0.011)
    assert not normal[1:].any() and not exit_point[1:].any()


def test_a_knee_under_a_table_top_is_not_guarded_as_a_wall():
    from hosig.motion.walls import ways_out

    top = Slab(2, 0.70, 0.74)  # a table top
    points = np.array([[0.3, 0.0, 0.735]])  # in the top, nearest face the upper one, the pelvis beside and below
    exit_point, normal = ways_out(top, points, np.array([[0.0, 0.0, 0.5]]), np.array([True]))
    assert not normal.any()


def test_refine_brings_a_hand_in_a_thin_wall_back_to_the_body_s_side(body):
    """A hand that swung past the middle of a 10 cm wall is brought back out on the body's side:
    the nearest face is the far one, and following it pushed hands through walls into the next room."""
    from hosig.scene import load_scene

    w = 8
    rot, pel = _standing(body, w, arm_down=0.6)
    skin = skin_points(body)
    hand = _skin_world(body, rot, pel)[0][skin.main_carrier == 21]
    side = float(np.sign(hand[:, 0].mean()))  # the right hand's side of the body along x
    inner = float(np.abs(hand[:, 0]).min())  # the hand's point nearest the body's midline
    near_face = inner - 0.06  # the wall spans [near_face, near_face + 0.1] outwards: the hand past its middle
    scene = load_scene(_payload({
        "wall": ([0.1, 3.0, 2.5], [side * (near_face + 0.05), 0.0, 1.25]),
        "floor": ([4.0, 4.0, 0.02], [0.0, 0.0, -0.01]),
    }))
    term = SceneTerm(scene.sdf(), CanonFrame(0.0, 0.0, 0.0), floor_z=0.0)
    out, _ = refine(body, rot, pel, None, [], np.zeros(4), fixed=0, cfg=RefineConfig(), lock_feet=False, scene=term)
    after = np.abs(_skin_world(body, out, pel)[:, skin.main_carrier == 21, 0])  # (W,P) distance out from the midline
    assert after.max() < near_face + 0.01, f"hand {after.max() - near_face:.3f} m past the wall's near face"


def test_skin_a_correction_moves_into_furniture_away_from_where_it_started_is_kept_out(body):
    """The scene is cropped around the skin near it at the start (the soles on the floor); a hand
    pulled 4 cm into a cabinet 12 cm beside it — far outside that crop — is still found and kept
    out: the cabinet wins over the wrist target (before, the hand went 7 cm in)."""
    from hosig.scene import load_scene

    w = 6
    rot, pel = _standing(body, w)
    skin = skin_points(body)
    with torch.no_grad():
        wrist = skeleton_fk(body)(rot, pel, 22)[0, 21].numpy()
    hand = _skin_world(body, rot, pel)[0][skin.main_carrier == 21]
    side = float(np.sign(wrist[0]))
    face = float(np.abs(hand[:, 0]).max()) + 0.12  # the cabinet's face, 12 cm beyond the hand
    scene = load_scene(_payload({
        "cabinet": ([0.5, 1.0, 1.2], [side * (face + 0.25), 0.0, 0.6]),
        "floor": ([4.0, 4.0, 0.02], [0.0, 0.0, -0.01]),
    }))
    target = wrist.copy()
    target[0] = side * (face + 0.04 + (abs(wrist[0]) - float(np.abs(hand[:, 0]).max())))  # hand skin 4 cm in
    targets = [(f, 21, target, 1.0) for f in range(w)]
    term = SceneTerm(scene.sdf(), CanonFrame(0.0, 0.0, 0.0), floor_z=0.0)
    out, out_pel = refine(body, rot, pel, None, targets, np.zeros(4), fixed=0, cfg=RefineConfig(), lock_feet=False,
                          scene=term)
    after = _skin_world(body, out, out_pel)[:, skin.main_carrier == 21]  # (W,P,3)
    depth = float(np.abs(after[..., 0]).max()) - face
    assert depth < 0.012, f"hand {depth * 100:.1f} cm inside the cabinet"
    with torch.no_grad():
        reached = skeleton_fk(body)(out, out_pel, 22)[:, 21].numpy()
    assert (np.abs(reached[:, 0]) > abs(wrist[0]) + 0.08).all()  # the hand did go out to the cabinet
