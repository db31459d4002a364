"""The SMPL-X armature and its skinned body, built from the server's `/body` answer.

Convention of the SMPL-X Blender add-on: a static ``root`` bone at the origin, the 55 SMPL-X joints
as bones named after them (``pelvis`` under ``root``), quaternion rotation mode, rest pose standing
in Z-up. Bone heads sit on the rest joints; tails point to a child joint so the rig reads well in
the viewport (the pose math in `posemath` works for any bone direction/roll).
"""

from __future__ import annotations

import bpy
import numpy as np

from .protocol import BodyData

ROOT_BONE = "root"
BODY_TAG = "hosig_body"  # custom property marking our meshes/armatures (excluded from scene export)
SHOT_TAG = "hosig_shot"
# Which child a multi-child joint's bone points at.
_PREFERRED_CHILD = ("spine1", "neck", "left_middle1", "right_middle1", "head")


def _tails(body: BodyData) -> np.ndarray:
    """(55,3) tail positions: toward the preferred/only child, else continuing the parent bone."""
    rest = body.rest_joints
    names = body.joint_names
    children: dict[int, list[int]] = {i: [] for i in range(len(names))}
    for i, p in enumerate(body.parents):
        if p >= 0:
            children[int(p)].append(i)
    tails = np.zeros_like(rest)
    for i in range(len(names)):
        kids = children[i]
        pick = None
        for k in kids:
            if names[k] in _PREFERRED_CHILD:
                pick = k
                break
        if names[i] == "head":
            tails[i] = rest[i] + np.array([0.0, 0.0, 0.12])
            continue
        if "_eye" in names[i]:
            tails[i] = rest[i] + np.array([0.0, -0.03, 0.0])
            continue
        if pick is None and len(kids) == 1:
            pick = kids[0]
        if pick is not None and np.linalg.norm(rest[pick] - rest[i]) > 0.005:
            tails[i] = rest[pick]
            continue
        p = int(body.parents[i])
        direction = rest[i] - rest[p] if p >= 0 else np.array([0.0, 0.0, 0.1])
        length = max(np.linalg.norm(direction), 1e-6)
        tails[i] = rest[i] + direction / length * max(0.5 * length, 0.015)
    return tails


def _ensure_object_mode() -> None:
    if bpy.context.object is not None and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")


def build_armature(name: str, body: BodyData, collection: bpy.types.Collection,
                   body_mesh: bpy.types.Mesh | None = None) -> bpy.types.Object:
    """A new armature object ``name`` (root + 55 bones) with the body mesh skinned to it.

    Bones need edit mode; the user's active object, selection and mode are restored afterwards.
    """
    previous_mode = bpy.context.object.mode if bpy.context.object is not None else "OBJECT"
    _ensure_object_mode()
    arm_data = bpy.data.armatures.new(name)
    arm = bpy.data.objects.new(name, arm_data)
    arm[BODY_TAG] = body.identity
    collection.objects.link(arm)
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    previous_selection = [o for o in view_layer.objects if o.select_get()]
    for o in previous_selection:
        o.select_set(False)
    view_layer.objects.active = arm
    arm.select_set(True)
    tails = _tails(body)
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        root = arm_data.edit_bones.new(ROOT_BONE)
        root.head = (0.0, 0.0, 0.0)
        root.tail = (0.0, 0.0, 0.15)
        root.roll = 0.0
        bones = []
        for i, joint in enumerate(body.joint_names):
            eb = arm_data.edit_bones.new(joint)
            eb.head = tuple(body.rest_joints[i])
            eb.tail = tuple(tails[i])
            eb.roll = 0.0
            eb.use_connect = False
            bones.append(eb)
        for i, p in enumerate(body.parents):
            bones[i].parent = root if p < 0 else bones[int(p)]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"
    arm_data.display_type = "STICK"
    arm.show_in_front = True
    arm.select_set(False)
    for o in previous_selection:
        o.select_set(True)
    view_layer.objects.active = previous_active
    if previous_active is not None and previous_mode != "OBJECT":
        try:
            bpy.ops.object.mode_set(mode=previous_mode)
        except RuntimeError:
            pass

    mesh = body_mesh if body_mesh is not None else build_body_mesh(body)
    skin = bpy.data.objects.new(f"{name}_body", mesh)
    skin[BODY_TAG] = body.identity
    collection.objects.link(skin)
    skin.parent = arm
    if len(skin.vertex_groups) == 0:  # names live on the (possibly shared) mesh since Blender 3.0
        for joint in body.joint_names:
            skin.vertex_groups.new(name=joint)
    mod = skin.modifiers.new("Armature", "ARMATURE")
    mod.object = arm
    return arm


def build_body_mesh(body: BodyData) -> bpy.types.Mesh:
    """The rest body as a mesh with 55 weighted vertex groups (shared by every shot's armature)."""
    import bmesh

    mesh = bpy.data.meshes.new(f"HOSIG body {body.identity[:20]}")
    mesh.from_pydata(body.vertices.astype(np.float64).tolist(), [], body.faces.tolist())
    mesh.update()
    for poly in mesh.polygons:
        poly.use_smooth = True
    # Vertex-group weights live on the mesh; groups are matched by index on the objects.
    bm = bmesh.new()
    bm.from_mesh(mesh)
    deform = bm.verts.layers.deform.verify()
    idx, val = body.weights_index.tolist(), body.weights_value.tolist()  # plain lists: no numpy scalars in the loop
    for v, joints, weights in zip(bm.verts, idx, val):
        d = v[deform]
        for j, w in zip(joints, weights):
            if w > 0.0:
                d[j] = w
    bm.to_mesh(mesh)
    bm.free()
    mesh[BODY_TAG] = body.identity
    return mesh


def rest_rotations(arm: bpy.types.Object, joint_names: list[str]) -> np.ndarray:
    """(55,3,3) armature-space rest rotations (``bone.matrix_local``) of the joint bones."""
    out = np.empty((len(joint_names), 3, 3))
    for i, name in enumerate(joint_names):
        m = arm.data.bones[name].matrix_local
        out[i] = np.array([[m[r][c] for c in range(3)] for r in range(3)])
    # orthonormalise (Blender stores float32)
    u, _, vt = np.linalg.svd(out)
    return u @ vt


def remove_armature(arm: bpy.types.Object) -> None:
    """Delete an armature made by `build_armature` with its skin object (not the shared mesh)."""
    for child in list(arm.children):
        if child.get(BODY_TAG) is not None:
            bpy.data.objects.remove(child, do_unlink=True)
    data = arm.data
    bpy.data.objects.remove(arm, do_unlink=True)
    if data is not None and data.users == 0:
        bpy.data.armatures.remove(data)
