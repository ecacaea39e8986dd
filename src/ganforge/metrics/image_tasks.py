"""Evaluation of image-to-image families (paired, masked, lowres, unpaired tasks).

The model's outputs over the evaluation split are scored against the targets of that split,
and beside every figure stands the floor: the trivial answer scored with the same metrics on
the same targets, the number any model must beat to have learned something.

- ``lowres``: the bicubic upscale of the input (PyTorch's bicubic, a = -0.75, no corner
  alignment), the classic baseline of super-resolution papers;
- ``paired`` and ``unpaired``: the input itself (an untranslated image);
- ``masked``: the hole filled with the mean of the known pixels (per image and channel).

Outputs, targets and floors are quantized to 8 bits before any metric, as saved images would
be, so a report scores what a user would see and an output equal to the trivial answer scores
exactly the floor.  For ``unpaired`` tasks the targets are the images of the other domain
(``image_b``), a set but not pixel-aligned, so only the set metrics (fid, kid, ...) apply.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .catalog import Features, MetricInputs, compute, get
from .sets import CHUNK, extract, subset_index, to_uint8

FLOORS = {
    "lowres": "bicubic upscale of the input",
    "paired": "the input itself",
    "unpaired": "the input itself",
    "masked": "the hole filled with the mean of the known pixels",
}


def available(kind: str) -> set[str]:
    """What an evaluation of a ``kind`` family can supply to the metrics."""
    have = {"real"}
    if kind in ("paired", "masked", "lowres"):
        have.add("targets")
    if kind == "masked":
        have.add("masks")
    return have


def _like(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``images`` at the targets' channels (gray repeated, or the mean of RGB) and size
    (bicubic), so that an input can stand in for an output."""
    if images.shape[1] != target.shape[1]:
        images = (
            images.expand(-1, target.shape[1], -1, -1)
            if images.shape[1] == 1
            else images.mean(1, keepdim=True)
        )
    if images.shape[-2:] != target.shape[-2:]:
        images = F.interpolate(
            images.float(), size=target.shape[-2:], mode="bicubic", align_corners=False
        )
    return images.clamp(-1, 1)


def mean_fill(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``images [N, C, H, W]`` with the hole (``masks [N, 1, H, W]``, 1 = hole) set to the
    per-image, per-channel mean of the known pixels."""
    known = 1 - (masks > 0.5).to(images.dtype)
    count = known.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    mean = (images * known).sum(dim=(2, 3), keepdim=True) / count
    return images * known + mean * (1 - known)


def floor_outputs(
    kind: str, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None
) -> torch.Tensor:
    """The trivial answer of a ``kind`` task (see the module docstring), like the targets."""
    if kind == "masked":
        return mean_fill(_like(inputs, targets), masks)
    return _like(inputs, targets)  # lowres: bicubic up to the target size; others: as is


def _targets(kind: str, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]):
    if "target" in out:
        return out["target"]
    if kind == "unpaired" and "image_b" in batch:
        return batch["image_b"]
    raise ValueError(f"eval_outputs of a {kind} model gave no 'target' (keys {sorted(out)})")


@torch.no_grad()
def collect(model: Any, data: Any, n: int, seed: int) -> dict[str, torch.Tensor]:
    """uint8 ``outputs``, ``targets``, ``floor`` (and bool ``masks``) over ``n`` items of the
    evaluation split ``data`` (a seeded random subset when it holds more), chunk ``i`` of
    the outputs drawn with seed ``seed * 100_003 + i`` as for noise families."""
    kind = model.task.kind
    index = subset_index(len(data), n, seed)
    positions = torch.arange(len(data)) if index is None else index
    parts: dict[str, list[torch.Tensor]] = {"outputs": [], "targets": [], "floor": [], "masks": []}
    for i, start in enumerate(range(0, len(positions), CHUNK)):
        batch = data.batch(positions[start : start + CHUNK])
        out = model.eval_outputs(batch, seed=seed * 100_003 + i)
        targets = _targets(kind, out, batch).cpu()
        masks = out["mask"].cpu() if "mask" in out else None
        parts["outputs"].append(to_uint8(out["image"]))
        parts["targets"].append(to_uint8(targets))
        parts["floor"].append(to_uint8(floor_outputs(kind, out["input"].cpu(), targets, masks)))
        if masks is not None:
            parts["masks"].append(masks > 0.5)
    return {key: torch.cat(value) for key, value in parts.items() if value}


def _inputs(
    images: torch.Tensor,
    sets: dict[str, torch.Tensor],
    net: nn.Module | None,
    real: Features | None,
    seed: int,
) -> MetricInputs:
    """The metric inputs of ``images`` (uint8 outputs, or the floor) against the targets,
    whose features (``real``) are extracted once for both."""

    def pixels(x: torch.Tensor) -> torch.Tensor:
        return x.double().div(127.5).sub(1.0)

    masks = sets.get("masks")
    return MetricInputs(
        seed=seed,
        real=real,
        fake=None if net is None else extract(net, images),
        outputs=pixels(images),
        targets=pixels(sets["targets"]),
        masks=None if masks is None else masks.double(),
    )


def score_outputs(
    report: dict[str, Any],
    model: Any,
    data: Any,
    names: list[str],
    *,
    net: nn.Module | None,
    n: int,
    seed: int,
    source: str,
    real_source: str,
) -> None:
    """Fill ``report`` with the figures of ``names`` for the model's outputs and for the
    floor; ``net`` is the feature network of the set metrics (None when none is asked)."""
    kind = model.task.kind
    sets = collect(model, data, n, seed)
    uses_net = net is not None and any(get(m).kind == "sets" for m in names)
    net = net if uses_net else None
    real = None if net is None else extract(net, sets["targets"])
    report["metrics"].update(compute(names, _inputs(sets["outputs"], sets, net, real, seed)))
    report["floor"] = {
        "name": FLOORS[kind],
        "metrics": compute(names, _inputs(sets["floor"], sets, net, real, seed)),
    }
    if real is not None:
        report["features"]["dim"] = int(real.features.shape[1])
    report["generated"] = {"source": source, "n": int(len(sets["outputs"])), "task": kind}
    notes = getattr(model, "training_notes", dict)()  # stand-ins may lack it
    if notes:  # what trained it beyond its config (srgan: the content network)
        report["generated"]["notes"] = notes
    report["real"] = {"source": real_source, "n": int(len(sets["targets"]))}
