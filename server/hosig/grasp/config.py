"""Grasp settings in one dataclass (weights, sizes, iteration counts)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GraspConfig:
    """Knobs of candidate generation and the two optimisation phases.

    Distances in metres, angles in radians. Weights are relative; the defaults were tuned on the
    test scenes (bottle on a table, cup by a wall, box on the floor, book on a high shelf).
    """

    # Candidates
    max_width: float = 0.10  # widest graspable span across thumb and fingers
    max_candidates: int = 7  # optimised together as one batch
    finger_candidates: int = 8  # best phase-1 candidates whose fingers are closed
    side_azimuths: int = 12
    approach_clearance: float = 0.02  # scene distance required around the open hand and forearm
    finger_clearance: float = 0.008
    max_reach_height: float = 2.05  # above the floor, for the grasp point
    max_reach_distance: float = 0.95  # horizontal, stand point to grasp point
    # A grasp point lower than this above the floor starts from a squat (hips, knees, ankles and
    # trunk bent by these angles, rad): from straight legs the optimiser only stoops, and a
    # straight-legged stoop to the floor folds the trunk and throws the arms.
    crouch_below: float = 0.4
    crouch_hip: float = 1.4
    crouch_knee: float = 1.9
    crouch_lean: float = 0.35
    # Phase 1 (body)
    iters: int = 100
    lr: float = 0.04
    palm_gap: float = 0.004  # palm centre target offset from the surface
    w_palm: float = 400.0
    w_palm_abs: float = 20.0
    palm_slack: float = 0.02  # the palm may slide this far from the candidate point
    w_palm_contact: float = 3000.0
    w_palm_normal: float = 3.0
    w_palm_dir: float = 1.0
    w_fwd_dir: float = 2.0
    w_obj_pen: float = 2000.0
    w_scene_pen: float = 800.0
    scene_margin: float = 0.012
    # Hips and knees keep more room: the motion that leads into and out of the grasp bends them
    # further than the grasp pose does (a crouch at a coffee table put a knee 2 cm into its top).
    leg_margin: float = 0.04
    # A finished grasp deeper than this in the furniture (exact, on the meshes), or whose hand ends
    # farther than `max_contact_distance` from the object, gives way to the next-ranked candidate;
    # up to `finalise_tries` are measured (each ~50 ms).
    max_scene_penetration: float = 0.006
    max_contact_distance: float = 0.015
    finalise_tries: int = 4
    # ... and when even the best pose of every hand tried ends farther than this from the object,
    # there is no grasp from this stand point: refused (a hand closing on air 8-11 cm off a box)
    max_miss_distance: float = 0.03
    w_feet: float = 1000.0
    w_feet_crouch: float = 5000.0  # a squat's soles: weaker, it lifted both feet 6 cm to reach further
    w_stand: float = 80.0
    stand_slack: float = 0.08
    w_heading: float = 0.5
    w_com: float = 60.0
    com_radius: float = 0.07
    w_gaze: float = 0.5
    w_limits: float = 20.0
    w_prior: float = 0.02
    w_free_arm: float = 2.0  # the other arm hangs (world down) near its start pose
    near_scene: float = 0.06  # body vertices this close to the scene are checked every step
    max_near: int = 400
    near_every: int = 20
    w_stance: float = 200.0
    min_stance: float = 0.12  # distance between the feet centres
    max_stance: float = 0.40
    w_floor_pen: float = 2000.0
    # Phase 2 (fingers)
    curl_levels: int = 28
    wrap_share: tuple = (1.0, 0.5, 0.3)  # sweep-1 flexion per joint and unit curl
    wrap_extra: float = 1.4  # extra middle/distal flexion tried after the knuckle stops (rad)
    joint_max: tuple = (1.6, 1.9, 1.4)  # flexion limit per finger joint (proximal, middle, distal)
    w_flat: float = 40.0
    min_flexion: float = 0.7
    w_untouched: float = 10.0  # ranking penalty per finger that closed without touching
    finger_samples: int = 30
    contact_margin: float = 0.002
    thumb_opposition: float = 0.9
    open_curl: float = 0.1
    # Body sample sizes
    n_body_samples: int = 220
    n_hand_samples: int = 160
    seed: int = 0
    extra: dict = field(default_factory=dict)
