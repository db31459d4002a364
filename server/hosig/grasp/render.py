"""Matplotlib preview of a grasp: posed body mesh, target object and nearby scene (two views + hand).

Why matplotlib: it ships with the engine (no Blender needed) and is enough to judge a pose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def render_grasp(scene: object, result: object, faces: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Write a PNG with a front-side view, a top-side view and a hand close-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    verts = np.asarray(result.vertices)  # type: ignore[attr-defined]
    target = result.target  # type: ignore[attr-defined]
    lo = verts.min(0) - 0.3
    hi = verts.max(0) + 0.3
    fig = plt.figure(figsize=(15, 5.5))
    heading = float(result.stand[2])  # type: ignore[attr-defined]
    views = [
        (np.degrees(heading) - 60.0, 12.0, None),
        (np.degrees(heading) - 150.0, 25.0, None),
        (np.degrees(heading) - 100.0, 20.0, "hand"),
    ]
    light = np.array([0.3, -0.5, 0.8])
    light = light / np.linalg.norm(light)

    def shade(tri: np.ndarray, base: np.ndarray) -> np.ndarray:
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        k = 0.35 + 0.65 * np.abs(n @ light)
        return np.clip(base[None, :3] * k[:, None], 0, 1)

    for i, (azim, elev, mode) in enumerate(views):
        ax = fig.add_subplot(1, 3, i + 1, projection="3d")
        if mode == "hand":
            c = np.asarray(result.wrist)  # type: ignore[attr-defined]
            vlo, vhi = c - 0.16, c + 0.16
        else:
            vlo, vhi = lo, hi
        for name, obj in scene.objects.items():  # type: ignore[attr-defined]
            b = obj.bounds
            if np.any(b[0] > vhi) or np.any(b[1] < vlo):
                continue
            v = obj.vertices
            f = obj.faces
            tri = v[f]
            keep = np.all((tri.max(1) > vlo - 0.5) & (tri.min(1) < vhi + 0.5), axis=1)
            tri = tri[keep]
            color = np.array([0.9, 0.35, 0.2]) if name == target else np.array([0.72, 0.72, 0.75])
            alpha = 1.0 if name == target else 0.35
            if name == "floor" or name.startswith("floor"):
                alpha = 0.15
            ax.add_collection3d(Poly3DCollection(tri, facecolors=shade(tri, color), alpha=alpha, linewidths=0))
        tri = verts[faces]
        if mode == "hand":
            keep = np.all((tri > vlo) & (tri < vhi), axis=(1, 2))
            tri = tri[keep]
        ax.add_collection3d(Poly3DCollection(tri, facecolors=shade(tri, np.array([0.45, 0.62, 0.85])), linewidths=0))
        ctr = (vlo + vhi) / 2
        r = float((vhi - vlo).max()) / 2
        ax.set_xlim(ctr[0] - r, ctr[0] + r)
        ax.set_ylim(ctr[1] - r, ctr[1] + r)
        ax.set_zlim(ctr[2] - r, ctr[2] + r)
        ax.view_init(elev=elev, azim=azim)
        ax.set_box_aspect((1, 1, 1))
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
