"""The Python API: train a run, load one, make images.  The CLI is a thin layer over this."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig, build_config, read_yaml
from .data import DataSpec
from .engine import distributed as dist
from .engine.checkpoint import (
    CHECKPOINT_DIR,
    latest_good_checkpoint,
    list_checkpoints,
    read_checkpoint,
)
from .errors import UserError
from .models import get_family
from .models.base import GANModel
from .registry import MODELS

# keys that may change when a run is resumed; anything else would make it a different run
RESUMABLE = {
    "train.steps",
    "train.device",
    "train.progress",
    "train.tensorboard",
    "train.log_every",
    "train.sample_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.time_budget",
}


def list_models() -> list[str]:
    """Names of the registered GAN families."""
    return MODELS.names()


def create_model(
    name: str, preset: str | None = None, spec: DataSpec | None = None, **overrides: Any
) -> GANModel:
    """Build a family's networks (untrained) from a preset and keyword overrides.

    ``spec`` describes the data (default: 1 channel at the preset's resolution, 10 classes)."""
    cfg = build_config(name, preset, overrides=list(overrides.items()))
    spec = spec or DataSpec(
        channels=1,
        resolution=cfg.family.resolution,
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        name="synthetic",
    )
    return get_family(name)(cfg.family, spec)


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").exists() or (path / CHECKPOINT_DIR).exists()


def _default_run_dir(cfg: RunConfig, resume: bool) -> Path:
    data = re.sub(r"[^A-Za-z0-9]+", "-", Path(cfg.data.name.split(":", 1)[-1]).name).strip("-")
    base = Path("runs") / f"{cfg.model}-{data or 'data'}"
    if resume:
        return base
    candidate, k = base, 2
    while _is_run(candidate):
        candidate, k = base.with_name(f"{base.name}-{k}"), k + 1
    return candidate


def resolve_run(
    model: str,
    *,
    preset: str | None = None,
    config: str | Path | None = None,
    overrides: list[tuple[str, Any]] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
) -> tuple[RunConfig, Path]:
    """Work out the config and run folder for a training request, refusing to overwrite a run."""
    file_data = read_yaml(config) if config else {}
    if file_data.get("model") not in (None, model):
        raise UserError(
            f"config file '{config}' is for model '{file_data['model']}', not '{model}'"
        )
    preset = preset or file_data.get("preset")
    cfg = build_config(model, preset, file_data=file_data, overrides=overrides)
    run_dir = Path(out) if out else _default_run_dir(cfg, resume)
    if not resume:
        if _is_run(run_dir):
            raise UserError(
                f"'{run_dir}' already holds a run; pass --resume to continue it, or "
                "choose another --out (runs are never overwritten)"
            )
        return cfg, run_dir
    saved_file = run_dir / "config.yaml"
    if not saved_file.exists():
        raise UserError(
            f"nothing to resume: '{run_dir}' holds no run (no config.yaml); "
            "drop --resume to start it"
        )
    if _imported(run_dir):
        raise UserError(
            f"'{run_dir}' holds imported networks without a training state; they can be "
            "sampled and evaluated, not resumed (train a new run instead)"
        )
    saved = read_yaml(saved_file)
    if saved.get("model") != model:
        raise UserError(
            f"'{run_dir}' is a '{saved.get('model')}' run, not '{model}'; "
            f"resume it with 'ganforge train {saved.get('model')} --resume --out {run_dir}'"
        )
    resumed = build_config(model, saved.get("preset"), file_data=saved, overrides=overrides)
    before, after = dict(_flat(saved)), dict(_flat(resumed.to_dict()))
    changed = sorted(
        k for k in set(before) | set(after) if before.get(k) != after.get(k) and k not in RESUMABLE
    )
    if changed:
        k = changed[0]
        raise UserError(
            f"cannot change '{k}' when resuming (the run has {before.get(k)!r}, asked "
            f"{after.get(k)!r}); start a new run with another --out instead"
        )
    return resumed, run_dir


def _imported(run_dir: Path) -> bool:
    """Whether the run was written by `ganforge import` (its checkpoints say so)."""
    for _, path in list_checkpoints(run_dir):
        try:
            if "imported" in json.loads((path / "meta.json").read_text()):
                return True
        except (OSError, ValueError):
            continue
    return False


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def train(
    model: str = "dcgan",
    *,
    preset: str | None = None,
    dataset: str | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    out: str | Path | None = None,
    seed: int | None = None,
    config: str | Path | None = None,
    overrides: dict[str, Any] | list[tuple[str, Any]] | None = None,
    resume: bool = False,
    device: str | None = None,
    data_dir: str | None = None,
) -> Path:
    """Train ``model`` and return its run folder.

    Keyword options mirror ``ganforge train``; ``overrides`` are dotted keys
    (``{"lr_g": 1e-4, "train.log_every": 10}``).  ``steps`` is the run's total: resuming a run
    of 500 steps with ``steps=1000`` trains 500 more."""
    from .engine.trainer import Trainer

    pairs: list[tuple[str, Any]] = []
    for key, value in (
        ("data.name", dataset),
        ("train.steps", steps),
        ("train.batch_size", batch_size),
        ("train.seed", seed),
        ("train.device", device),
        ("data.dir", data_dir),
    ):
        if value is not None:
            pairs.append((key, value))
    pairs += list(overrides.items()) if isinstance(overrides, dict) else list(overrides or [])
    cfg, run_dir = resolve_run(
        model, preset=preset, config=config, overrides=pairs, out=out, resume=resume
    )
    # Under torchrun every process resolves the same request; rank 0's folder choice wins.
    trainer = Trainer(cfg, run_dir, resume=resume)
    run_dir = trainer.run_dir = Path(dist.broadcast_object(str(run_dir)))
    if trainer.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        g = sum(p.numel() for p in trainer.model.G.parameters())
        d = sum(p.numel() for p in trainer.model.D.parameters())
        spec = trainer.data.spec
        print(
            f"{cfg.model} ({cfg.preset}): G {g:,} params, D {d:,}; {spec.name} {cfg.data.split} "
            f"{len(trainer.data):,} images {spec.channels}x{spec.resolution}x{spec.resolution}; "
            f"{trainer.world} x {trainer.device}; run folder {run_dir}",
            file=sys.stderr,
        )
    dist.barrier()
    result = trainer.fit()
    if trainer.main:
        summary = write_summary(run_dir, cfg, result, trainer)
        print(summary)
    dist.barrier()
    return run_dir


def write_summary(run_dir: Path, cfg: RunConfig, result: dict[str, Any], trainer: Any) -> str:
    """A short human-readable account of the run, also written to ``summary.md``."""
    losses = ", ".join(f"{k} {v:.3f}" for k, v in result["losses"].items())
    samples = sorted((run_dir / "samples").glob("step-*.png"))
    lines = [
        f"# {run_dir.name}",
        "",
        f"- model: {cfg.model}, preset {cfg.preset}",
        f"- data: {cfg.data.name} ({cfg.data.split}), {len(trainer.data):,} images",
        f"- steps: {result['steps']:,} at batch {cfg.train.batch_size} "
        f"({result['steps_this_session']:,} in this session, {result['seconds']:.0f} s, "
        f"{result['images_per_s']:.0f} images/s on {trainer.world} x {trainer.device})",
        f"- final losses (mean of the last logging interval): {losses}",
        f"- samples: {samples[-1] if samples else 'none'}",
        f"- checkpoint: {run_dir / CHECKPOINT_DIR}",
        f"- logs: {run_dir / 'metrics.jsonl'}, TensorBoard: tensorboard --logdir {run_dir / 'tb'}",
    ]
    text = "\n".join(lines) + "\n"
    (run_dir / "summary.md").write_text(text)
    return text


@dataclass
class LoadedModel:
    """A trained model ready to use: ``generate`` images, inspect ``config`` and ``spec``."""

    model: GANModel
    config: RunConfig
    spec: DataSpec
    step: int
    path: Path

    def generate(
        self,
        n: int | None = None,
        labels: torch.Tensor | list[int] | int | None = None,
        *,
        z: torch.Tensor | None = None,
        seed: int | None = None,
        truncation: float = 1.0,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        """``n`` images ``[n, C, H, W]`` in [-1, 1] from the EMA generator; ``z`` gives the
        latents ``[n, z_dim]`` explicitly (see `GANModel.generate`)."""
        return self.model.generate(
            n, labels, z=z, seed=seed, truncation=truncation, noise_mode=noise_mode
        )

    @property
    def conditional(self) -> bool:
        return self.model.conditional


def load(run_dir: str | Path, *, checkpoint: str | None = None, device: str = "cpu") -> LoadedModel:
    """Load the newest good checkpoint of a run (or ``checkpoint``, a step folder's name or
    path).  Only tensors and JSON are read: nothing stored in the run is executed."""
    from .engine.trainer import resolve_device

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder '{run_dir}' does not exist")
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_dir():
            path = run_dir / CHECKPOINT_DIR / checkpoint
        try:
            ckpt = read_checkpoint(path)
        except ValueError as err:
            raise UserError(f"checkpoint '{path}' cannot be loaded: {err}") from None
    else:
        ckpt = latest_good_checkpoint(
            run_dir, need_state=False, warn=lambda m: print(m, file=sys.stderr)
        )
    meta = ckpt.meta
    cfg = build_config(meta["family"], meta.get("preset"), file_data=meta["config"])
    spec = DataSpec.from_dict(meta["data_spec"])
    model = get_family(cfg.model)(cfg.family, spec)
    model.load_state_dict(ckpt.weights)
    model.to(resolve_device(device)).eval()
    return LoadedModel(model=model, config=cfg, spec=spec, step=ckpt.step, path=ckpt.path)
