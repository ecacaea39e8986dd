"""Shared fixtures: small in-memory data so tests never need a download."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import DataSpec, ImageDataset


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")


def make_dataset(
    n: int = 96, resolution: int = 28, channels: int = 1, classes: int = 10, seed: int = 0
) -> ImageDataset:
    """``n`` random labeled uint8 images: enough to train a few steps of any tiny preset."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (n, channels, resolution, resolution), generator=gen, dtype=torch.uint8
    )
    spec = DataSpec(
        channels=channels,
        resolution=resolution,
        num_classes=classes,
        class_names=tuple(str(i) for i in range(classes)),
        name="synthetic",
    )
    return ImageDataset(images, torch.arange(n) % classes, spec)


@pytest.fixture
def tiny_data() -> ImageDataset:
    return make_dataset()


def write_ab(root, splits: dict[str, int], size: int = 16) -> None:
    """pix2pix's aligned layout: each file is A | B side by side, 2 size x size."""
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        (root / split).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, 2 * size), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / f"{i}.png")
