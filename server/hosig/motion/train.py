"""Training the denoiser on a prepared motion dataset (`hosig data prepare` output).

Windows of ``window`` frames are cut at random inside clips, canonicalised on their first frame and
normalised. Each window gets a random anchor pattern like HOSIG's training (pelvis only 60 % /
pelvis + wrist 40 % on 1-20 random frames; the first 1-10 frames fully for continuity; sometimes a
full pose on the last or a middle frame, as the grasp pose will be; sometimes nothing). The loss is
x0 MSE on valid channels only (CMU has no fingers) plus a velocity term for smoothness.

Deterministic for a given ``--seed`` (one torch.Generator drives windows, noise and anchors; the
global RNG, used by dropout, is seeded too); resumable from the last checkpoint's train state.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hosig.errors import CheckpointError, InputError, UsageError
from hosig.motion.checkpoint import SamplerConfig, resolve_paths, save_checkpoint
from hosig.motion.diffusion import Schedule
from hosig.motion.model import Denoiser, DenoiserConfig
from hosig.motion.representation import (
    ANCHOR_JOINTS,
    FOOT_CONTACT_JOINTS,
    LAYOUT,
    Stats,
    assemble,
    canonicalize,
    channel_validity,
    world_tensors,
)

REQUIRED = ("poses", "joints", "contacts", "valid", "clip_start", "clip_length")


@dataclass
class TrainConfig:
    """Everything that decides a training run (recorded in the checkpoint JSON)."""

    steps: int = 3000
    batch: int = 32
    lr: float = 4e-4
    warmup: int = 100
    weight_decay: float = 0.01
    ckpt_every: int = 250
    log_every: int = 25
    seed: int = 0
    device: str = "cpu"
    velocity_weight: float = 1.0
    low_noise_weight_cap: float = 10.0  # loss weight 1/(1-alpha_bar) capped here (1: plain x0 loss)
    # extra x0 loss on the pelvis trajectory (every frame): a network that puts the pelvis where its
    # anchors say needs less guidance, and guidance dragging the pelvis is what makes the legs glide.
    # (Weighting the anchored frames alone taught it to hit them with one-frame spikes: jerk x3.)
    trajectory_weight: float = 0.0
    ema: float = 0.998
    holdout_every: int = 25  # every n-th source clip (with its mirror) is held out for validation
    stats_windows: int = 2048  # random windows for the normalisation statistics
    val_windows: int = 256  # fixed held-out windows scored at each checkpoint
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)


@dataclass
class TrainData:
    """Dataset tensors, frame-concatenated, plus the window start indices."""

    root: torch.Tensor  # (N,3,3)
    local6d: torch.Tensor  # (N,306)
    pelvis: torch.Tensor  # (N,3)
    joints: torch.Tensor  # (N,6,3) anchorable joints, world
    contacts: torch.Tensor  # (N,4)
    chan_valid: torch.Tensor  # (N,319) bool
    foot_height: torch.Tensor  # (4,) median height of the foot points while in contact
    train_starts: torch.Tensor  # (S,) long
    val_starts: torch.Tensor  # (V,) long
    report: dict[str, Any]


def load_dataset(path: str | Path, window: int, holdout_every: int = 25) -> TrainData:
    """Read and check a dataset npz (format: docs/ARCHITECTURE.md "hosig.motion")."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"motion dataset {str(path)!r} does not exist (make one with `hosig data prepare`)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED if k not in npz.files]
            if missing:
                raise InputError(f"motion dataset {str(path)!r} lacks fields {missing}")
            d = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(f"motion dataset {str(path)!r} is not a readable npz: {err}") from None
    n = len(d["poses"])
    if d["poses"].shape != (n, 165) or d["joints"].shape != (n, 55, 3) or d["contacts"].shape != (n, 4) or d["valid"].shape != (n, 55):
        raise InputError(f"motion dataset {str(path)!r}: poses/joints/contacts/valid shapes disagree ({n} frames)")
    if not (np.isfinite(d["poses"]).all() and np.isfinite(d["joints"]).all()):
        raise InputError(f"motion dataset {str(path)!r} contains NaN/inf in poses or joints")
    fps = float(d.get("fps", 30))
    if abs(fps - 30) > 1e-6:
        raise InputError(f"motion dataset {str(path)!r} is at {fps} fps; expected 30")
    starts, lengths = d["clip_start"].astype(np.int64), d["clip_length"].astype(np.int64)
    names = [str(x) for x in d.get("clip_name", np.array([f"clip{i}" for i in range(len(starts))]))]
    mirrored = d.get("clip_mirrored", np.zeros(len(starts), bool)).astype(bool)
    cats = [str(x) for x in d.get("clip_category", np.array(["unknown"] * len(starts)))]
    base = sorted({nm.split("#")[0] for nm in names})
    held = set(base[::holdout_every]) if holdout_every > 0 and len(base) >= 4 else set()
    tr, va = [], []
    for s, ln, nm in zip(starts, lengths, names):
        if ln < window:
            continue
        idx = np.arange(s, s + ln - window + 1)
        (va if nm.split("#")[0] in held else tr).append(idx)
    if not tr:
        raise InputError(f"motion dataset {str(path)!r} has no clip of at least {window} frames to train on")
    wt = world_tensors(d["poses"], d["joints"][:, 0])
    cat_count: dict[str, int] = {}
    for c, ln in zip(cats, lengths):
        cat_count[c] = cat_count.get(c, 0) + int(ln)
    feet_z = d["joints"][:, FOOT_CONTACT_JOINTS, 2]
    on = np.asarray(d["contacts"]) > 0.5
    foot_h = [float(np.median(feet_z[on[:, k], k])) if on[:, k].any() else float(np.percentile(feet_z[:, k], 5)) for k in range(4)]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    report = {
        "file": path.name,
        "sha256": sha,
        "source": str(d.get("source", "")),
        "body_identity": str(d.get("body_identity", "")),
        "frames": int(n),
        "minutes": round(n / 30 / 60, 2),
        "clips": int(len(starts)),
        "mirrored_clips": int(mirrored.sum()),
        "frames_per_category": cat_count,
        "heldout_clips": sorted(held),
        "train_windows": int(sum(len(x) for x in tr)),
        "val_windows": int(sum(len(x) for x in va)),
        "foot_contact_height_m": [round(h, 4) for h in foot_h],
        "finger_channels_valid_fraction": float(np.asarray(d["valid"])[:, 25:55].mean()),
    }
    return TrainData(
        root=wt["root"], local6d=wt["local6d"], pelvis=wt["pelvis"],
        joints=torch.as_tensor(d["joints"][:, ANCHOR_JOINTS], dtype=torch.float32),
        contacts=torch.as_tensor(d["contacts"], dtype=torch.float32),
        chan_valid=torch.as_tensor(channel_validity(d["valid"])),
        foot_height=torch.tensor(foot_h, dtype=torch.float32),
        train_starts=torch.as_tensor(np.concatenate(tr)),
        val_starts=torch.as_tensor(np.concatenate(va)) if va else torch.as_tensor(np.concatenate(tr))[:0],
        report=report,
    )


def make_batch(data: TrainData, starts: torch.Tensor, window: int):
    """Window start indices (B,) -> canonical features (B,W,D), joints (B,W,18), validity (B,W,D)."""
    idx = starts[:, None] + torch.arange(window)[None]
    root_c, pel_c, joints_c, _ = canonicalize(data.root[idx], data.pelvis[idx], data.joints[idx])
    feats = assemble(pel_c, root_c, data.local6d[idx], data.contacts[idx])
    return feats, joints_c.reshape(*idx.shape, -1), data.chan_valid[idx]


def compute_stats(data: TrainData, window: int, gen: torch.Generator, n: int = 2048) -> Stats:
    """Per-channel mean/std over random canonical windows, valid channels only."""
    pick = data.train_starts[torch.randint(len(data.train_starts), (n,), generator=gen)]
    feats, joints, valid = make_batch(data, pick, window)
    v = valid.float()
    cnt = v.sum((0, 1))
    mean = (feats * v).sum((0, 1)) / cnt.clamp_min(1)
    var = (((feats - mean) ** 2) * v).sum((0, 1)) / cnt.clamp_min(1)
    std = var.sqrt().clamp_min(0.02)
    none = cnt < 1
    identity6 = torch.tensor([1.0, 0, 0, 0, 1, 0])
    rot = mean[3:315].reshape(52, 6)
    rot[none[3:315].reshape(52, 6).all(-1)] = identity6
    mean[3:315] = rot.reshape(-1)
    std[none] = 1.0
    # positions: one std for x/y so canonical geometry is not distorted anisotropically
    std[0:2] = std[0:2].max()
    jf = joints.reshape(-1, joints.shape[-1])
    jmean, jstd = jf.mean(0), jf.std(0).clamp_min(0.02)
    return Stats(mean, std, jmean, jstd, data.foot_height.clone())


def random_anchor_masks(valid: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """HOSIG-style random anchor patterns -> (feat mask (B,W,D), joint mask (B,W,J)) bool."""
    b, w, d = valid.shape
    jd = LAYOUT.joint_dim
    fm = torch.zeros(b, w, d, dtype=torch.bool)
    jm = torch.zeros(b, w, jd, dtype=torch.bool)
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    frames = torch.arange(w)[None]
    # continuity: the first 1-10 frames, all channels
    k = torch.randint(1, 11, (b,), generator=gen)
    ctx = (frames < k[:, None]) & (r(b, 1) < 0.6)
    fm |= ctx[..., None]
    jm |= ctx[..., None]
    # pelvis on 1-20 random frames (xy, z half the time); wrists on some of them 40 % of the time
    n = torch.randint(1, 21, (b, 1), generator=gen).float()
    pel = r(b, w) < n / w
    with_z = r(b, 1, 1) < 0.5
    fm[..., 0:2] |= pel[..., None]
    fm[..., 2:3] |= pel[..., None] & with_z
    jm[..., 0:2] |= pel[..., None]
    jm[..., 2:3] |= pel[..., None] & with_z
    wrist = (r(b, w) < 0.25) & pel & (r(b, 1) < 0.4)
    side = torch.randint(0, 3, (b, 1), generator=gen)  # 0 left, 1 right, 2 both
    jm[..., 3:6] |= wrist[..., None] & ((side == 0) | (side == 2))[..., None]
    jm[..., 6:9] |= wrist[..., None] & ((side == 1) | (side == 2))[..., None]
    # any anchorable joint at a few frames (animator keys)
    extra = (r(b, w, 6) < 0.02) & (r(b, 1, 1) < 0.2)
    jm |= extra.repeat_interleave(3, dim=-1)
    # full pose (rotations + pelvis) at the last frame or at a middle frame (the grasp pose)
    last = r(b) < 0.25
    fm[last, -1, :315] = True
    mid = r(b) < 0.25
    mf = torch.randint(w // 4, w, (b,), generator=gen)
    fm[mid, mf[mid], :315] = True
    jm[mid, mf[mid]] = True
    # finger pose alone at a frame (the grasp's hand pose), where the data has fingers
    hand = r(b) < 0.2
    hf = torch.randint(0, w, (b,), generator=gen)
    fm[hand, hf[hand], LAYOUT.hands] = True
    # sometimes nothing at all
    drop = r(b) < 0.1
    fm[drop] = False
    jm[drop] = False
    return fm & valid, jm


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    prog = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog))))


def loss_on(net: Denoiser, sched: Schedule, data: TrainData, stats: Stats, starts: torch.Tensor,
            cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    w = cfg.denoiser.window
    feats, joints, valid = make_batch(data, starts, w)
    x0 = stats.norm(feats)
    jn = stats.jnorm(joints)
    fm, jm = random_anchor_masks(valid, gen)
    t = torch.randint(0, sched.n, (len(starts),), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    xt = sched.q_sample(x0, t, noise)
    pred = net(xt, t, x0 * fm, fm.float(), jn * jm, jm.float())
    v = valid.float()
    # x0 error weighted towards low noise (1/(1-ab), capped): with the skip parameterisation the
    # network's share at low noise is small, and an unweighted x0 loss would leave residual noise
    ab = sched.alphas_cumprod[t].view(-1, 1, 1)
    wt = (1.0 / (1.0 - ab)).clamp(max=cfg.low_noise_weight_cap) if cfg.low_noise_weight_cap > 1 else torch.ones_like(ab)
    rec = (((pred - x0) ** 2) * v * wt).sum() / v.sum().clamp_min(1)
    if cfg.trajectory_weight > 0:
        pel = LAYOUT.pelvis
        rec = rec + cfg.trajectory_weight * (((pred[..., pel] - x0[..., pel]) ** 2) * wt).mean()
    dv = v[:, 1:] * v[:, :-1]
    vel = ((((pred[:, 1:] - pred[:, :-1]) - (x0[:, 1:] - x0[:, :-1])) ** 2) * dv * wt).sum() / dv.sum().clamp_min(1)
    return rec + cfg.velocity_weight * vel * 4.0


def _opt_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"opt.{pid}.{key}"] = torch.as_tensor(val).clone()
    return tensors, {"param_groups": sd["param_groups"]}


def _load_opt(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = val
    opt.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def train(data_path: str | Path, out_dir: str | Path, cfg: TrainConfig, resume: bool = False,
          progress: bool = True, stop_file: str | Path | None = None, init: Any = None) -> dict[str, Any]:
    """Train (or resume) and write checkpoints to ``out_dir/model.*``; returns the final record.

    ``init``: a loaded `MotionModel` to fine-tune (its weights, normalisation and sampler settings;
    ``cfg.denoiser`` must be its architecture)."""
    from safetensors.torch import load_file, save_file

    if cfg.steps < 1 or cfg.batch < 1:
        raise UsageError(f"--steps and batch must be positive (got steps={cfg.steps}, batch={cfg.batch})")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights_path, _ = resolve_paths(out)
    state_path = out / "train_state.safetensors"
    state_json = out / "train_state.json"
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = load_dataset(data_path, cfg.denoiser.window, cfg.holdout_every)
    stats = compute_stats(data, cfg.denoiser.window, gen, cfg.stats_windows)
    net = Denoiser(cfg.denoiser)
    sampler = SamplerConfig()
    if init is not None:
        if asdict(init.config) != asdict(cfg.denoiser):
            raise CheckpointError(f"--init {init.source!r} has architecture {asdict(init.config)}, not {asdict(cfg.denoiser)}")
        if init.body_identity != data.report["body_identity"]:
            raise CheckpointError(f"--init {init.source!r} was trained for body {init.body_identity!r}; "
                                  f"the data is for {data.report['body_identity']!r}")
        net.load_state_dict(init.net.state_dict())
        stats, sampler = init.stats, init.sampler
    ema = copy.deepcopy(net).eval()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = Schedule.cosine()
    step, history = 0, []
    if resume and state_path.is_file():
        try:
            st = load_file(str(state_path))
            meta = json.loads(state_json.read_text())
        except Exception as err:  # noqa: BLE001 - any unreadable state is a checkpoint problem
            raise CheckpointError(f"train state {str(state_path)!r} is unreadable: {err}") from None
        if meta.get("denoiser") != asdict(cfg.denoiser):
            raise CheckpointError(f"train state {str(state_path)!r} was made for another architecture: {meta.get('denoiser')}")
        net.load_state_dict({k[4:]: v for k, v in st.items() if k.startswith("net.")})
        ema.load_state_dict({k[4:]: v for k, v in st.items() if k.startswith("ema.")})
        stats = Stats(st["stats.mean"], st["stats.std"], st["stats.jmean"], st["stats.jstd"], st["stats.foot_height"])
        _load_opt(opt, st, meta)
        gen.set_state(st["rng.gen"])
        torch.set_rng_state(st["rng.global"])
        step, history = int(meta["step"]), meta.get("history", [])
    val_gen = torch.Generator().manual_seed(1234)
    vs = data.val_starts if len(data.val_starts) else data.train_starts
    val_starts = vs[torch.randint(len(vs), (min(cfg.val_windows, max(1, len(vs))),), generator=val_gen)]

    def checkpoint(final: bool = False) -> None:
        val = evaluate(ema, sched, data, stats, val_starts, cfg)
        history.append({"step": step, "val_loss": round(val, 5), "time": round(time.time(), 1)})
        record = {"config": {**asdict(cfg), "denoiser": asdict(cfg.denoiser)}, "step": step, "history": history[-50:],
                  "val_loss": val, "final": final, "init": None if init is None else str(init.source)}
        save_checkpoint(weights_path, ema, stats, data.report["body_identity"], data.report, record, sampler)
        tensors = {f"net.{k}": v.detach().clone() for k, v in net.state_dict().items()}
        tensors.update({f"ema.{k}": v.detach().clone() for k, v in ema.state_dict().items()})
        tensors.update({"stats.mean": stats.mean, "stats.std": stats.std, "stats.jmean": stats.jmean, "stats.jstd": stats.jstd,
                        "stats.foot_height": stats.foot_height, "rng.gen": gen.get_state(), "rng.global": torch.get_rng_state()})
        opt_t, groups = _opt_tensors(opt)
        tensors.update(opt_t)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(state_path) + ".tmp")
        Path(str(state_path) + ".tmp").replace(state_path)
        state_json.write_text(json.dumps({**groups, "step": step, "history": history, "denoiser": asdict(cfg.denoiser)}))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, file=sys.stderr, desc="train", dynamic_ncols=True)
    net.train()
    running = None
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        starts = data.train_starts[torch.randint(len(data.train_starts), (cfg.batch,), generator=gen)]
        loss = loss_on(net, sched, data, stats, starts, cfg, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.mul_(decay).add_(pn.detach(), alpha=1 - decay)
        step += 1
        lv = float(loss.detach())
        running = lv if running is None else 0.98 * running + 0.02 * lv
        if bar is not None:
            bar.update(1)
            if step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{running:.4f}")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint(final=step == cfg.steps)
        if stop_file is not None and Path(stop_file).exists():
            checkpoint(final=False)
            break
    if bar is not None:
        bar.close()
    return {"steps": step, "checkpoint": str(weights_path), "val_loss": history[-1]["val_loss"] if history else None,
            "train_loss": running, "data": data.report}


def evaluate(net: Denoiser, sched: Schedule, data: TrainData, stats: Stats, starts: torch.Tensor, cfg: TrainConfig) -> float:
    """Validation loss on held-out windows with a fixed seed (comparable across checkpoints)."""
    was = net.training
    net.eval()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        total = 0.0
        chunks = starts.split(64)
        for ch in chunks:
            total += float(loss_on(net, sched, data, stats, ch, cfg, gen))
    net.train(was)
    return total / max(1, len(chunks))
