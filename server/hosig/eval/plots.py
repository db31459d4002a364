"""PNG figures a person would rather look at than a table (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hosig.eval.metrics import CONTACT_HEIGHT_M, FOOT_JOINTS, FPS, joint_index


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_floor_path(scene: Any, path: np.ndarray, joints: np.ndarray | None, out: Path, title: str = "") -> Path:
    """Top view: occupied floor cells, the planned path and the pelvis trace."""
    plt = _pyplot()
    occ = scene.occupancy()
    grid = np.asarray(occ.grid)
    lo_z = int(max(0, np.floor((scene.floor_z + 0.05 - occ.origin[2]) / occ.voxel)))
    hi_z = int(min(grid.shape[2], np.ceil((scene.floor_z + 1.9 - occ.origin[2]) / occ.voxel)))
    top = grid[:, :, lo_z:hi_z].any(axis=2) if hi_z > lo_z else grid.any(axis=2)
    extent = (occ.origin[0], occ.origin[0] + grid.shape[0] * occ.voxel, occ.origin[1], occ.origin[1] + grid.shape[1] * occ.voxel)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(top.T, origin="lower", extent=extent, cmap="Greys", alpha=0.6)
    if path is not None and len(path):
        ax.plot(path[:, 0], path[:, 1], "-", color="tab:blue", lw=2, label="planned path")
    if joints is not None and len(joints):
        ax.plot(joints[:, 0, 0], joints[:, 0, 1], "--", color="tab:red", lw=1.5, label="pelvis")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title or "floor map, path and pelvis trace")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_feet(joints: np.ndarray, floor_z: float, out: Path, title: str = "") -> Path:
    """Foot point heights over time with the contact threshold."""
    plt = _pyplot()
    pts = joints[:, joint_index(FOOT_JOINTS)]
    heights = pts[..., 2] - floor_z
    t = np.arange(len(pts)) / FPS
    fig, ax = plt.subplots(figsize=(8, 3))
    for k, name in enumerate(FOOT_JOINTS):
        ax.plot(t, heights[:, k] * 100, label=name, lw=1)
        base = np.percentile(heights[:, k], 5)
        ax.fill_between(t, 0, 1, where=(heights[:, k] - base) < CONTACT_HEIGHT_M, alpha=0.05,
                        transform=ax.get_xaxis_transform(), color=f"C{k}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("height above floor (cm)")
    ax.set_title(title or "foot heights (shaded: contact)")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_velocity_histograms(generated: list[np.ndarray], real: list[np.ndarray], out: Path) -> Path:
    """Joint speed distributions, generated vs real capture."""
    from hosig.eval.metrics import NATURALNESS_JOINTS

    plt = _pyplot()

    def speeds(clips: list[np.ndarray]) -> np.ndarray:
        idx = joint_index(NATURALNESS_JOINTS)
        parts = [np.linalg.norm(np.diff(c[:, idx], axis=0) * FPS, axis=-1).ravel() for c in clips if len(c) > 1]
        return np.concatenate(parts) if parts else np.zeros(0)

    bins = np.linspace(0, 4, 41)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(speeds(real), bins=bins, density=True, alpha=0.5, label="real capture")
    ax.hist(speeds(generated), bins=bins, density=True, alpha=0.5, label="generated")
    ax.set_xlabel("joint speed (m/s)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
