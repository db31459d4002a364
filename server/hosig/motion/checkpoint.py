"""Motion model checkpoints: safetensors weights + a JSON config, never pickle.

A checkpoint is a pair ``<name>.safetensors`` (network weights ``net.*`` and normalisation stats
``stats.*``) and ``<name>.json`` (format, architecture, representation, body identity, data report,
training record). `MotionModel.load()` with no argument loads the committed default model from
``hosig/assets/motion/``. Every failure is a `CheckpointError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from hosig.errors import CheckpointError
from hosig.motion.model import Denoiser, DenoiserConfig
from hosig.motion.representation import LAYOUT, Stats

FORMAT = "hosig-motion/1"
REPRESENTATION = "hosig-rot6d-319/1"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "assets" / "motion"
DEFAULT_NAME = "model"


@dataclass
class SamplerConfig:
    """How the model is sampled by default (also stored in the JSON)."""

    steps: int = 10  # DDIM steps per window
    context: int = 8  # frames of the previous window inpainted at the start of the next
    blend: int = 8  # further frames cross-faded after the context
    guidance_iters: int = 2  # gradient steps on x0 per denoising step
    guidance_lr: float = 0.1
    cond_scale: float = 1.0  # classifier-free guidance scale on the anchors (1: off)
    smooth: float = 2.5  # Gaussian sigma (frames) on the final window, hard anchors re-imposed (0: off)


@dataclass
class MotionModel:
    """A loaded denoiser with its normalisation and provenance."""

    net: Denoiser
    stats: Stats
    config: DenoiserConfig
    body_identity: str
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def window(self) -> int:
        return self.config.window

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> "MotionModel":
        """Load a checkpoint (a ``.safetensors``/``.json`` path or a folder holding ``model.*``)."""
        weights, config = resolve_paths(path)
        return load_checkpoint(weights, config, device=device)

    def check_body(self, body_identity: str) -> None:
        """Refuse to animate a body the model was not trained for (different proportions)."""
        if self.body_identity and body_identity and body_identity != self.body_identity:
            raise CheckpointError(
                f"motion checkpoint {self.source!r} was trained for body {self.body_identity!r}, "
                f"but the body model in use is {body_identity!r}; train one for this body with `hosig train`"
            )

    def synthesize(self, anchors, body, scene_sdf=None, seed: int = 0, on_window=None, cancel=None, **kw):
        """See `hosig.motion.synth.synthesize`."""
        from hosig.motion.synth import synthesize

        return synthesize(self, anchors, body, scene_sdf=scene_sdf, seed=seed, on_window=on_window, cancel=cancel, **kw)


def resolve_paths(path: str | Path | None) -> tuple[Path, Path]:
    """Checkpoint argument -> (weights path, config path)."""
    p = Path(path) if path is not None else DEFAULT_DIR
    if p.is_dir():
        p = p / f"{DEFAULT_NAME}.safetensors"
    if p.suffix == ".json":
        return p.with_suffix(".safetensors"), p
    return p, p.with_suffix(".json")


def save_checkpoint(
    path: str | Path,
    net: Denoiser,
    stats: Stats,
    body_identity: str,
    data_report: dict[str, Any],
    train_record: dict[str, Any],
    sampler: SamplerConfig | None = None,
) -> Path:
    """Write ``path`` (.safetensors) and its .json; atomic (temp file + rename)."""
    from safetensors.torch import save_file

    weights, config = resolve_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tensors.update({
        "stats.mean": stats.mean.cpu().contiguous(), "stats.std": stats.std.cpu().contiguous(),
        "stats.jmean": stats.jmean.cpu().contiguous(), "stats.jstd": stats.jstd.cpu().contiguous(),
        "stats.foot_height": stats.foot_height.float().cpu().contiguous(),
    })
    tmp = weights.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT})
    tmp.replace(weights)
    doc = {
        "format": FORMAT,
        "representation": REPRESENTATION,
        "feature_dim": LAYOUT.dim,
        "fps": 30,
        "denoiser": net.cfg.to_dict(),
        "sampler": (sampler or SamplerConfig()).__dict__,
        "body_identity": body_identity,
        "data_report": data_report,
        "train": train_record,
        "weights": weights.name,
    }
    tmpj = config.with_suffix(".json.tmp")
    tmpj.write_text(json.dumps(doc, indent=2))
    tmpj.replace(config)
    return weights


def load_checkpoint(weights: Path, config: Path, device: str = "cpu") -> MotionModel:
    """Read and check a checkpoint pair; every problem is a CheckpointError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not config.is_file():
        raise CheckpointError(f"motion checkpoint config {str(config)!r} does not exist")
    if not weights.is_file():
        raise CheckpointError(f"motion checkpoint weights {str(weights)!r} do not exist")
    try:
        doc = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"motion checkpoint config {str(config)!r} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"motion checkpoint config {str(config)!r} is not a {FORMAT} file")
    if doc.get("representation") != REPRESENTATION or doc.get("feature_dim") != LAYOUT.dim:
        raise CheckpointError(
            f"motion checkpoint {str(config)!r} uses representation {doc.get('representation')!r} "
            f"({doc.get('feature_dim')} channels); this engine reads {REPRESENTATION} ({LAYOUT.dim})"
        )
    known = {f.name for f in fields(DenoiserConfig)}
    arch = doc.get("denoiser")
    if not isinstance(arch, dict) or set(arch) - known:
        raise CheckpointError(f"motion checkpoint {str(config)!r}: unknown denoiser architecture {arch!r}")
    try:
        cfg = DenoiserConfig(**arch)
        net = Denoiser(cfg)
    except (TypeError, ValueError, AssertionError, RuntimeError) as err:
        raise CheckpointError(f"motion checkpoint {str(config)!r}: bad architecture: {err}") from None
    try:
        tensors = load_file(str(weights), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"motion checkpoint weights {str(weights)!r} are corrupt or unreadable: {err}") from None
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0:3]
        raise CheckpointError(
            f"motion checkpoint {str(weights)!r} does not match its architecture in {config.name}: {' '.join(first)}"
        ) from None
    try:
        stats = Stats(tensors["stats.mean"], tensors["stats.std"], tensors["stats.jmean"], tensors["stats.jstd"],
                      tensors["stats.foot_height"])
    except KeyError as err:
        raise CheckpointError(f"motion checkpoint {str(weights)!r} lacks normalisation tensor {err}") from None
    if stats.mean.shape != (LAYOUT.dim,) or not all(torch.isfinite(t).all() for t in tensors.values()):
        raise CheckpointError(f"motion checkpoint {str(weights)!r} holds non-finite or misshapen tensors")
    net.eval().to(device)
    sampler = SamplerConfig(**{k: v for k, v in (doc.get("sampler") or {}).items() if k in SamplerConfig.__dataclass_fields__})
    return MotionModel(
        net=net, stats=stats, config=cfg, body_identity=str(doc.get("body_identity", "")), sampler=sampler,
        meta=doc, source=str(weights),
    )
