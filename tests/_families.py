"""Building any registered family from its ``tiny`` preset, with example inputs made from the
family's task and data spec (in the spirit of diffusers' ``get_dummy_inputs``), for the tests
every family gets for free."""

from __future__ import annotations

import torch
from conftest import make_dataset

from ganforge.config import build_config
from ganforge.data import DataSpec, UnpairedDataset
from ganforge.data.captions import FileCaptions, build_vocab, tokenize
from ganforge.data.tasks import CaptionedDataset, LowresDataset, MaskedDataset, PairedDataset
from ganforge.models import get_family

CLASSES = 10
# captioned data: the vocabulary of TINY_CAPTIONS ("<pad>", "<unk>", then the words, sorted)
TINY_CAPTIONS = ("a dark coat", "a light small sandal", "a wide gray bag", "a narrow dark shirt")
TINY_VOCAB = build_vocab(TINY_CAPTIONS)
TINY_MAX_TOKENS = 4


def tiny_spec(name: str) -> DataSpec:
    """The data spec a family's tiny preset trains on: 1 channel, its resolution, 10 classes."""
    cfg = build_config(name, "tiny")
    task = get_family(name).task_for(cfg.family)
    r = cfg.family.resolution
    cond = {}
    if task.data in ("paired", "masked"):
        cond = {"cond_channels": 1, "cond_resolution": r}
    elif task.data == "lowres":
        cond = {"cond_channels": 1, "cond_resolution": r // (cfg.data.factor or 4)}
    elif task.data == "captioned":
        cond = {"vocab": TINY_VOCAB, "max_tokens": TINY_MAX_TOKENS}
    return DataSpec(
        channels=1,
        resolution=r,
        num_classes=CLASSES,
        class_names=tuple(str(i) for i in range(CLASSES)),
        name="synthetic",
        task=task.data,
        **cond,
    )


def build(name: str, seed: int = 0, **overrides):
    """(model, run config) of family ``name`` at its tiny preset, weights drawn from ``seed``."""
    cfg = build_config(name, "tiny", overrides=list(overrides.items()))
    spec = tiny_spec(name)
    torch.manual_seed(seed)
    return get_family(name)(cfg.family, spec), cfg


def example_batch(model, n: int = 8, seed: int = 1) -> dict[str, torch.Tensor]:
    """A training batch of the model's data task: images in [-1, 1] and what the task adds."""
    gen = torch.Generator().manual_seed(seed)
    spec, r = model.spec, model.resolution

    def images(channels: int = spec.channels, size: int = r) -> torch.Tensor:
        return torch.rand(n, channels, size, size, generator=gen) * 2 - 1

    kind = model.task.data
    if kind == "unpaired":
        return {"image_a": images(), "image_b": images()}
    batch = {"image": images(), "label": torch.arange(n) % CLASSES}
    if kind in ("paired", "lowres", "masked"):
        batch["cond_image"] = images(spec.cond_channels or spec.channels, spec.cond_resolution or r)
    if kind == "captioned":
        texts = [TINY_CAPTIONS[i % len(TINY_CAPTIONS)] for i in range(n)]
        batch["text"] = tokenize(texts, spec.vocab, spec.max_tokens)
    if kind == "masked":
        mask = torch.zeros(n, 1, r, r)
        mask[..., r // 4 : 3 * r // 4, r // 4 : 3 * r // 4] = 1
        batch["mask"] = mask
    return batch


def tiny_data(name: str, n: int = 32):
    """A training set of ``n`` random items of the family's data task, at its tiny size."""
    spec = tiny_spec(name)
    if spec.task == "plain":
        return make_dataset(n=n, resolution=spec.resolution, channels=spec.channels)
    gen = torch.Generator().manual_seed(0)
    shape = (n, spec.channels, spec.resolution, spec.resolution)

    def images() -> torch.Tensor:
        return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)

    if spec.task == "unpaired":
        return UnpairedDataset(images(), images(), "synthetic")
    plain = make_dataset(n=n, resolution=spec.resolution, channels=spec.channels)
    if spec.task == "paired":
        return PairedDataset(images(), images(), "synthetic")
    if spec.task == "masked":
        return MaskedDataset(plain, "center", "masked:synthetic")
    if spec.task == "lowres":
        return LowresDataset(plain, spec.resolution // spec.cond_resolution, "lowres:synthetic")
    if spec.task == "captioned":
        lines = [TINY_CAPTIONS[i % 4 : i % 4 + 2] for i in range(n)]  # 1 or 2 captions each
        return CaptionedDataset(
            plain, FileCaptions(lines), TINY_VOCAB, TINY_MAX_TOKENS, "synthetic"
        )
    raise NotImplementedError(f"no tiny data for the {spec.task} task yet; add it here")
