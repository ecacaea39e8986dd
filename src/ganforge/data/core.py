"""In-memory image datasets, their description (`DataSpec`) and `load_dataset`.

A split is held whole in memory as one uint8 tensor `[N, C, R, R]`; `batch()` turns rows into
float images in [-1, 1].  Resolution and channel adaptation happen once, at load time, so the
training step never waits on the data path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from ..registry import DATASETS

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data: image shape and classes."""

    channels: int  # 1 or 3
    resolution: int  # square images R x R
    num_classes: int = 0  # 0 = unlabeled
    class_names: tuple[str, ...] = ()
    name: str = ""  # e.g. "fmnist"

    def __post_init__(self) -> None:
        # Accept any sequence (a JSON list, say) but store a tuple, so the spec stays hashable.
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.channels not in (1, 3):
            raise ValueError(f"DataSpec.channels must be 1 or 3, got {self.channels!r}")
        if self.resolution < 1:
            raise ValueError(f"DataSpec.resolution must be positive, got {self.resolution!r}")
        if self.num_classes < 0:
            raise ValueError(f"DataSpec.num_classes must be >= 0, got {self.num_classes!r}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"DataSpec has {len(self.class_names)} class names for {self.num_classes} classes"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; `DataSpec.from_dict(spec.to_dict()) == spec`."""
        return {
            "channels": self.channels,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DataSpec keys {unknown}; expected some of {sorted(known)}")
        return cls(**d)


class ImageDataset:
    """One split of an image dataset, whole in memory.

    images: uint8 `[N, C, R, R]`, contiguous.  labels: int64 `[N]` in [0, num_classes), or None.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, spec: DataSpec) -> None:
        shape = (spec.channels, spec.resolution, spec.resolution)
        if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != shape:
            raise ValueError(
                f"images must be uint8 [N, {', '.join(map(str, shape))}], "
                f"got {images.dtype} {list(images.shape)}"
            )
        if labels is not None:
            if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
                raise ValueError(
                    f"labels must be int64 [{len(images)}], got {labels.dtype} {list(labels.shape)}"
                )
            if spec.num_classes == 0:
                raise ValueError("labels given for a DataSpec with num_classes=0")
            if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
                raise ValueError(f"labels must lie in [0, {spec.num_classes})")
            labels = labels.contiguous()
        self.images = images.contiguous()
        self.labels = labels
        self.spec = spec

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows `index` (int64 `[B]`) as {"image": float32 `[B, C, R, R]` in [-1, 1],
        "label": int64 `[B]`}; "label" only for labeled data."""
        out = {"image": self.images[index].float().div_(127.5).sub_(1.0)}
        if self.labels is not None:
            out["label"] = self.labels[index]
        return out

    def __repr__(self) -> str:
        s = self.spec
        labeled = f"{s.num_classes} classes" if self.labels is not None else "unlabeled"
        shape = f"{s.channels}x{s.resolution}x{s.resolution}"
        return f"ImageDataset({s.name!r}, {len(self)} x {shape}, {labeled})"


def load_dataset(
    name: str,
    *,
    split: str = "train",
    resolution: int | None = None,
    channels: int | None = None,
    data_dir: str | None = None,
    download: bool = True,
) -> ImageDataset:
    """Load one split of a registered source: "fmnist", "mnist", "digits" or "folder:PATH".

    resolution None keeps the source's native size (folders need one); channels None keeps the
    source's own (1 <-> 3 conversion is allowed).  data_dir and download apply to sources that
    read files from a data folder (fmnist, mnist).
    """
    key, sep, arg = name.partition(":")
    source = DATASETS.get(key.strip())
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} for dataset {name!r}; use 'train' or 'test'")
    if resolution is not None and (
        isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1
    ):
        raise UserError(f"resolution must be a positive integer, got {resolution!r}")
    if channels not in (None, 1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels!r}")
    dataset = source(
        arg if sep else None,
        split=split,
        resolution=resolution,
        channels=channels,
        data_dir=data_dir,
        download=download,
    )
    spec = dataset.spec
    if resolution not in (None, spec.resolution) or channels not in (None, spec.channels):
        raise RuntimeError(f"dataset source {key!r} ignored the requested resolution or channels")
    return dataset


def adapt_images(
    images: np.ndarray, *, resolution: int | None, channels: int | None, pad_limit: int = 0
) -> np.ndarray:
    """Bring uint8 `[N, C, H, H]` images to `[N, channels, resolution, resolution]`.

    Growing by an even number of pixels <= pad_limit pads with 0 (the background of MNIST-like
    data, -1 after scaling), which is how GAN papers take 28px digits to 32px without blurring
    them; any other change of size is a bilinear resize.
    """
    size = images.shape[-1]
    if resolution is not None and resolution != size:
        grow = resolution - size
        if 0 < grow <= pad_limit and grow % 2 == 0:
            p = grow // 2
            images = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))
        else:
            images = resize_images(images, resolution)
    if channels is not None:
        images = convert_channels(images, channels)
    return np.ascontiguousarray(images)


def resize_images(images: np.ndarray, resolution: int) -> np.ndarray:
    """Bilinear resize of uint8 `[N, C, H, W]` to `[N, C, R, R]` with Pillow.

    Pillow widens the filter when shrinking, so downsampling is antialiased.
    """
    n, c = images.shape[:2]
    out = np.empty((n, c, resolution, resolution), dtype=np.uint8)
    size = (resolution, resolution)
    for i in range(n):
        for j in range(c):
            plane = Image.fromarray(images[i, j])
            out[i, j] = np.asarray(plane.resize(size, Image.Resampling.BILINEAR))
    return out


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 `[N, C, H, W]` to `channels` (1 or 3): gray -> RGB repeats, RGB -> gray is
    ITU-R 601-2 luma (the weights Pillow's convert("L") uses)."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=1)
    if have == 3 and channels == 1:
        r, g, b = (images[:, k].astype(np.uint32) for k in range(3))
        luma = (r * 299 + g * 587 + b * 114 + 500) // 1000
        return luma.astype(np.uint8)[:, None]
    raise ValueError(f"cannot convert {have} channels to {channels}")


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray | None,
    *,
    name: str,
    class_names: tuple[str, ...] = (),
) -> ImageDataset:
    """Wrap adapted uint8 `[N, C, R, R]` images (and labels) as an ImageDataset."""
    spec = DataSpec(
        channels=images.shape[1],
        resolution=images.shape[-1],
        num_classes=len(class_names),
        class_names=class_names,
        name=name,
    )
    label_tensor = None if labels is None else torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(torch.from_numpy(np.ascontiguousarray(images)), label_tensor, spec)
