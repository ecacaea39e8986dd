"""The Python API: train a run, load one, make images.  The CLI is a thin layer over this."""

from __future__ import annotations

import json
import os
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
    Checkpoint,
    check_tensors,
    latest_good_checkpoint,
    list_checkpoints,
    read_checkpoint,
    remove_leftovers,
)
from .engine.runlock import acquire_run_lock, holds_run
from .engine.trainer import RESUMABLE, changed_settings, flat_settings  # noqa: F401
from .errors import UserError
from .models import get_family
from .models.base import GANModel
from .registry import MODELS

# RESUMABLE (the keys a resume may change) is imported from the trainer, which checks them too


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
    """A run that training must not overwrite: a folder holding a checkpoint.  (A run killed
    before its first checkpoint holds nothing to lose and may be started again.)"""
    return bool(list_checkpoints(path))


def _check_new_run_dir(run_dir: Path) -> None:
    """A new run goes into a new or empty folder, or one a training made and left without a
    checkpoint; a folder of the user's own files is refused, so none of them is replaced."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out '{run_dir}' is a file, not a folder; choose a folder for the run")
    if _is_run(run_dir):
        raise UserError(
            f"'{run_dir}' already holds a run; pass --resume to continue it, or "
            "choose another --out (runs are never overwritten)"
        )
    if not run_dir.is_dir() or holds_run(run_dir) or (run_dir / "config.yaml").exists():
        return
    own = sorted(p.name for p in run_dir.iterdir())
    if own:
        shown = ", ".join(own[:3]) + (", ..." if len(own) > 3 else "")
        raise UserError(
            f"--out '{run_dir}' holds files that are not a GANForge run ({shown}); choose a "
            "new or empty folder (a run never writes among other files)"
        )


def _default_run_dir(cfg: RunConfig, resume: bool) -> Path:
    data = re.sub(r"[^A-Za-z0-9]+", "-", Path(cfg.data.name.split(":", 1)[-1]).name).strip("-")
    base = Path("runs") / f"{cfg.model}-{data or 'data'}"
    if resume:
        return base
    candidate, k = base, 2
    while _taken(candidate):
        candidate, k = base.with_name(f"{base.name}-{k}"), k + 1
    return candidate


def _taken(path: Path) -> bool:
    try:
        _check_new_run_dir(path)
    except UserError:
        return True
    return False


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
    if resume:
        return _resolve_resume(model, preset, file_data, overrides, out)
    preset = preset or file_data.get("preset")
    cfg = build_config(model, preset, file_data=file_data, overrides=overrides)
    run_dir = Path(out) if out else _default_run_dir(cfg, resume)
    _check_new_run_dir(run_dir)
    return cfg, run_dir


def _resolve_resume(
    model: str,
    preset: str | None,
    file_data: dict[str, Any],
    overrides: list[tuple[str, Any]] | None,
    out: str | Path | None,
) -> tuple[RunConfig, Path]:
    """The config of a resumed run: its config.yaml, then the settings of ``--config`` and
    ``--set``, of which only `RESUMABLE` ones may change anything."""
    if out:
        run_dir = Path(out)
    else:
        run_dir = _default_run_dir(build_config(model, preset, file_data=file_data), True)
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
    if not list_checkpoints(run_dir):
        raise UserError(
            f"nothing to resume: '{run_dir}' holds no checkpoint yet (its training stopped "
            "before the first one); drop --resume to start it again"
        )
    saved = read_yaml(saved_file)
    if saved.get("model") != model:
        raise UserError(
            f"'{run_dir}' is a '{saved.get('model')}' run, not '{model}'; "
            f"resume it with 'ganforge train {saved.get('model')} --resume --out {run_dir}'"
        )
    preset = preset or file_data.get("preset")
    if preset not in (None, saved.get("preset")):
        raise UserError(
            f"cannot change the preset when resuming (the run has {saved.get('preset')!r}, "
            f"asked {preset!r}); drop --preset, or start a new run with another --out"
        )
    # a --config file on resume counts as --set options, checked the same way
    from_file = [(k, v) for k, v in flat_settings(file_data).items() if k not in _NAMES]
    asked = [*from_file, *(overrides or [])]
    before = build_config(model, saved.get("preset"), file_data=saved)
    resumed = build_config(model, saved.get("preset"), file_data=saved, overrides=asked)
    changed = changed_settings(before.to_dict(), resumed.to_dict())
    if changed:
        k = changed[0]
        was, now = flat_settings(before.to_dict()).get(k), flat_settings(resumed.to_dict()).get(k)
        raise UserError(
            f"cannot change '{k}' when resuming (the run has {was!r}, asked {now!r}); "
            "start a new run with another --out instead"
        )
    return resumed, run_dir


_NAMES = {"model", "preset"}  # a config file's keys that name the run rather than set it


def _imported(run_dir: Path) -> bool:
    """Whether the run was written by `ganforge import` (its checkpoints say so)."""
    for _, path in list_checkpoints(run_dir):
        try:
            if "imported" in json.loads((path / "meta.json").read_text()):
                return True
        except (OSError, ValueError):
            continue
    return False


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
    resume: bool | str = False,
    device: str | None = None,
    data_dir: str | None = None,
    command: str | None = None,
) -> Path:
    """Train ``model`` and return its run folder.

    Keyword options mirror ``ganforge train``; ``overrides`` are dotted keys
    (``{"lr_g": 1e-4, "train.log_every": 10}``).  ``steps`` is the run's total: resuming a run
    of 500 steps with ``steps=1000`` trains 500 more.  ``resume="auto"`` resumes when the run
    folder holds a checkpoint and starts the run otherwise.  ``command`` is what started this
    session, recorded in ``RUN/commands.txt`` (default: this call, written as Python); an
    export's model card quotes it."""
    if command is None:
        given = {
            "preset": preset,
            "dataset": dataset,
            "steps": steps,
            "batch_size": batch_size,
            "out": None if out is None else str(out),
            "seed": seed,
            "config": None if config is None else str(config),
            "overrides": overrides,
            "resume": resume or None,
            "device": device,
            "data_dir": data_dir,
        }
        args = "".join(f", {k}={v!r}" for k, v in given.items() if v is not None)
        command = f"ganforge.train({model!r}{args})"
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
    if resume == "auto":
        resume = _holds_checkpoint(model, preset, config, pairs, out)
    elif not isinstance(resume, bool):
        raise UserError(f"resume must be True, False or 'auto', not {resume!r}")
    request = {"preset": preset, "config": config, "overrides": pairs, "resume": resume}
    cfg, run_dir = resolve_run(model, out=out, **request)
    # One writer per run folder; under torchrun rank 0 writes for all and holds the lock (if
    # it refuses, torchrun stops the other processes with it).
    lock = acquire_run_lock(run_dir) if int(os.environ.get("RANK", "0")) == 0 else None
    try:
        if lock is not None:
            # asked again under the lock: another training may have filled the folder meanwhile
            cfg, run_dir = resolve_run(model, out=run_dir, **request)
            remove_leftovers(run_dir)  # temporary folders of killed writes: no writer is alive
        return _train_locked(cfg, run_dir, resume, command)
    finally:
        if lock is not None:
            lock.release()


#: What started each training session of a run, one line each (``step N: COMMAND``).
COMMANDS_FILE = "commands.txt"


def _holds_checkpoint(
    model: str,
    preset: str | None,
    config: str | Path | None,
    overrides: list[tuple[str, Any]],
    out: str | Path | None,
) -> bool:
    """Whether the folder a training would resume (``out``, else runs/MODEL-DATASET) holds a
    checkpoint: what ``resume="auto"`` resumes.  A folder without one is started afresh."""
    if out is None:
        file_data = read_yaml(config) if config else {}
        cfg = build_config(
            model, preset or file_data.get("preset"), file_data=file_data, overrides=overrides
        )
        out = _default_run_dir(cfg, resume=True)
    return Path(out).is_dir() and _is_run(Path(out))


def _train_locked(cfg: RunConfig, run_dir: Path, resume: bool, command: str) -> Path:
    from .engine.trainer import Trainer

    # Under torchrun every process resolves the same request; rank 0's folder choice wins.
    trainer = Trainer(cfg, run_dir, resume=resume)
    run_dir = trainer.run_dir = Path(dist.broadcast_object(str(run_dir)))
    if resume and trainer.step >= cfg.train.steps:
        if trainer.step > cfg.train.steps:
            raise UserError(
                f"--steps {cfg.train.steps} is below the step {trainer.step} that '{run_dir}' "
                f"has reached; --steps is the run's total (e.g. --steps {2 * trainer.step} "
                f"trains {trainer.step} more); nothing was changed"
            )
        if trainer.main:
            print(
                f"'{run_dir}' is already at step {trainer.step} of {cfg.train.steps}; nothing "
                "to train (pass a higher --steps to continue)",
                file=sys.stderr,
            )
        dist.shutdown()
        return run_dir
    if trainer.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        with (run_dir / COMMANDS_FILE).open("a", encoding="utf-8") as record:
            record.write(f"step {trainer.step}: {command}\n")  # one line per session
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
    """A short human-readable account of the run, also written to ``summary.md``, with the
    loss curves drawn beside it (when matplotlib is installed)."""
    from .engine.logger import write_loss_curve

    losses = ", ".join(f"{k} {v:.3f}" for k, v in result["losses"].items())
    curve = write_loss_curve(run_dir)
    curve_line = (
        f"- loss curves: {curve}"
        if curve
        else '- loss curves: not drawn (pip install "ganforge[plots]" for RUN/losses.png)'
    )
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
        *(f"- {key}: {value}" for key, value in trainer.model.training_notes().items()),
        f"- samples: {samples[-1] if samples else 'none'}",
        curve_line,
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
        truncation: float | None = None,
        noise_mode: str = "const",
        **options: Any,
    ) -> torch.Tensor:
        """``n`` images ``[n, C, H, W]`` in [-1, 1] from the EMA generator; ``z`` gives the
        latents ``[n, z_dim]`` explicitly (see `GANModel.generate`); ``options``: the family's
        own (``ema=False`` for the non-averaged G; stylegan2-pytorch: ``noise``)."""
        return self.model.generate(
            n, labels, z=z, seed=seed, truncation=truncation, noise_mode=noise_mode, **options
        )

    @property
    def task(self) -> Any:
        """What the model takes and gives (`ganforge.models.base.Task`)."""
        return self.model.task

    @property
    def TRUNCATION(self) -> str:  # noqa: N802 - the family's class constant, passed through
        """What ``truncation`` means for this model: ``psi`` or ``threshold`` (BigGAN)."""
        return self.model.TRUNCATION

    def set_input_transform(
        self, translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0
    ) -> None:
        """StyleGAN3: translate (image widths) and rotate (degrees) the images, as the
        release's gen_images.py ``--translate``/``--rotate`` do; changes this loaded copy."""
        _input_transform(self, self.path, tuple(translate), rotate)

    def standing_stats(self, *, truncation: float | None = None, seed: int = 0) -> None:
        """Re-estimate the generator's batch-norm statistics over many batches of G drawn
        with ``truncation`` ("standing statistics", BigGAN); changes this loaded copy only."""
        standing = getattr(self.model, "accumulate_standing_stats", None)
        if standing is None:
            raise UserError(
                f"--standing-stats re-estimates a generator's batch-norm statistics (biggan); "
                f"'{self.path}' is a {self.config.model} run"
            )
        standing(truncation=truncation, seed=seed)

    def generator(self, ema: bool = True) -> torch.nn.Module:
        return self.model.generator(ema)

    def training_notes(self) -> dict[str, str]:
        """What reports say of how the model was trained beyond its config (`GANModel`)."""
        return self.model.training_notes()

    def eval_outputs(self, batch: dict[str, torch.Tensor], **options: Any):
        return self.model.eval_outputs(batch, **options)

    def translate(
        self, images: torch.Tensor, *, direction: str | None = None, **options: Any
    ) -> torch.Tensor:
        """Image-to-image models: ``images [N, C, H, W]`` in [-1, 1] translated, the same
        size (cyclegan: ``direction`` "a2b", the default, or "b2a"; pix2pix: ``seed`` of its
        test-time dropout; see each family's ``translate``)."""
        return self.model.translate(images, direction=direction, **options)

    def inpaint(self, images: torch.Tensor, masks: torch.Tensor, **options: Any) -> torch.Tensor:
        """Inpainting models: ``images [N, C, H, W]`` in [-1, 1] with the holes of ``masks``
        ``[N, 1, H, W]`` (1 = hole) filled, the known pixels kept."""
        return self.model.inpaint(images, masks, **options)

    def upscale(self, images: torch.Tensor, **options: Any) -> torch.Tensor:
        """Super-resolution models: ``images [N, C, H, W]`` in [-1, 1] -> ``[N, C, fH, fW]``."""
        return self.model.upscale(images, **options)


def load(run_dir: str | Path, *, checkpoint: str | None = None, device: str = "cpu") -> LoadedModel:
    """Load the newest good checkpoint of a run (or ``checkpoint``, a step folder's name or
    path), or a folder `export` wrote, or such a folder on the Hugging Face Hub by its id
    ``owner/name[@revision]`` (when no local folder has that name; needs the ``hub`` extra).
    Only tensors and JSON are read: nothing stored in the run is executed."""
    from .engine.trainer import resolve_device
    from .tools.export import download_from_hub, is_export, looks_like_hub_id, read_export

    name, run_dir = str(run_dir), Path(run_dir)
    if not run_dir.exists() and looks_like_hub_id(name):  # owner/name: an export on the Hub
        run_dir = download_from_hub(name)
    if not run_dir.is_dir():
        raise UserError(f"run folder '{run_dir}' does not exist")
    if is_export(run_dir):  # a folder `ganforge export` wrote: its generator only
        if checkpoint:
            raise UserError(
                f"'{run_dir}' is an exported model without checkpoints; drop --checkpoint"
            )
        cfg, spec, model, step = read_export(run_dir)
        model.to(resolve_device(device)).eval()
        return LoadedModel(model=model, config=cfg, spec=spec, step=step, path=run_dir)
    built: dict[str, Any] = {}

    def build(ckpt: Checkpoint) -> None:  # a checkpoint whose tensors do not fit: ValueError
        built["parts"] = _model_for(ckpt)

    if checkpoint:
        path = Path(checkpoint)
        if not path.is_dir():
            path = run_dir / CHECKPOINT_DIR / checkpoint
        try:
            ckpt = read_checkpoint(path)
            build(ckpt)
        except ValueError as err:
            raise UserError(f"checkpoint '{path}' cannot be loaded: {err}") from None
    else:
        ckpt = latest_good_checkpoint(
            run_dir, need_state=False, warn=lambda m: print(m, file=sys.stderr), accept=build
        )
    cfg, spec, model = built["parts"]
    model.load_state_dict(ckpt.weights)
    model.to(resolve_device(device)).eval()
    return LoadedModel(model=model, config=cfg, spec=spec, step=ckpt.step, path=ckpt.path)


def _model_for(ckpt: Checkpoint) -> tuple[RunConfig, DataSpec, GANModel]:
    """The untrained model a checkpoint's meta.json describes; ValueError when it describes
    none, or when the checkpoint's tensors do not have the model's names and shapes."""
    meta = ckpt.meta
    try:
        cfg = build_config(meta["family"], meta.get("preset"), file_data=meta["config"])
        spec = DataSpec.from_dict(meta["data_spec"])
    except (UserError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"meta.json does not describe a model ({err})") from None
    model = get_family(cfg.model)(cfg.family, spec)
    check_tensors(ckpt.weights, model.state_dict())
    return cfg, spec, model


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

    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0:
        raise UserError(f"--classes {classes!r}: use 0 (unconditional) or more classes, e.g. 10")
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


def _output_file(out: str | Path | None, run: str | Path, *default: str) -> Path:
    """`_output` for a file: refused, before any image is made, when it names a folder or
    lies under a file (where no folder can be made)."""
    path = _output(out, run, *default)
    if path.is_dir():
        example = path / Path(default[-1]).name
        raise UserError(f"--out '{path}' is a folder; name the file to write, e.g. {example}")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"--out '{path}' lies under '{blocking}', which is a file, not a folder")
    return path


def write_samples(
    run: str | Path,
    *,
    n: int = 64,
    label: int | None = None,
    seed: int = 0,
    truncation: float | None = None,
    noise_mode: str = "const",
    checkpoint: str | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
    standing_stats: bool = False,
    translate: tuple[float, float] | None = None,
    rotate: float | None = None,
    text: str | None = None,
    stage: int | None = None,
) -> tuple[Path, Path]:
    """Write a PNG grid of ``n`` images of a run (default ``RUN/samples/sample-seed<S>.png``;
    conditional models without ``label``: one column per class; image-to-image models: their
    preview of the first ``n`` test items, e.g. cyclegan's six rows A, G_AB(A), G_BA(G_AB(A)),
    B, G_BA(B), G_AB(G_BA(B)) of ``n // 6`` columns).  ``standing_stats``: re-estimate the
    batch-norm statistics first (biggan).  Text-to-image models (stackgan): images for
    caption ``text``, or for ``n`` captions of the test split, each printed under its image;
    ``stage`` 1 shows the Stage-I images.  Returns the PNG and the checkpoint the images
    came from."""
    from .images import check_grid_fits, save_grid

    g = load(run, checkpoint=checkpoint, device=device)
    _input_transform(g, run, translate, rotate)
    check_grid_fits(n, g.spec.resolution, "--n")  # before a single image is made
    if g.model.task.text:
        if label is not None:
            raise UserError(f"--class is for class-conditional models; '{run}' takes captions")
        images, captions = _captioned_samples(g, n, seed, text, stage, truncation)
        path = _output_file(out, run, "samples", f"sample-seed{seed}.png")
        return _save_captioned_grid(images, captions, path), g.path
    if text is not None or stage is not None:
        raise UserError(
            f"--text and --stage are for text-to-image models (stackgan); '{run}' is a "
            f"{g.config.model} run"
        )
    if g.model.task.kind != "noise":  # image families: their preview of the test split
        if label is not None:
            raise UserError(f"--class is for class-conditional models; '{run}' is not one")
        images, nrow = g.model.preview(n, seed, _preview_batch(g, n))
    else:
        nrow = g.spec.num_classes if g.model.task.labels and label is None else None
        if standing_stats:
            g.standing_stats(truncation=truncation, seed=seed)
        images = g.generate(
            n, labels=label, seed=seed, truncation=truncation, noise_mode=noise_mode
        )
    path = _output_file(out, run, "samples", f"sample-seed{seed}.png")
    save_grid(images, path, nrow=nrow)
    return path, g.path


def _captioned_samples(
    g: LoadedModel, n: int, seed: int, text: str | None, stage: int | None, truncation
) -> tuple[torch.Tensor, list[str]]:
    """Images of a text-to-image model and the caption of each: ``text`` for all of them,
    or ``n`` items of the test split drawn with ``seed`` (their sentence embeddings for a
    run on precomputed ones; the class name when no caption text exists)."""
    options = {"seed": seed, "stage": 2 if stage is None else stage, "truncation": truncation}
    if text is not None:
        return g.generate(n, text=[text], **options), [text] * n
    data = _caption_data(g)
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    if n > len(data):
        index = index.repeat(-(-n // len(data)))[:n]
    if getattr(g.spec, "text_embedding_dim", 0) > 0:
        embedding = data.batch(index)["embedding"]
        if getattr(data, "has_texts", False):
            captions = data.texts(index)
        else:
            names = g.spec.class_names
            labels = data.batch(index)["label"].tolist()
            captions = [f"({names[k] if names else k})" for k in labels]
        return g.generate(n, embedding=embedding, **options), captions
    captions = data.texts(index)
    return g.generate(n, text=captions, **options), captions


def _caption_data(g: LoadedModel) -> Any:
    """The run's test split, or its training split where the data has no test split."""
    from .data import load_dataset

    d = g.config.data
    load = {
        "resolution": g.config.family.resolution,
        "channels": d.channels,
        "data_dir": d.dir,
        "download": d.download,
        "options": d.task_options(),
    }
    try:
        return load_dataset(d.name, split="test", **load)
    except UserError as err:
        print(f"note: {err}; the captions come from the training split", file=sys.stderr)
        return load_dataset(d.name, split="train", **load)


#: the least side a captioned grid shows an image at, and the caption lines under it
CAPTION_CELL, CAPTION_LINES = 96, 5


def captioned_grid(images: torch.Tensor, captions: list[str], nrow: int | None = None):
    """A PIL image of ``images`` [N, C, H, W] in [-1, 1] in a grid (``nrow`` a row, default
    near-square), each enlarged (nearest) to at least CAPTION_CELL px with its caption
    printed under it in Pillow's built-in font, wrapped to the cell's width (at most
    CAPTION_LINES lines; a longer caption ends in "...")."""
    import math

    from PIL import Image, ImageDraw, ImageFont

    from .images import to_uint8

    pictures = to_uint8(images)
    n, h, w, c = pictures.shape
    scale = max(1, math.ceil(CAPTION_CELL / max(h, w)))
    font = ImageFont.load_default()
    line = 11  # the built-in font's line height in px
    cell_w, cell_h = w * scale + 8, h * scale + 6 + CAPTION_LINES * line
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    sheet = Image.new("RGB", (nrow * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        x, y = (i % nrow) * cell_w + 4, (i // nrow) * cell_h + 2
        tile = Image.fromarray(pictures[i, ..., 0] if c == 1 else pictures[i]).convert("RGB")
        sheet.paste(tile.resize((w * scale, h * scale), Image.NEAREST), (x, y))
        wrapped = _wrap(captions[i], cell_w - 8, lambda t: draw.textlength(t, font=font))
        for k, text in enumerate(wrapped):
            draw.text((x, y + h * scale + 2 + k * line), text, fill="black", font=font)
    return sheet


def _wrap(text: str, width: float, length) -> list[str]:
    """``text`` in lines no wider than ``width`` (``length`` measures a line), word by word;
    at most CAPTION_LINES, the last ending in "..." when the text goes on."""
    lines: list[str] = []
    for word in text.split():
        if lines and length(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > CAPTION_LINES:
        lines = lines[:CAPTION_LINES]
        lines[-1] += " ..."
    return lines


def _save_captioned_grid(images: torch.Tensor, captions: list[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    captioned_grid(images, captions).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def write_text_walk(
    run: str | Path,
    texts: list[str],
    *,
    frames: int = 60,
    seed: int = 0,
    stage: int | None = None,
    fps: float = 20.0,
    checkpoint: str | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
) -> tuple[Path, Path, int]:
    """Text-to-image models: an animated GIF walking from caption to caption of ``texts`` in
    the condition space (the conditioning augmentation's means), z fixed by ``seed``.
    Returns the GIF, the checkpoint and the number of frames."""
    from .images import check_frames_fit
    from .tools.latent import save_gif

    if not fps > 0:
        raise UserError(f"--fps {fps} must be positive (e.g. 20)")
    g = load(run, checkpoint=checkpoint, device=device)
    walk = getattr(g.model, "text_walk", None)
    if walk is None:
        raise UserError(
            f"--texts walks between captions of a text-to-image model (stackgan); '{run}' is "
            f"a {g.config.model} run (use --seeds)"
        )
    check_frames_fit(frames, g.spec.channels, g.spec.resolution, "--frames")
    images = walk(list(texts), frames, seed=seed, stage=2 if stage is None else stage)
    path = _output_file(out, run, "samples", "walk-texts.gif")
    save_gif(images, path, fps=fps)
    return path, g.path, frames


def _input_transform(
    g: LoadedModel, run: str | Path, translate: tuple[float, float] | None, rotate: float | None
) -> None:
    """StyleGAN3's image translation and rotation (gen_images.py's --translate, --rotate), for
    this sampling only; without either the run's stored transform stays."""
    if translate is None and rotate is None:
        return
    set_transform = getattr(g.model, "set_input_transform", None)
    if set_transform is None:
        raise UserError(
            f"--translate and --rotate move StyleGAN3's Fourier features; '{run}' is a "
            f"{g.config.model} run (import a StyleGAN3 network with 'ganforge import stylegan3')"
        )
    set_transform(translate=translate or (0.0, 0.0), rotate=rotate or 0.0)


SEED_IMAGES_LIMIT = 100_000  # seeds one `sample --seeds` call draws; an npz holds them all


def write_seed_images(
    run: str | Path,
    seeds: str,
    outdir: str | Path,
    *,
    fmt: str = "png",
    label: int | None = None,
    truncation: float | None = None,
    noise_mode: str = "const",
    checkpoint: str | None = None,
    device: str = "cpu",
    standing_stats: bool = False,
    translate: tuple[float, float] | None = None,
    rotate: float | None = None,
) -> tuple[list[Path], Path]:
    """One image per seed of ``seeds`` (``"0-99"``, ``"1,5,9"``), seed ``s`` drawn as
    ``generate(1, seed=s)``: ``fmt`` "png" writes ``OUTDIR/seed0007.png`` each, "npz" one
    ``OUTDIR/images.npz`` (``images`` uint8 ``[N, H, W, C]``, ``seeds`` int64 ``[N]``, what
    ``ganforge eval --fake`` reads).  Files already there are never replaced.  Returns the
    files written and the checkpoint."""
    import numpy as np

    from .images import save_image, to_uint8

    order = parse_int_list(seeds, "--seeds")
    if len(order) > SEED_IMAGES_LIMIT or max(order) >= 2**32:
        raise UserError(
            f"--seeds {seeds!r}: use at most {SEED_IMAGES_LIMIT:,} seeds from 0 to 2^32 - 1 "
            "(split a larger set over several calls)"
        )
    if fmt not in ("png", "npz"):
        raise UserError(f"--format {fmt!r}: use png or npz")
    folder = Path(outdir)
    names = [f"seed{s:04d}.png" for s in order] if fmt == "png" else ["images.npz"]
    targets = [folder / name for name in dict.fromkeys(names)]
    taken = next((t for t in targets if t.exists()), None)
    if taken is not None:
        raise UserError(f"'{taken}' already exists; choose a new --outdir (never overwritten)")
    g = load(run, checkpoint=checkpoint, device=device)
    if g.model.task.kind != "noise":
        raise UserError(f"--seeds draws images from noise; '{run}' is an image-to-image model")
    _input_transform(g, run, translate, rotate)
    if standing_stats:
        g.standing_stats(truncation=truncation)
    arrays = []
    for s in dict.fromkeys(order):  # one image at a time: memory stays flat for any count
        image = to_uint8(
            g.generate(1, labels=label, seed=s, truncation=truncation, noise_mode=noise_mode)
        )[0]
        if fmt == "png":
            save_image(image, folder / f"seed{s:04d}.png")
        else:
            arrays.append(image)
    if fmt == "npz":
        folder.mkdir(parents=True, exist_ok=True)
        kept = np.asarray(list(dict.fromkeys(order)), dtype=np.int64)
        np.savez(targets[0], images=np.stack(arrays), seeds=kept)
    return targets, g.path


def _preview_batch(g: LoadedModel, n: int) -> dict[str, torch.Tensor]:
    """The first ``n`` items of the run's test split, as training previews them."""
    from .data import load_dataset

    d = g.config.data
    test = load_dataset(
        d.name,
        split="test",
        resolution=g.config.family.resolution,
        channels=d.channels,
        data_dir=d.dir,
        download=d.download,
        options=d.task_options(),
    )
    batch = test.batch(torch.arange(min(n, len(test))))
    return {k: v.to(g.model.device) for k, v in batch.items()}


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
    path = _output_file(out, run, "samples", f"vary-{code}.png")
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
    truncation: float | None = None,
    label: int | list[int] | None = None,
    loop: bool = False,
    fps: float = 20.0,
    checkpoint: str | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
) -> tuple[Path, Path, int]:
    """Write an animated GIF walking through the latents of ``seeds`` (``"1,2,3"``; see
    `ganforge.interpolate`).  Returns the GIF, the checkpoint and the number of frames."""
    from .images import check_frames_fit
    from .tools.latent import interpolate_chunks, save_gif

    order = parse_int_list(seeds, "--seeds")
    if not fps > 0:
        raise UserError(f"--fps {fps} must be positive (e.g. 20)")
    g = load(run, checkpoint=checkpoint, device=device)
    check_frames_fit(frames, g.spec.channels, g.spec.resolution, "--frames")
    chunks = interpolate_chunks(
        g, order, frames, space=space, truncation=truncation, labels=label, loop=loop
    )
    path = _output_file(out, run, "samples", f"walk-{'-'.join(map(str, order[:8]))}.gif")
    save_gif(chunks, path, fps=fps)  # the float frames stream by, one chunk at a time
    return path, g.path, frames


def write_mix(
    run: str | Path,
    rows: str,
    cols: str,
    layers: str,
    *,
    truncation: float | None = None,
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
    path = _output_file(out, run, "samples", "mix.png")
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


def export(run: str | Path, out: str | Path, *, checkpoint: str | None = None, n: int = 64) -> Path:
    """Write ``out``, a folder others use without the run: ``model.safetensors`` (the tensors
    of the generator, EMA when kept), ``config.json``, a ``README.md`` model card and a grid
    of ``n`` samples (seed 0).  ``ganforge.load(out)`` loads it.  An existing non-empty
    ``out`` is refused; nothing is written there until the export is whole."""
    from .tools.export import write_export

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            f"'{out}' already exists and is not empty; choose a new folder to export to"
        )
    g = load(run, checkpoint=checkpoint)
    if g.model.task.kind != "noise":
        grid, nrow = g.model.preview(n, 0, _preview_batch(g, n))
    else:
        nrow = g.spec.num_classes if g.model.task.labels else None
        grid = g.generate(n, seed=0)
    return write_export(g.model, g.config, g.spec, g.step, Path(run), out, grid, nrow)


def import_network(kind: str, file: str | Path, out: str | Path) -> Path:
    """Turn a published network file into the new run folder ``out`` without executing
    anything stored in it; ``kind``: ``stylegan2`` (a StyleGAN2 pickle of StyleGAN2-ADA PyTorch
    or of the StyleGAN3 release, a file or its URL), ``stylegan3`` (a StyleGAN3-T/-R pickle,
    a file or its URL), ``biggan`` (BigGAN-PyTorch's
    ``G.pth``/``G_ema.pth``, with ``D.pth`` beside it) or ``stylegan2-pytorch`` (lucidrains'
    ``models/NAME/model_N.pt``, or the folder, with the ``.config.json`` beside it)."""
    from .tools.imports import import_biggan, import_stylegan2
    from .tools.stylegan2_pytorch import import_stylegan2_pytorch
    from .tools.stylegan3_pickle import import_stylegan3

    importers = {
        "stylegan2": import_stylegan2,
        "stylegan3": import_stylegan3,
        "biggan": import_biggan,
        "stylegan2-pytorch": import_stylegan2_pytorch,
    }
    if kind not in importers:
        raise UserError(f"cannot import networks of kind {kind!r}; use {', '.join(importers)}")
    return importers[kind](file, out)


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
    write the report to ``RUN/eval.json`` unless ``out`` says where (``checkpoint``, a step
    folder's name, evaluates that one; the model runs on ``device``, ``cpu`` by default);
    ``run_dir`` None evaluates ``fake`` images instead.  ``options`` are those of
    `ganforge.metrics.evaluate.evaluate` (``metrics``, ``n``, ``split``, ``features``, ``real``,
    ``fake``, ``dataset``, ``data_dir``, ``seed``, ``truncation``, ...); ``dataset`` and
    ``data_dir`` default to the run's.  Imported networks need ``real`` or ``dataset``, since
    their training images are not known here."""
    from .metrics.evaluate import evaluate

    checkpoint, device = options.pop("checkpoint", None), options.pop("device", None) or "cpu"
    standing = options.pop("standing_stats", False)
    if run_dir is None:
        if checkpoint is not None:
            raise UserError(f"--checkpoint {checkpoint} needs a run folder to evaluate")
        return evaluate(**options)
    model = load(run_dir, checkpoint=checkpoint, device=device)
    if standing:  # standing statistics (biggan): re-estimated before the set is drawn
        model.standing_stats(truncation=options.get("truncation"), seed=options.get("seed", 0))
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


def check_direction(model: GANModel, direction: str | None) -> None:
    """Refuse a ``direction`` the model cannot take: only unpaired models (cyclegan) translate
    both ways; one-way (paired) models take none; noise models translate nothing.  Unknown
    directions of a two-way model are the model's to refuse (`GANModel.translate`)."""
    kind, name = model.task.kind, type(model).__name__.lower()
    _needs(
        model, ("paired", "unpaired"), "translate", "an image-to-image model (pix2pix, cyclegan)"
    )
    if kind == "paired" and direction is not None:
        raise UserError(
            f"--direction {direction} is for models that translate both ways (cyclegan); "
            f"'{name}' translates one way only, drop --direction"
        )


def _read_image(path: Path, channels: int, size: int | None, warn) -> torch.Tensor:
    """Image file ``path`` as ``[1, channels, H, W]`` in [-1, 1]: converted to the model's
    channels, its shorter side resized to ``size`` when given, each with a note."""
    import numpy as np
    from PIL import Image

    from .data.core import convert_channels
    from .data.sources import open_image

    image = open_image(path)
    if size is not None and min(image.size) != size:
        w, h = image.size
        scale = size / min(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        warn(f"note: '{path}' is {w}x{h}; resized to {new[0]}x{new[1]} (--size {size})")
        image = image.resize(
            new, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
        )
    array = np.asarray(image)
    array = (array[None] if array.ndim == 2 else array.transpose(2, 0, 1))[None]
    if array.shape[1] != channels:
        kind = {1: "grayscale", 3: "RGB"}
        warn(
            f"note: '{path}' is {kind[array.shape[1]]}; converted to {kind[channels]}, as the "
            "model was trained"
        )
        array = convert_channels(array, channels)
    return torch.from_numpy(np.array(array)).float().div(127.5).sub(1.0)  # a writable copy


def _plan_outputs(
    paths: list[Path], out: str | Path | None, run: str | Path, default: str, verb: str
) -> list[Path]:
    """``OUT/<stem>.png`` for each input, refused (before anything is read or written) when an
    input is missing, two inputs would land on one file, or an output would overwrite its
    input."""
    if not paths:
        raise UserError(f"no images to {verb}; give one or more image files")
    for path in paths:
        if not path.is_file():
            raise UserError(f"image '{path}' does not exist; give image files (PNG, JPEG, ...)")
    folder = _output(out, run, default)
    targets = [folder / f"{p.stem}.png" for p in paths]
    seen: dict[Path, Path] = {}
    for source, target in zip(paths, targets, strict=True):
        if target in seen:
            raise UserError(
                f"'{seen[target]}' and '{source}' would both be written to '{target}'; "
                f"{verb} them in separate calls with different --out folders"
            )
        if target.resolve() == source.resolve():
            raise UserError(
                f"writing '{source}' into --out '{folder}' would overwrite it; "
                "choose another --out folder"
            )
        seen[target] = source
    return targets


def _note_padding(model: GANModel, source: Path, x: torch.Tensor, warn) -> None:
    valid = getattr(model, "valid_size", None)
    if valid is not None and valid(*x.shape[-2:]) != tuple(x.shape[-2:]):
        h, w = x.shape[-2:]
        ph, pw = valid(h, w)
        warn(f"note: '{source}' is {w}x{h}; padded to {pw}x{ph} for the network, cropped back")


def _input_channels(g: LoadedModel) -> int:
    """The channels an image-conditioned model takes (an edge map may have fewer)."""
    return g.spec.cond_channels or g.spec.channels


def translate_files(
    run: str | Path,
    images: list[str | Path],
    *,
    direction: str | None = None,
    out: str | Path | None = None,
    size: int | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    warn=None,
) -> tuple[list[Path], Path]:
    """Translate image files with an image-to-image run and write each result as a PNG named
    after its input (``photo.jpg`` -> ``OUT/photo.png``) into ``out`` (default
    ``RUN/translations``), nowhere else.  ``direction``: cyclegan's ``a2b`` (the default) or
    ``b2a``; None for one-way models.  Each image keeps its size (the model pads it for its
    network and crops back; with ``size``, its shorter side is resized to that first).
    Notes (conversions, padding) go to ``warn`` (default: stderr).  Returns the files written
    and the checkpoint used."""
    from .images import save_image, to_uint8

    warn = warn or (lambda message: print(message, file=sys.stderr))
    paths = [Path(p) for p in images]
    targets = _plan_outputs(paths, out, run, "translations", "translate")
    g = load(run, checkpoint=checkpoint, device=device)
    check_direction(g.model, direction)
    for source, target in zip(paths, targets, strict=True):
        x = _read_image(source, _input_channels(g), size, warn)
        _note_padding(g.model, source, x, warn)
        save_image(to_uint8(g.translate(x, direction=direction))[0], target)
    return targets, g.path


def _needs(model: GANModel, kinds: tuple[str, ...], verb: str, use: str) -> None:
    """Refuse a model whose task is none of ``kinds`` for what ``verb`` does, saying ``use``."""
    if model.task.kind not in kinds:
        name = type(model).__name__.lower()
        raise UserError(
            f"model '{name}' makes images from {model.task.kind}, it does not {verb} images; "
            f"use {use}"
        )


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"Y,X,H,W"`` (top, left, height, width in pixels) -> four ints, or a `UserError`."""
    parts = text.split(",")
    try:
        y, x, h, w = (int(v) for v in parts)
    except ValueError:
        raise UserError(
            f"--box {text!r}: give the hole as Y,X,H,W (top, left, height, width in pixels), "
            "e.g. --box 8,8,12,12"
        ) from None
    if y < 0 or x < 0 or h < 1 or w < 1:
        raise UserError(f"--box {text!r}: Y and X must be 0 or more, H and W 1 or more")
    return y, x, h, w


def _read_mask(path: Path, size: tuple[int, int], image: Path) -> torch.Tensor:
    """A mask file as float ``[1, 1, H, W]`` (1 = hole: pixels brighter than mid-gray)."""
    import numpy as np

    from .data.sources import open_image

    mask = open_image(path).convert("L")
    if (mask.size[1], mask.size[0]) != size:
        raise UserError(
            f"mask '{path}' is {mask.size[0]}x{mask.size[1]} but image '{image}' is "
            f"{size[1]}x{size[0]}; give a mask of the image's size (white = hole)"
        )
    return torch.from_numpy(np.asarray(mask) > 127).float()[None, None]


def _box_mask(box: tuple[int, int, int, int], size: tuple[int, int], image: Path, text: str):
    y, x, h, w = box
    if y + h > size[0] or x + w > size[1]:
        raise UserError(
            f"--box {text} reaches past the {size[1]}x{size[0]} image '{image}' (rows {y} to "
            f"{y + h - 1}, columns {x} to {x + w - 1}); give a hole inside the image"
        )
    mask = torch.zeros(1, 1, *size)
    mask[..., y : y + h, x : x + w] = 1.0
    return mask


def check_mask(mask: torch.Tensor, what: str) -> None:
    """Refuse a hole of no pixels or of every pixel (nothing to fill / nothing to fill from)."""
    holes = int((mask > 0.5).sum())
    if holes == 0:
        raise UserError(f"{what} has no hole (no white pixels); mark the region to fill in white")
    if holes == mask.numel():
        raise UserError(
            f"{what} covers the whole image; leave some of it known (black) to fill from"
        )


def inpaint_files(
    run: str | Path,
    images: list[str | Path],
    *,
    mask: str | Path | None = None,
    box: str | None = None,
    out: str | Path | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    warn=None,
) -> tuple[list[Path], Path]:
    """Fill a hole in image files with an inpainting run and write each completed image as
    ``OUT/<stem>.png`` (default ``RUN/inpainted``).  The hole is ``mask`` (an image of the
    same size, white = hole) or ``box`` ``"Y,X,H,W"``, the same for every image.  Known
    pixels are kept as they are.  Returns the files written and the checkpoint used."""
    from .images import save_image, to_uint8

    warn = warn or (lambda message: print(message, file=sys.stderr))
    if (mask is None) == (box is None):
        raise UserError("give the hole as --mask MASK.png or --box Y,X,H,W (one of them)")
    if mask is not None and not Path(mask).is_file():
        raise UserError(f"mask '{mask}' does not exist; give an image file, white = hole")
    paths = [Path(p) for p in images]
    targets = _plan_outputs(paths, out, run, "inpainted", "inpaint")
    parsed = parse_box(box) if box is not None else None
    g = load(run, checkpoint=checkpoint, device=device)
    _needs(g.model, ("masked",), "inpaint", "a masked model (context-encoder)")
    for source, target in zip(paths, targets, strict=True):
        x = _read_image(source, _input_channels(g), None, warn)
        size = (x.shape[-2], x.shape[-1])
        if parsed is not None:
            holes = _box_mask(parsed, size, source, box)
            what = f"--box {box}"
        else:
            holes = _read_mask(Path(mask), size, source)
            what = f"mask '{mask}'"
        check_mask(holes, what)
        _note_padding(g.model, source, x, warn)
        save_image(to_uint8(g.model.inpaint(x, holes))[0], target)
    return targets, g.path


def upscale_files(
    run: str | Path,
    images: list[str | Path],
    *,
    out: str | Path | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    warn=None,
) -> tuple[list[Path], Path]:
    """Upscale image files with a super-resolution run and write each as ``OUT/<stem>.png``
    (default ``RUN/upscaled``), the model's factor times larger.  Images too large to upscale
    at once are done in overlapping tiles (identical in the interior).  Returns the files
    written and the checkpoint used."""
    from .images import save_image, to_uint8

    warn = warn or (lambda message: print(message, file=sys.stderr))
    paths = [Path(p) for p in images]
    targets = _plan_outputs(paths, out, run, "upscaled", "upscale")
    g = load(run, checkpoint=checkpoint, device=device)
    _needs(g.model, ("lowres",), "upscale", "a lowres model (srgan)")
    for source, target in zip(paths, targets, strict=True):
        x = _read_image(source, _input_channels(g), None, warn)
        _note_padding(g.model, source, x, warn)
        save_image(to_uint8(g.model.upscale(x))[0], target)
    return targets, g.path
