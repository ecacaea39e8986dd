"""In-memory image datasets, their description (`DataSpec`) and `load_dataset`.

A split is held whole in memory as one uint8 tensor `[N, C, R, R]`; `batch()` turns rows into
float images in [-1, 1].  Resolution and channel adaptation happen once, at load time, so the
training step never waits on the data path.  Task data sets (`data/tasks.py`) follow the same
`Dataset` protocol: `batch(index, *, key=None)`, where `key` (from `batch_key(seed, k)`) seeds
the random parts of training batch k, so that batch is a pure function of (seed, k).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from ..registry import DATASETS

SPLITS = ("train", "test")
# What a data set's batches hold (the batch contracts are in data/tasks.py).
DATA_TASKS = ("plain", "paired", "masked", "lowres", "unpaired", "captioned")
IMAGE_INPUT_TASKS = ("paired", "masked", "lowres")  # tasks whose batches carry a cond_image
SPECIAL_TOKENS = ("<pad>", "<unk>")  # vocabulary entries 0 and 1 of every captioned data set
# Task options: the values each one accepts (DataConfig checks them too).
MASK_KINDS = ("center", "boxes", "strokes", "random")
LOWRES_FACTORS = (2, 4)
DIRECTIONS = ("AtoB", "BtoA")


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data to build itself, saved in a run's meta.json.

    `task` names the batch contract (see data/tasks.py).  Tasks with an image input (paired,
    masked, lowres) give its shape in `cond_channels` x `cond_resolution`^2 (0 otherwise; a
    lowres input is resolution // factor).  Captioned data carries its `vocab` (token id ->
    word, ids 0 and 1 are "<pad>" and "<unk>") and `max_tokens`, the length of a token row.
    Masked data gives `mean_pixel`, the mean of its images per channel in [-1, 1] (the value
    an inpainting model fills its holes with, as Context Encoder's mean ImageNet pixel); None
    for other tasks and for runs saved before the field existed.
    """

    channels: int  # 1 or 3
    resolution: int  # square images R x R
    num_classes: int = 0  # 0 = unlabeled
    class_names: tuple[str, ...] = ()
    name: str = ""  # e.g. "fmnist"
    task: str = "plain"  # one of DATA_TASKS
    cond_channels: int = 0  # channels of cond_image; 0 when the task has none
    cond_resolution: int = 0  # side of cond_image; 0 when the task has none
    vocab: tuple[str, ...] = ()  # captioned only
    max_tokens: int = 0  # captioned only
    mean_pixel: tuple[float, ...] | None = None  # masked only: per channel, in [-1, 1]
    text_embedding_dim: int = 0  # captioned with precomputed embeddings only

    def __post_init__(self) -> None:
        # Accept any sequence (a JSON list, say) but store a tuple, so the spec stays hashable.
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "vocab", tuple(str(w) for w in self.vocab))
        if self.mean_pixel is not None:
            object.__setattr__(self, "mean_pixel", tuple(float(v) for v in self.mean_pixel))
        self._check_shape()
        self._check_task()
        self._check_mean_pixel()

    def _check_shape(self) -> None:
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

    def _check_task(self) -> None:
        if self.task not in DATA_TASKS:
            raise ValueError(f"DataSpec.task must be one of {DATA_TASKS}, got {self.task!r}")
        cond = (self.cond_channels, self.cond_resolution)
        if self.task in IMAGE_INPUT_TASKS:
            if self.cond_channels not in (1, 3) or self.cond_resolution < 1:
                raise ValueError(
                    f"DataSpec of task {self.task!r} needs its input shape, got {cond}"
                )
        elif cond != (0, 0):
            raise ValueError(f"DataSpec of task {self.task!r} has no image input, got {cond}")
        if self.text_embedding_dim < 0:
            raise ValueError(
                f"DataSpec.text_embedding_dim must be >= 0, got {self.text_embedding_dim!r}"
            )
        if self.task == "captioned":
            # embeddings without caption texts: no vocabulary at all
            textless = self.text_embedding_dim > 0 and not self.vocab and not self.max_tokens
            if not textless and (self.vocab[:2] != SPECIAL_TOKENS or self.max_tokens < 1):
                raise ValueError(
                    f"a captioned DataSpec needs a vocab starting {SPECIAL_TOKENS} and "
                    f"max_tokens >= 1, got {self.vocab[:2]} and {self.max_tokens}"
                )
        elif self.vocab or self.max_tokens:
            raise ValueError(f"DataSpec of task {self.task!r} has no captions")
        elif self.text_embedding_dim:
            raise ValueError(f"DataSpec of task {self.task!r} has no text embeddings")

    def _check_mean_pixel(self) -> None:
        mean = self.mean_pixel
        if mean is None:
            return
        if len(mean) != self.channels or not all(-1.0 <= v <= 1.0 for v in mean):
            raise ValueError(
                f"DataSpec.mean_pixel must be {self.channels} values in [-1, 1], got {list(mean)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; `DataSpec.from_dict(spec.to_dict()) == spec`."""
        return {
            "channels": self.channels,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "name": self.name,
            "task": self.task,
            "cond_channels": self.cond_channels,
            "cond_resolution": self.cond_resolution,
            "vocab": list(self.vocab),
            "max_tokens": self.max_tokens,
            "mean_pixel": None if self.mean_pixel is None else list(self.mean_pixel),
            "text_embedding_dim": self.text_embedding_dim,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DataSpec keys {unknown}; expected some of {sorted(known)}")
        return cls(**d)


class Dataset(Protocol):
    """What the engine and the metrics read from any data set, plain or task."""

    spec: DataSpec

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor, *, key: int | None = None) -> dict[str, torch.Tensor]:
        """Items `index` (int64 `[B]`) as a dict of tensors; see the task's batch contract."""
        ...


_U64 = (1 << 64) - 1


def mix64(*values: int) -> int:
    """A 63-bit hash of a sequence of integers (splitmix64's finalizer folded over them).

    Seeds derived this way for neighbouring inputs (seed 0 and 1, item 5 and 6) are unrelated,
    which a sum like `seed * C + k` does not guarantee."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        z = ((h ^ (value & _U64)) + 0x9E3779B97F4A7C15) & _U64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
        h = z ^ (z >> 31)
    return h >> 1


def batch_key(seed: int, k: int) -> int:
    """The `key` of training batch k of a run seeded `seed`: `data.batch(index, key=...)`."""
    return mix64(0x6B6579, seed, k)  # 0x6B6579 = "key": keeps these apart from other uses


# per-purpose salts of `item_generators`, so the mask of item i and its domain-B draw are
# unrelated (data/tasks.py and data/precomputed.py)
MASK_SALT, DOMAIN_SALT, CAPTION_SALT, CROP_SALT = 1, 2, 3, 4


def item_generators(index: torch.Tensor, key: int | None, salt: int) -> list[torch.Generator]:
    """One generator per item of `index` (int64 `[B]`), seeded by (salt, key, item); with
    key=None by (salt, item) alone, so evaluation batches are the same on every call."""
    head = (salt, 0) if key is None else (salt, 1, key)
    return [torch.Generator().manual_seed(mix64(*head, i)) for i in index.tolist()]


@dataclass(frozen=True)
class TaskOptions:
    """Options of task data sets (DataConfig's fields of the same names); None = the default.

    mask: masked:SOURCE's mask kind, one of MASK_KINDS (default "center"; see
    data/tasks.py `make_masks`).  factor: lowres:SOURCE's
    downsampling factor, 2 or 4 (default 4).  direction: paired data's "AtoB" (default: A is the
    input) or "BtoA".  max_tokens: captioned data's token row length (default: the longest
    caption of the training split; longer captions are cut).  load_size: lowres:SOURCE's side
    to load the images at, larger than the model's resolution, which is then the side of the
    crops each item is cut to (random in training, the centre for evaluation; SRGAN's 96 px HR
    crops); default: whole images at the model's resolution.
    """

    mask: str | None = None
    factor: int | None = None
    direction: str | None = None
    max_tokens: int | None = None
    load_size: int | None = None

    # the task whose data sets read each option; setting one for another task is a mistake
    TASK_OF: ClassVar[dict[str, str]] = {
        "mask": "masked",
        "factor": "lowres",
        "direction": "paired",
        "max_tokens": "captioned",
        "load_size": "lowres",
    }

    def check_applies(self, name: str, task: str) -> None:
        """Refuse options set for a data set (`name`, of `task`) that does not read them."""
        for option, owner in self.TASK_OF.items():
            value = getattr(self, option)
            if value is not None and task != owner:
                raise UserError(
                    f"data.{option}={value!r} applies to {owner} data sets, but {name!r} is "
                    f"{task}; remove data.{option} or pick a {owner} data set"
                )


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

    def batch(self, index: torch.Tensor, *, key: int | None = None) -> dict[str, torch.Tensor]:
        """Rows `index` (int64 `[B]`) as {"image": float32 `[B, C, R, R]` in [-1, 1],
        "label": int64 `[B]`}; "label" only for labeled data.  Plain data has no random part,
        so `key` changes nothing."""
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
    options: TaskOptions | None = None,
) -> Dataset:
    """Load one split of a registered data set: plain sources ("fmnist", "mnist", "digits",
    "folder:PATH") give an `ImageDataset`, task data sets ("masked:fmnist", "pix2pix:PATH", ...;
    `ganforge list datasets`) a task data set of data/tasks.py.  Either follows `Dataset`.

    resolution None keeps the source's native size (folders need one); channels None keeps the
    source's own (1 <-> 3 conversion is allowed).  data_dir and download apply to sources that
    read files from a data folder (fmnist, mnist).  options holds the task options (mask kind,
    lowres factor, paired direction, caption length); one set for a data set that does not read
    it is refused.
    """
    options = options if options is not None else TaskOptions()
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
        options=options,
    )
    spec = dataset.spec
    if resolution not in (None, spec.resolution) or channels not in (None, spec.channels):
        raise RuntimeError(f"dataset source {key!r} ignored the requested resolution or channels")
    options.check_applies(name, spec.task)
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
