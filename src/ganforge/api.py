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
        counts = ", ".join(
            f"{name} {sum(p.numel() for p in net.parameters()):,}"
            for name, net in trainer.model.networks().items()
        )
        spec = trainer.data.spec
        print(
            f"{cfg.model} ({cfg.preset}): params {counts}; {spec.name} {cfg.data.split} "
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
    dist.shutdown()
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
    def task(self) -> Any:
        """What the model takes and gives (`ganforge.models.base.Task`)."""
        return self.model.task

    def generator(self, ema: bool = True) -> torch.nn.Module:
        return self.model.generator(ema)

    def eval_outputs(self, batch: dict[str, torch.Tensor], **options: Any):
        return self.model.eval_outputs(batch, **options)


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


# ----- what the CLI calls beyond train/load: each command is one function here ---------------
# The CLI imports only this module and `errors`; the functions below are the doors to the
# lower layers it needs, so that its start (argparse, --help) loads nothing heavy.


def list_datasets() -> list[tuple[str, str]]:
    """``(name as typed, doc line)`` of every registered data source: those that take an
    argument are written with it (``folder:PATH``, ``masked:SOURCE``), as their doc line
    begins."""
    from .data import sources  # noqa: F401  (importing it registers the sources)
    from .registry import DATASETS

    out = []
    for name in DATASETS:
        doc = DATASETS.doc(name)
        usage, sep, rest = doc.partition(" - ")
        if sep and usage.startswith(f"{name}:"):
            out.append((usage, rest))
        else:
            out.append((name, doc))
    return out


def describe_models() -> list[tuple[str, str, list[str], str]]:
    """``(name, doc line, preset names, default preset)`` of every registered family."""
    return [
        (n, MODELS.doc(n), list(get_family(n).PRESETS), get_family(n).DEFAULT_PRESET)
        for n in MODELS
    ]


def parse_overrides(texts: list[str]) -> list[tuple[str, str]]:
    """``["lr_g=1e-4", "train.log_every=10"]`` -> ``[("lr_g", "1e-4"), ...]`` (values are
    typed later, against the config); a text without ``=`` is a `UserError`."""
    from .config import parse_override

    return [parse_override(text) for text in texts]


def summary(
    model: str,
    *,
    preset: str | None = None,
    overrides: list[tuple[str, Any]] | None = None,
    channels: int = 1,
    classes: int = 10,
) -> str:
    """The layer table of a family's untrained networks for ``channels``-channel data with
    ``classes`` classes, under a header naming the preset and image size."""
    from .tools.summary import summary_text

    cfg = build_config(model, preset, overrides=overrides)
    r = cfg.family.resolution
    spec = DataSpec(
        channels=channels,
        resolution=r,
        num_classes=classes,
        class_names=tuple(str(i) for i in range(classes)),
        name="summary",
    )
    built = create_model(model, preset, spec, **dict(overrides or []))
    return f"{model} (preset {cfg.preset}), {channels}x{r}x{r} images\n\n{summary_text(built)}"


def _output(out: str | Path | None, run: str | Path, *default: str) -> Path:
    return Path(out) if out else Path(run).joinpath(*default)


def write_samples(
    run: str | Path,
    *,
    n: int = 64,
    label: int | None = None,
    seed: int = 0,
    truncation: float = 1.0,
    noise_mode: str = "const",
    checkpoint: str | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write a PNG grid of ``n`` images of a run (default ``RUN/samples/sample-seed<S>.png``;
    conditional models without ``label``: one column per class).  Returns the PNG and the
    checkpoint the images came from."""
    from .images import save_grid

    g = load(run, checkpoint=checkpoint, device=device)
    nrow = g.spec.num_classes if g.model.task.labels and label is None else None
    images = g.generate(n, labels=label, seed=seed, truncation=truncation, noise_mode=noise_mode)
    path = _output(out, run, "samples", f"sample-seed{seed}.png")
    save_grid(images, path, nrow=nrow)
    return path, g.path


def write_code_sweep(
    run: str | Path,
    code: str,
    *,
    n: int = 64,
    seed: int = 0,
    checkpoint: str | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
) -> tuple[Path, Path]:
    """InfoGAN: write a grid of ``n // 10`` rows (at least one), each varying latent ``code``
    (``cat``, ``cont0``, ...) along the row.  Returns the PNG and the checkpoint."""
    from .images import save_grid

    g = load(run, checkpoint=checkpoint, device=device)
    if not hasattr(g.model, "vary"):
        raise UserError(
            f"--vary needs a model with latent codes (infogan); '{run}' is a {g.config.model} run"
        )
    rows = max(1, n // 10)
    images = g.model.vary(code, rows=rows, seed=seed)
    path = _output(out, run, "samples", f"vary-{code}.png")
    save_grid(images, path, nrow=len(images) // rows)
    return path, g.path


def parse_int_list(text: str, option: str) -> list[int]:
    """``"1,2,5"``, ``"0-3"`` (inclusive) or ``"0-2,7"`` -> ints; a `UserError` naming
    ``option`` otherwise."""
    from .tools.latent import parse_int_list as parse

    return parse(text, option)


def write_walk(
    run: str | Path,
    seeds: str,
    *,
    frames: int = 60,
    space: str | None = None,
    truncation: float = 1.0,
    label: int | None = None,
    loop: bool = False,
    fps: float = 20.0,
    checkpoint: str | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
) -> tuple[Path, Path, int]:
    """Write an animated GIF walking through the latents of ``seeds`` (``"1,2,3"``; see
    `ganforge.interpolate`).  Returns the GIF, the checkpoint and the number of frames."""
    from .tools.latent import interpolate, save_gif

    order = parse_int_list(seeds, "--seeds")
    if not fps > 0:
        raise UserError(f"--fps {fps} must be positive (e.g. 20)")
    g = load(run, checkpoint=checkpoint, device=device)
    images = interpolate(
        g, order, frames, space=space, truncation=truncation, labels=label, loop=loop
    )
    path = _output(out, run, "samples", f"walk-{'-'.join(map(str, order[:8]))}.gif")
    save_gif(images, path, fps=fps)
    return path, g.path, len(images)


def write_mix(
    run: str | Path,
    rows: str,
    cols: str,
    layers: str,
    *,
    truncation: float = 1.0,
    label: int | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write the style-mixing figure (see `ganforge.style_mix`) of a style-based run as a PNG
    (default ``RUN/samples/mix.png``).  Returns the PNG and the checkpoint."""
    from .images import save_grid
    from .tools.latent import style_mix

    row_seeds = parse_int_list(rows, "--rows")
    col_seeds = parse_int_list(cols, "--cols")
    parse_int_list(layers, "--layers")  # a malformed list fails before the load
    g = load(run, checkpoint=checkpoint, device=device)
    cells = style_mix(g, row_seeds, col_seeds, layers, truncation=truncation, label=label)
    path = _output(out, run, "samples", "mix.png")
    save_grid(cells, path, nrow=len(col_seeds) + 1)
    return path, g.path


def write_projection(
    run: str | Path,
    target: str | Path,
    *,
    steps: int = 500,
    lr: float = 0.1,
    noise: bool = False,
    seed: int = 0,
    label: int | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
    progress: bool = True,
) -> tuple[Path, Any]:
    """Project the image file ``target`` into a style-based run's W (see `ganforge.project`)
    and write ``reconstruction.png``, ``target.png`` and ``latent.safetensors`` (w, and the
    noise maps as ``noise.NAME``) into ``out`` (default ``RUN/projections/TARGET-NAME``).
    Returns the folder and the `ProjectionResult` (``psnr`` in dB, ``distance``)."""
    from safetensors.torch import save_file

    from .images import save_image, to_uint8
    from .tools.latent import project

    target = Path(target)
    if not target.is_file():
        raise UserError(f"target image '{target}' does not exist")
    g = load(run, checkpoint=checkpoint, device=device)
    result = project(
        g, target, steps=steps, lr=lr, noise=noise, seed=seed, label=label, progress=progress
    )
    folder = _output(out, run, "projections", target.stem)
    save_image(to_uint8(result.image)[0], folder / "reconstruction.png")
    save_image(to_uint8(result.target)[0], folder / "target.png")
    tensors = {"w": result.w.contiguous()}
    tensors.update({f"noise.{k}": v.contiguous() for k, v in result.noise_buffers.items()})
    meta = {
        "run": str(g.path),
        "target": str(target),
        "steps": str(steps),
        "psnr": f"{result.psnr:.4f}",
        "distance": result.distance,
    }
    save_file(tensors, str(folder / "latent.safetensors"), metadata=meta)
    return folder, result


def import_network(kind: str, file: str | Path, out: str | Path) -> Path:
    """Turn a published network file into the new run folder ``out`` without executing
    anything stored in it; ``kind``: ``stylegan2`` (a StyleGAN2-ADA PyTorch pickle)."""
    from .tools.imports import import_stylegan2

    if kind != "stylegan2":
        raise UserError(f"cannot import networks of kind {kind!r}; use stylegan2")
    return import_stylegan2(file, out)


def build_features(
    dataset: str, *, data_dir: str | None = None, rebuild: bool = False
) -> dict[str, Any]:
    """Build (or find cached) the domain feature network of a labeled data set; returns its
    record: ``dataset``, ``features`` (width), ``hash``, ``test_accuracy`` and ``file``."""
    from .features.domain import build_domain_network

    _, record = build_domain_network(dataset, data_dir=data_dir, rebuild=rebuild)
    return record


def format_eval_report(report: dict[str, Any]) -> str:
    """The table `ganforge eval` prints for an evaluation report."""
    from .metrics.evaluate import format_report

    return format_report(report)


def evaluate_run(run_dir: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Evaluate the newest good checkpoint of ``run_dir`` (what `ganforge eval RUN` does) and
    write the report to ``RUN/eval.json`` unless ``out`` says where; ``run_dir`` None
    evaluates ``fake`` images instead.  ``options`` are those of
    `ganforge.metrics.evaluate.evaluate` (``metrics``, ``n``, ``split``, ``features``, ``real``,
    ``fake``, ``dataset``, ``data_dir``, ``seed``, ``truncation``, ...); ``dataset`` and
    ``data_dir`` default to the run's.  Imported networks need ``real`` or ``dataset``, since
    their training images are not known here."""
    from .metrics.evaluate import evaluate

    if run_dir is None:
        return evaluate(**options)
    model = load(run_dir)
    known = options.get("dataset") is not None or options.get("real") is not None
    if model.spec.name.startswith("imported") and not known:
        raise UserError(
            f"'{run_dir}' holds imported networks whose training images are not known "
            "here; give --real FOLDER|FILE.npz with images of their domain (or --dataset)"
        )
    if options.get("dataset") is None:  # the run's own data, with its task options
        options["dataset"] = model.config.data.name
        options.setdefault("task_options", model.config.data.task_options())
    options["data_dir"] = options.get("data_dir") or model.config.data.dir
    options["out"] = options.get("out") or Path(run_dir) / "eval.json"
    return evaluate(model=model, source=f"{model.path} (step {model.step})", **options)


def version() -> str:
    """GANForge's version string (what `ganforge --version` prints and checkpoints record)."""
    from ._version import __version__

    return __version__
