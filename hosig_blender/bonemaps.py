"""Bone maps from the SMPL-X armature onto other humanoid rigs (no bpy: names, parents, heads only).

A bone map is ``{smplx joint name: target bone name}``. Named presets cover the rigs animators ship
(Mixamo, the Unreal Engine 4/5 mannequin, Rigify's human metarig and its generated ``DEF-`` deform
bones, Auto-Rig Pro's export names); any other humanoid gets an automatic map from its hierarchy
(hips = where the two legs and the spine meet, arms = the two chains off the upper spine), with
fingers matched by name tokens. Target names are compared without namespace prefixes
(``mixamorig:``, ``mixamorig1:``, ``Armature|``) and case.

Invariant: a map never names a target bone twice, and the core chain (`CORE`) must be complete
for a retarget (`check_map`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

SIDES = ("left", "right")
FINGERS = ("index", "middle", "ring", "pinky", "thumb")
# The joints a humanoid retarget needs: hips, spine to the head, both legs to the ankle, both arms
# to the wrist.
CORE = ("pelvis", "spine1", "spine3", "neck", "head",
        "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle",
        "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist")
# Order matters for presets whose candidates overlap (UE4/UE5 spines): earlier joints pick first.
MAP_ORDER = ("pelvis", "spine3", "spine2", "spine1", "neck", "head",
             *[f"{s}_{j}" for s in SIDES for j in ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist")],
             *[f"{s}_{f}{k}" for s in SIDES for f in FINGERS for k in (1, 2, 3)])


# The joint each joint's bone points at (its limb direction), used to line up rests that differ
# (T-pose vs A-pose): the pelvis and the chain ends have none, nor the feet — a foot keeps its own
# rest attitude to the floor (flat on it), whatever the heel-to-ball slope of either skeleton.
CHILD = {"spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head",
         **{f"{s}_{a}": f"{s}_{b}" for s in SIDES for a, b in (("hip", "knee"), ("knee", "ankle"),
                                                                ("collar", "shoulder"), ("shoulder", "elbow"),
                                                                ("elbow", "wrist"), ("wrist", "middle1"))},
         **{f"{s}_{f}{k}": f"{s}_{f}{k + 1}" for s in SIDES for f in FINGERS for k in (1, 2)}}


def _sided(table: dict[str, list[str]], left: tuple[str, str], right: tuple[str, str]) -> dict[str, list[str]]:
    """Expand ``{joint: [pattern]}`` where ``{S}`` / ``{s}`` is the side token into both sides."""
    out: dict[str, list[str]] = {}
    for joint, pats in table.items():
        if "{" not in "".join(pats):
            out[joint] = pats
            continue
        for side, (big, small) in zip(SIDES, (left, right)):
            out[f"{side}_{joint}"] = [p.replace("{S}", big).replace("{s}", small) for p in pats]
    return out


def _fingers(fmt: str, names: dict[str, str], numbers: tuple = (1, 2, 3)) -> dict[str, list[str]]:
    """Finger joints ``{finger}{k}`` -> ``fmt.format(F=name, k=number)`` with side tokens kept."""
    return {f"{f}{k}": [fmt.format(F=names[f], k=n)] for f in FINGERS for k, n in zip((1, 2, 3), numbers)}


_MIXAMO = _sided({
    "pelvis": ["Hips"], "spine1": ["Spine"], "spine2": ["Spine1"], "spine3": ["Spine2"], "neck": ["Neck"], "head": ["Head"],
    "hip": ["{S}UpLeg"], "knee": ["{S}Leg"], "ankle": ["{S}Foot"], "foot": ["{S}ToeBase"],
    "collar": ["{S}Shoulder"], "shoulder": ["{S}Arm"], "elbow": ["{S}ForeArm"], "wrist": ["{S}Hand"],
    **_fingers("{{S}}Hand{F}{k}", {"index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Pinky", "thumb": "Thumb"}),
}, ("Left", "left"), ("Right", "right"))

_UNREAL = _sided({
    "pelvis": ["pelvis"], "spine3": ["spine_05", "spine_03"], "spine2": ["spine_03", "spine_02"], "spine1": ["spine_01"],
    "neck": ["neck_01"], "head": ["head"],
    "hip": ["thigh_{s}"], "knee": ["calf_{s}"], "ankle": ["foot_{s}"], "foot": ["ball_{s}"],
    "collar": ["clavicle_{s}"], "shoulder": ["upperarm_{s}"], "elbow": ["lowerarm_{s}"], "wrist": ["hand_{s}"],
    **_fingers("{F}_0{k}_{{s}}", {f: f for f in FINGERS}),
}, ("l", "l"), ("r", "r"))

_RIGIFY_META = _sided({
    "pelvis": ["spine"], "spine1": ["spine.001"], "spine2": ["spine.002"], "spine3": ["spine.003"],
    "neck": ["spine.004"], "head": ["spine.006"],
    "hip": ["thigh.{S}"], "knee": ["shin.{S}"], "ankle": ["foot.{S}"], "foot": ["toe.{S}"],
    "collar": ["shoulder.{S}"], "shoulder": ["upper_arm.{S}"], "elbow": ["forearm.{S}"], "wrist": ["hand.{S}"],
    **{f"{f}{k}": [f"{'thumb' if f == 'thumb' else 'f_' + f}.0{k}.{{S}}"] for f in FINGERS for k in (1, 2, 3)},
}, ("L", "L"), ("R", "R"))
# Rigify's generated rig: its DEF- deform bones (what a game export keeps; see `preset_notes`).
_RIGIFY_DEF = {j: ["DEF-" + p for p in pats] for j, pats in _RIGIFY_META.items()}

# Rigify's generated control rig: its ORG- bones (the metarig's bones, which the controls move);
# the solved ORG pose is baked onto the FK controls (`control_bake`), the DEF- bones follow.
RIGIFY_ORG = "ORG-"
_RIGIFY_RIG = {j: [RIGIFY_ORG + p for p in pats] for j, pats in _RIGIFY_META.items()}
# Bones only a generated Rigify control rig has (its torso and FK limb controls).
CONTROL_RIG_MARKERS = ("torso", "thigh_fk.L", "thigh_fk.R", "upper_arm_fk.L", "upper_arm_fk.R")

# Auto-Rig Pro: the names of its game-engine export (deform) skeleton.
_ARP = _sided({
    "pelvis": ["root.x"], "spine1": ["spine_01.x"], "spine2": ["spine_02.x"], "spine3": ["spine_03.x"],
    "neck": ["neck.x"], "head": ["head.x"],
    "hip": ["thigh.{s}", "thigh_stretch.{s}"], "knee": ["leg.{s}", "leg_stretch.{s}"], "ankle": ["foot.{s}"], "foot": ["toes_01.{s}", "toes.{s}"],
    "collar": ["shoulder.{s}"], "shoulder": ["arm.{s}", "arm_stretch.{s}"], "elbow": ["forearm.{s}", "forearm_stretch.{s}"], "wrist": ["hand.{s}"],
    **_fingers("{F}{k}.{{s}}", {f: f for f in FINGERS}),
}, ("l", "l"), ("r", "r"))

PRESETS: dict[str, dict[str, list[str]]] = {
    "mixamo": _MIXAMO, "unreal": _UNREAL, "rigify_metarig": _RIGIFY_META, "rigify_def": _RIGIFY_DEF, "rigify_rig": _RIGIFY_RIG,
    "auto_rig_pro": _ARP,
}
PRESET_NOTES = {
    "rigify_def": "keys Rigify's DEF- deform bones: use on a rig whose DEF- bones are not driven by constraints "
                  "(a deform-only export); a live generated rig's constraints override these keys",
    "rigify_rig": "Rigify's generated control rig: solved on its ORG- bones, keyed on the FK controls (torso, spine_fk, "
                  "thigh_fk.L, upper_arm_fk.L, fingers) with the limbs switched to FK",
    "auto_rig_pro": "Auto-Rig Pro's game-export deform names (root.x, thigh.l, leg.l, ...)",
}


def strip_prefix(name: str) -> str:
    """``mixamorig:Hips`` / ``mixamorig1:Hips`` / ``Armature|Hips`` -> ``Hips`` (namespace dropped)."""
    return re.split(r"[:|]", name)[-1]


def _key(name: str) -> str:
    return strip_prefix(name).lower()


def preset_map(preset: str, bone_names: list[str]) -> dict[str, str]:
    """The preset's map restricted to the bones present (first candidate present wins)."""
    table = PRESETS[preset]
    by_key: dict[str, str] = {}
    for n in bone_names:
        by_key.setdefault(_key(n), n)
    used: set[str] = set()
    out: dict[str, str] = {}
    for joint in MAP_ORDER:
        for cand in table.get(joint, []):
            hit = by_key.get(cand.lower())
            if hit is not None and hit not in used:
                out[joint] = hit
                used.add(hit)
                break
    return out


def detect_preset(bone_names: list[str]) -> tuple[str | None, dict[str, str]]:
    """(preset name, map) of the preset covering the core joints best; (None, {}) when none
    covers most of them (then `auto_map` is the way). A rig that is clearly one of the presets
    (60 % of the core joints) but lacks some of its bones raises `NotHumanoidError` naming them —
    guessing around a missing bone would key the wrong ones."""
    if is_control_rig(bone_names):  # its DEF- and ORG- bones both cover the core: the controls decide
        m = preset_map("rigify_rig", bone_names)
        if all(j in m for j in CORE):
            return "rigify_rig", m
    best: tuple[int, int, str | None, dict[str, str]] = (-1, -1, None, {})
    for name in PRESETS:
        if name == "rigify_rig":  # only with its controls (above)
            continue
        m = preset_map(name, bone_names)
        core = sum(j in m for j in CORE)
        if (core, len(m)) > best[:2]:
            best = (core, len(m), name, m)
    if best[0] == len(CORE):
        return best[2], best[3]
    if best[0] >= 0.6 * len(CORE):
        missing = [f"{PRESETS[best[2]][j][0]} ({j})" for j in CORE if j not in best[3]]
        raise NotHumanoidError(f"it looks like a {best[2]} rig but has no bone {', '.join(missing)}")
    return None, {}


def is_control_rig(bone_names: list[str]) -> bool:
    """True for a generated Rigify rig: its torso and FK limb controls and ORG- bones are there."""
    names = {strip_prefix(n) for n in bone_names}
    return all(m in names for m in CONTROL_RIG_MARKERS) and any(n.startswith(RIGIFY_ORG) for n in names)


@dataclass
class Skeleton:
    """A target rig's bones as the auto map sees them.

    ``heads`` (n,3) rest head positions in world space, Z up; ``parents`` (n,) index or -1.
    """

    names: list[str]
    parents: list[int]
    heads: np.ndarray
    children: list[list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.heads = np.asarray(self.heads, dtype=np.float64).reshape(-1, 3)
        self.children = [[] for _ in self.names]
        for i, p in enumerate(self.parents):
            if p >= 0:
                self.children[p].append(i)

    def path(self, ancestor: int, node: int) -> list[int]:
        """Bones from ``ancestor`` (excluded) down to ``node`` (included); [] if not below it."""
        out = []
        while node >= 0 and node != ancestor:
            out.append(node)
            node = self.parents[node]
        return out[::-1] if node == ancestor else []

    def ancestors(self, i: int) -> list[int]:
        out = []
        while i >= 0:
            out.append(i)
            i = self.parents[i]
        return out

    def leaves_below(self, i: int) -> list[int]:
        stack, out = [i], []
        while stack:
            b = stack.pop()
            if self.children[b]:
                stack.extend(self.children[b])
            else:
                out.append(b)
        return out


class NotHumanoidError(ValueError):
    """The armature has no hips with two legs, a spine and two arms."""


_FINGER_TOKENS = {"thumb": ("thumb",), "index": ("index", "pointer"), "middle": ("middle",), "ring": ("ring",),
                  "pinky": ("pinky", "little", "small")}


def _side_of_name(name: str) -> str | None:
    """'left' / 'right' from the name's tokens (``.L``, ``_l``, ``Left``, ``L_`` ...), else None."""
    n = strip_prefix(name)
    if re.search(r"(^|[^a-z])left|Left", n) or re.search(r"([._\- ]|^)[lL]([._\- \d]|$)", n):
        return "left"
    if re.search(r"(^|[^a-z])right|Right", n) or re.search(r"([._\- ]|^)[rR]([._\- \d]|$)", n):
        return "right"
    return None


def _lca(sk: Skeleton, a: int, b: int) -> int:
    anc = set(sk.ancestors(a))
    while b >= 0 and b not in anc:
        b = sk.parents[b]
    return b


def auto_map(sk: Skeleton) -> dict[str, str]:
    """A map for any humanoid from its hierarchy and rest heads (names only decide sides when they
    carry side tokens, and the fingers). Raises `NotHumanoidError` naming what is missing."""
    n = len(sk.names)
    if n < 10:
        raise NotHumanoidError(f"{n} bones: a humanoid needs hips, a spine, two legs and two arms")
    leaves = [i for i in range(n) if not sk.children[i]]
    z = sk.heads[:, 2]
    height = float(z.max() - z.min())
    if height <= 0:
        raise NotHumanoidError("all bones are at one height")
    # feet: the two lowest leaves on different branches whose common ancestor is above them
    order = sorted(leaves, key=lambda i: z[i])
    feet = None
    for a in order[:6]:
        for b in order[:6]:
            if a < b:
                lca = _lca(sk, a, b)
                if lca >= 0 and z[lca] - max(z[a], z[b]) > 0.3 * height and abs(sk.heads[a, 0] - sk.heads[b, 0]) > 0.03 * height:
                    feet = (a, b)
                    break
        if feet:
            break
    if feet is None:
        raise NotHumanoidError("no two legs reaching down from a common hip bone")
    hips = _lca(sk, *feet)
    legs = [_trim_end(sk, sk.path(hips, f)) for f in feet]
    on_legs = {b for leg in legs for b in sk.leaves_below(leg[0])} if all(legs) else set()
    # arms and head: every other leaf under the hips (an A-pose hand may hang below the chest)
    ups = [i for i in sk.leaves_below(hips) if i not in on_legs and i not in feet]
    if not ups:
        raise NotHumanoidError("no spine above the hips")
    # arms: the two leaves furthest apart sideways (hands); the head: highest leaf near the middle
    xs = sk.heads[:, 0] - sk.heads[hips, 0]
    hands = (max(ups, key=lambda i: xs[i]), min(ups, key=lambda i: xs[i]))
    if xs[hands[0]] - xs[hands[1]] < 0.2 * height:
        raise NotHumanoidError("no two arms reaching out to the sides")
    centred = [i for i in ups if abs(xs[i]) < 0.1 * height and z[i] > z[hips] + 0.25 * height] or ups
    top = max(centred, key=lambda i: z[i])
    chest = _lca(sk, *hands)
    if chest < 0 or chest == hips or chest not in sk.ancestors(top):
        raise NotHumanoidError("the arms do not meet on the spine")
    out: dict[str, str] = {"pelvis": sk.names[hips]}
    spine = sk.path(hips, chest)
    out["spine3"] = sk.names[chest]
    if len(spine) >= 2:
        out["spine1"] = sk.names[spine[0]]
    if len(spine) >= 3:
        out["spine2"] = sk.names[spine[(len(spine) - 1) // 2]]  # the middle bone between spine1 and the chest
    neck_path = sk.path(chest, top)
    if len(neck_path) < 2:
        raise NotHumanoidError("no neck and head above the chest")
    out["neck"] = sk.names[neck_path[0]]
    neck_path = _trim_end(sk, neck_path)
    out["head"] = sk.names[neck_path[-1]] if len(neck_path) >= 2 else sk.names[neck_path[0]]
    # sides: by name tokens when both legs carry them, else by position (+X is the left in Blender)
    sides = _sides(sk, feet, xs)
    for side, foot, leg in zip(sides, feet, legs):
        out.update(_leg_map(sk, side, leg, z))
    for hand in hands:
        arm = sk.path(chest, hand)
        side = _side_of_name(sk.names[arm[0]]) or ("left" if xs[hand] > 0 else "right")
        out.update(_arm_map(sk, side, arm))
    check_unique(out)
    return out


_END = re.compile(r"(end|top|nub|tip|leaf)(\.\d+)?$", re.IGNORECASE)


def _trim_end(sk: Skeleton, chain: list[int]) -> list[int]:
    """A chain without its trailing end-marker leaf (``HeadTop_End``, ``LeftToe_End``, ``*_nub``)."""
    if len(chain) > 1 and not sk.children[chain[-1]] and _END.search(strip_prefix(sk.names[chain[-1]]).replace("_", "")):
        return chain[:-1]
    return chain


def _sides(sk: Skeleton, feet: tuple[int, int], xs: np.ndarray) -> tuple[str, str]:
    named = [_side_of_name(sk.names[f]) for f in feet]
    if set(named) == {"left", "right"}:
        return named[0], named[1]
    return ("left", "right") if xs[feet[0]] > xs[feet[1]] else ("right", "left")


def _leg_map(sk: Skeleton, side: str, leg: list[int], z: np.ndarray) -> dict[str, str]:
    """Thigh, knee, ankle, ball on one leg chain (hips excluded, down to its lowest leaf)."""
    if len(leg) < 3:
        raise NotHumanoidError(f"the {side} leg has {len(leg)} bones; thigh, shin and foot are needed")
    thigh = leg[0]
    top, low = z[thigh], z[leg[-1]]
    # the ankle: the first bone whose head is in the lowest fifth of the leg
    ankle_i = next((k for k in range(1, len(leg)) if z[leg[k]] < low + 0.2 * (top - low)), len(leg) - 1)
    if ankle_i >= len(leg) - 1 and len(leg) >= 4 and z[leg[-1]] < z[leg[-2]] - 1e-4:
        ankle_i = len(leg) - 2
    ankle = leg[ankle_i]
    mid = (sk.heads[thigh] + sk.heads[ankle]) / 2
    between = leg[1:ankle_i] or [leg[1]]
    knee = min(between, key=lambda b: float(np.linalg.norm(sk.heads[b] - mid)))
    out = {f"{side}_hip": sk.names[thigh], f"{side}_knee": sk.names[knee], f"{side}_ankle": sk.names[ankle]}
    if ankle_i + 1 < len(leg):
        out[f"{side}_foot"] = sk.names[leg[ankle_i + 1]]  # the ball/toe bone (end markers trimmed)
    return out


def _arm_map(sk: Skeleton, side: str, arm: list[int]) -> dict[str, str]:
    """Collar, upper arm, forearm, hand on one chain from the chest to a hand leaf; fingers by name."""
    # the hand: the first bone with 3+ children (the fingers), else the one before the leaf
    hand_i = next((k for k, b in enumerate(arm) if len(sk.children[b]) >= 3), None)
    if hand_i is None:
        hand_i = len(arm) - 2 if len(arm) >= 4 else len(arm) - 1
    if hand_i < 2:
        raise NotHumanoidError(f"the {side} arm has no upper arm, forearm and hand")
    hand = arm[hand_i]
    out = {f"{side}_wrist": sk.names[hand], f"{side}_elbow": sk.names[arm[hand_i - 1]],
           f"{side}_shoulder": sk.names[arm[hand_i - 2]]}
    if hand_i >= 3:
        out[f"{side}_collar"] = sk.names[arm[hand_i - 3]]
    for child in sk.children[hand]:
        label = strip_prefix(sk.names[child]).lower()
        finger = next((f for f, toks in _FINGER_TOKENS.items() if any(t in label for t in toks)), None)
        if finger is None:
            continue
        chain, b = [], child
        while b is not None and len(chain) < 3:
            chain.append(b)
            b = sk.children[b][0] if len(sk.children[b]) == 1 else None
        for k, bone in enumerate(chain, start=1):
            out[f"{side}_{finger}{k}"] = sk.names[bone]
    return out


def check_unique(bone_map: dict[str, str]) -> None:
    """A target bone may be driven by one SMPL-X joint only."""
    seen: dict[str, str] = {}
    for joint, bone in bone_map.items():
        if bone in seen:
            raise ValueError(f"bone map sends both {seen[bone]!r} and {joint!r} to the bone {bone!r}")
        seen[bone] = joint


def check_map(bone_map: dict[str, str], bone_names: list[str], armature: str = "the armature") -> None:
    """Every core joint mapped onto an existing bone; one clear ``ValueError`` otherwise."""
    names = set(bone_names)
    missing = [j for j in CORE if j not in bone_map]
    if missing:
        raise NotHumanoidError(f"{armature}: the bone map has no bone for {', '.join(missing)}")
    absent = [f"{j} -> {b!r}" for j, b in bone_map.items() if b not in names]
    if absent:
        raise ValueError(f"{armature} has no bone {absent[0].split(' -> ')[1]} (the bone map needs it for {absent[0].split(' -> ')[0]})")
    check_unique(bone_map)


def resolve_map(bone_names: list[str], parents: list[int], heads: np.ndarray, preset: str | None = None,
                overrides: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The map to use: ``preset`` ("auto", a `PRESETS` name, or None = detect, falling back to
    `auto_map`), then ``overrides`` (joint -> bone, "" removes a joint). Returns (source, map)."""
    if preset in (None, "", "detect"):
        name, m = detect_preset(bone_names)
        if name is None:
            name, m = "auto", auto_map(Skeleton(bone_names, parents, heads))
    elif preset == "auto":
        name, m = "auto", auto_map(Skeleton(bone_names, parents, heads))
    elif preset in PRESETS:
        name, m = preset, preset_map(preset, bone_names)
    else:
        raise ValueError(f"unknown bone-map preset {preset!r}: choose auto, {', '.join(PRESETS)}")
    m = dict(m)
    for joint, bone in (overrides or {}).items():
        if bone:
            m[joint] = bone
        else:
            m.pop(joint, None)
    return name, m
