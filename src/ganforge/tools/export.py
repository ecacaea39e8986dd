"""Exported models: a folder holding only the image-making network of a run, its config and a
model card, that others load without the run (`ganforge export`, `ganforge.load`)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .._version import __version__
from ..config import RunConfig, build_config
from ..data import DataSpec
from ..errors import UserError
from ..models import get_family
from ..models.base import GANModel

WEIGHTS, CONFIG, CARD, GRID = "model.safetensors", "config.json", "README.md", "samples.png"


def is_export(folder: Path) -> bool:
    """Whether ``folder`` is an exported model (config.json marked as one, and its tensors)."""
    try:
        info = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("format") == "ganforge-export"


def write_export(
    model: GANModel,
    cfg: RunConfig,
    spec: DataSpec,
    step: int,
    run_dir: Path,
    out: Path,
    grid: torch.Tensor,
    nrow: int | None,
) -> Path:
    """Write the exported folder ``out`` from a loaded run: the tensors of
    ``model.generator()`` (EMA when kept), config.json, README.md and ``grid``
    (``[N, C, H, W]`` in [-1, 1]) as samples.png.  Written beside ``out`` and renamed into
    place, so a failed export leaves no half folder."""
    from ..images import save_grid

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.generator().state_dict().items()}
    info = {
        "format": "ganforge-export",
        "family": cfg.model,
        "preset": cfg.preset,
        "config": cfg.to_dict(),
        "data_spec": spec.to_dict(),
        "ganforge_version": __version__,
        "step": step,
    }
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        (tmp / WEIGHTS).write_bytes(save_safetensors(tensors))
        (tmp / CONFIG).write_text(json.dumps(info, indent=2) + "\n")
        save_grid(grid, tmp / GRID, nrow=nrow)
        (tmp / CARD).write_text(model_card(info, run_dir))
        if out.is_dir():  # an empty folder (checked by the caller) gives way to the export
            out.rmdir()
        tmp.rename(out)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write the export '{out}': {err.strerror or err}") from None
    return out


def _command_lines(path: Path) -> list[str]:
    """The commands that trained the run, one per session, from ``RUN/commands.txt``."""
    if not path.is_file():
        return ["- command: not recorded (the run predates commands.txt)"]
    sessions = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = ["- trained by (the step each session started at, then its command):"]
    return lines + [f"  - `{line}`" for line in sessions]


def model_card(info: dict[str, Any], run_dir: Path) -> str:
    """The README.md of an export: what the model is, what it was trained on, its latest
    evaluation (``RUN/eval.json``) when the run has one, and a license field to fill."""
    spec = info["data_spec"]
    res = spec["resolution"]
    lines = [
        "---",
        "library: ganforge",
        f"family: {info['family']}",
        "license:  # fill in before sharing (e.g. cc-by-4.0)",
        "---",
        "",
        f"# {info['family']} ({info['preset']}) on {spec['name']}",
        "",
        f"- family: {info['family']}, preset {info['preset']}",
        f"- data: {spec['name']}, {spec['channels']}x{res}x{res} images, "
        f"{spec['num_classes']} classes",
        f"- steps: {info['step']:,}",
        f"- made with GANForge {info['ganforge_version']}",
        *_command_lines(run_dir / "commands.txt"),
        "",
        "Load it with `ganforge.load(FOLDER).generate(16, seed=0)`; only the image-making "
        "network is here, so it cannot be trained further.",
        "",
        f"![samples]({GRID})",
        "",
    ]
    lines += _evaluation_lines(run_dir / "eval.json")
    return "\n".join(lines) + "\n"


def _evaluation_lines(path: Path) -> list[str]:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return ["## Evaluation", "", "Not evaluated (the run has no eval.json)."]
    metrics = report.get("metrics") or {}
    settings = {k: v for k, v in report.items() if k != "metrics" and not isinstance(v, dict)}
    lines = ["## Evaluation", ""]
    lines += [f"- {name}: {value}" for name, value in metrics.items()]
    lines += ["", f"Settings: `{json.dumps(settings, sort_keys=True)}`"]
    return lines


def read_export(folder: Path) -> tuple[RunConfig, DataSpec, GANModel, int]:
    """Build the family an exported folder names and load its generator's tensors strictly
    (only JSON and safetensors are read, nothing is executed); the other networks keep their
    initial weights.  Returns ``(config, spec, model, step)``; a `UserError` when the folder
    does not describe a model or its tensors do not fit."""
    try:
        info = json.loads((folder / CONFIG).read_text())
        cfg = build_config(info["family"], info.get("preset"), file_data=info["config"])
        spec = DataSpec.from_dict(info["data_spec"])
        weights = load_safetensors((folder / WEIGHTS).read_bytes())
    except (OSError, KeyError, TypeError, ValueError, UserError) as err:
        raise UserError(f"exported model '{folder}' cannot be loaded: {err}") from None
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise UserError(f"'{folder / WEIGHTS}' is damaged ({err})") from None
    model = get_family(cfg.model)(cfg.family, spec)
    try:
        model.generator().load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise UserError(f"'{folder / WEIGHTS}' does not fit a {cfg.model}: {first}") from None
    return cfg, spec, model, int(info.get("step", 0))


#: A Hugging Face Hub model id: ``owner/name`` (optionally ``@revision``).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def looks_like_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name))


def download_from_hub(repo: str) -> Path:
    """The exported model in Hugging Face Hub repo ``owner/name[@revision]``, downloaded (or
    taken from the Hub's local cache) with the optional ``huggingface_hub`` package: only
    the files an export holds (config.json, model.safetensors, README.md, samples.png).  A
    `UserError` when the package is missing, the Hub cannot be reached, or the repo holds no
    export."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise UserError(
            f"run folder '{repo}' does not exist (to load a Hugging Face Hub id instead, "
            'install the hub extra: pip install "ganforge[hub]")'
        ) from None
    repo_id, _, revision = repo.partition("@")
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision or None,
                allow_patterns=[CONFIG, WEIGHTS, CARD, GRID],
            )
        )
    except Exception as err:  # noqa: BLE001 - offline, no such repo, no access: one line each
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"no local folder '{repo}', and as a Hugging Face Hub id it cannot be fetched "
            f"({type(err).__name__}: {reason[:160]}); check the path, or the id and your "
            "connection"
        ) from None
    if not is_export(folder):
        raise UserError(
            f"Hugging Face Hub repo '{repo}' holds no GANForge export (no config.json of one); "
            "upload a folder that 'ganforge export' wrote"
        )
    return folder
