"""`hosig data report`: what a prepared dataset holds and how faithful the retarget is.

Measures (original, un-mirrored clips; mirrored copies are exact reflections):
- fit error: joint distance of the fitted body to the bone-length-normalised source (stored per
  clip at preparation), frame-weighted mean and the worst frame;
- foot skating: mean horizontal speed of a foot point in contact (cm/s, `contacts.foot_skating`,
  the eval metric's definition) on the retargeted joints, against the same measure on the source
  skeleton (stored per clip), averaged over the same clips;
- planted sliding: the same speed over frames where a foot point is planted (low *and* slow,
  `contacts.planted_sliding`), which leaves out a toe swinging low over the floor;
- floor penetration: depth of foot points below their standing height (floor at z = 0).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from hosig.body.skeleton import FOOT_JOINTS
from hosig.motion.data.contacts import floor_penetration, foot_skating, planted_sliding
from hosig.motion.data.dataset import MotionDataset

FOOT_COLUMNS = list(FOOT_JOINTS)  # left_ankle, left_foot, right_ankle, right_foot


def dataset_report(ds: MotionDataset) -> dict[str, Any]:
    """Summary dict (JSON-able) of a prepared dataset."""
    originals = [k for k in range(ds.num_clips) if not ds.clip_mirrored[k]]
    cats: dict[str, dict[str, float]] = {}
    for k in range(ds.num_clips):
        c = cats.setdefault(str(ds.clip_category[k]), {"clips": 0, "frames": 0})
        c["clips"] += 1
        c["frames"] += int(ds.clip_length[k])
    for c in cats.values():
        c["minutes"] = round(c["frames"] / ds.fps / 60.0, 2)
    rest_h = ds.extra.get("foot_rest_heights")
    skate_ret, skate_src, pen_mean, pen_max, fit_mean, fit_max, fit_w = [], [], [], [], [], [], []
    slide_ret, slide_src = [], []
    for k in originals:
        sl = ds.clip_slice(k)
        feet = ds.joints[sl][:, FOOT_COLUMNS].astype(np.float64)
        src = float(ds.clip_source_skating[k])
        ret = foot_skating(feet, ds.fps).mean_cm_s
        if np.isfinite(src) and np.isfinite(ret):
            skate_src.append(src)
            skate_ret.append(ret)
        src_slide = float(ds.clip_source_sliding[k])
        ret_slide = planted_sliding(feet, ds.fps).mean_cm_s
        if np.isfinite(src_slide) and np.isfinite(ret_slide):
            slide_src.append(src_slide)
            slide_ret.append(ret_slide)
        if rest_h is not None:
            m, x = floor_penetration(feet, np.asarray(rest_h, dtype=np.float64))
            pen_mean.append(m)
            pen_max.append(x)
        if np.isfinite(ds.clip_fit_error_mean[k]):
            fit_mean.append(float(ds.clip_fit_error_mean[k]))
            fit_max.append(float(ds.clip_fit_error_max[k]))
            fit_w.append(int(ds.clip_length[k]))
    valid_share = ds.valid.mean(axis=0)
    report: dict[str, Any] = {
        "source": ds.source,
        "body_identity": ds.body_identity,
        "clips": ds.num_clips,
        "source_clips": len(originals),
        "mirrored_clips": int(ds.clip_mirrored.sum()),
        "frames": ds.num_frames,
        "minutes": round(ds.num_frames / ds.fps / 60.0, 2),
        "fps": ds.fps,
        "categories": dict(sorted(cats.items())),
        "source_frame_rates": dict(Counter(f"{r:g}" for r in ds.clip_source_fps[originals])),
        "contact_fraction": round(float(ds.contacts.mean()), 3),
        "valid_joint_share": {"body": round(float(valid_share[:22].mean()), 3),
                              "jaw_eyes": round(float(valid_share[22:25].mean()), 3),
                              "fingers": round(float(valid_share[25:].mean()), 3)},
    }  # fmt: skip
    if fit_mean:
        report["fit_error_cm"] = {
            "mean": round(float(np.average(fit_mean, weights=fit_w)) * 100, 3),
            "max": round(float(np.max(fit_max)) * 100, 3),
            "worst_clip": str(ds.clip_name[originals][int(np.argmax([ds.clip_fit_error_mean[k] for k in originals]))]),
        }
    if skate_ret:
        r, s = float(np.mean(skate_ret)), float(np.mean(skate_src))
        report["foot_skating_cm_s"] = {"retargeted": round(r, 3), "source": round(s, 3), "difference": round(r - s, 3),
                                       "clips": len(skate_ret)}  # fmt: skip
    elif originals:
        rets = [foot_skating(ds.joints[ds.clip_slice(k)][:, FOOT_COLUMNS], ds.fps).mean_cm_s for k in originals]
        rets = [x for x in rets if np.isfinite(x)]
        if rets:
            report["foot_skating_cm_s"] = {"retargeted": round(float(np.mean(rets)), 3), "source": None}
    if slide_ret:
        r, s = float(np.mean(slide_ret)), float(np.mean(slide_src))
        report["planted_sliding_cm_s"] = {"retargeted": round(r, 3), "source": round(s, 3), "difference": round(r - s, 3),
                                          "clips": len(slide_ret)}  # fmt: skip
    if pen_mean:
        report["foot_floor_penetration_cm"] = {
            "mean": round(float(np.mean(pen_mean)) * 100, 3),
            "max": round(float(np.max(pen_max)) * 100, 3),
        }
    return report
