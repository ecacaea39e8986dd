"""Task data sets: paired, masked, lowres, unpaired and captioned data built on image sources.

Names (`ganforge list datasets`) read like today's `fmnist` and `folder:PATH`: a built-in is
`fmnist-<what>`, a user layout is `<layout>:PATH`, a wrapper around any plain source is
`<task>:SOURCE` (`masked:fmnist`, `lowres:folder:./photos`).

- `fmnist-edges` (paired): input the garment's edge map (`sobel_edges`), target the garment.
- `pix2pix:PATH` (paired): pix2pix's aligned AB files in `train/`, `val/`, `test/` (split test
  reads `test/`, else `val/`); A is the left half, B the right.
- `pairs:PATH` (paired): `A/` and `B/` with same-named files (names match without their
  extension); or `train/` and `test/`, each holding `A/` and `B/`.
- `masked:SOURCE` (masked): any plain source with holes of kind `data.mask` (center, boxes,
  strokes, random; default center); its spec carries the images' `mean_pixel`.
- `lowres:SOURCE` (lowres): any plain source with its copy `data.factor` (2 or 4, default 4)
  times smaller; with `data.load_size` the images are loaded at that side and each item is a
  crop of the model's resolution (random in training, the centre in evaluation).
- `fmnist-shoes` (unpaired): A sneakers (class 7), B ankle boots (class 9).
- `cyclegan:PATH` (unpaired): CycleGAN's `trainA/ trainB/ testA/ testB/`.
- `fmnist-captions` (captioned): captions made from the class and the shade, width and fill
  measured on each image, in several templates (`CAPTION_TEMPLATES`).
- `captions:PATH` (captioned): images with a `.txt` beside each, one caption a line (subfolders
  are classes and `train/ test/` splits, as in `folder:PATH`).
- `birds:PATH`, `flowers:PATH` (captioned): StackGAN's data, precomputed char-CNN-RNN sentence
  embeddings beside the CUB-200-2011 or Oxford-102 images (`data/precomputed.py`); batches carry
  `embedding` and, when the folder has Reed et al.'s `text_c10/` captions, `text`.

Paired data goes A -> B: with `data.direction` "AtoB" (the default, as pix2pix's `--direction
AtoB`) A is the input (`cond_image`) and B the target (`image`); "BtoA" swaps them.

Batch contracts of `batch(index, *, key=None)`, index int64 `[B]`; every image is float32
`[B, C, H, W]` in [-1, 1]:
- paired: `image` (target `[B, C, R, R]`), `cond_image` (input `[B, Ci, R, R]`)
- lowres: `image` (`[B, C, R, R]`), `cond_image` (`[B, C, R/f, R/f]`, `box_downsample`)
- masked: `image`, `mask` (float `[B, 1, R, R]`, 1 = hole to fill), `cond_image` (the image with
  its hole set to MASK_FILL = 0, the middle of [-1, 1])
- unpaired: `image_a`, `image_b` (B's items drawn independently of A's)
- captioned: `image`, `text` (int64 `[B, max_tokens]`; 0 = padding, vocab[0] = "<pad>",
  vocab[1] = "<unk>"), `label` (int64 `[B]`, for labeled data)
- captioned with precomputed embeddings (`spec.text_embedding_dim` = D > 0): `image`,
  `embedding` (float32 `[B, D]`, one of the item's), `label`, and `text` only with caption texts

Randomness (mask shapes, the item of domain B, the caption template) comes from one
`torch.Generator` per item, seeded by `mix64(purpose, key, item index)`: training batch k passes
`key=batch_key(seed, k)`, so the batch is a pure function of (seed, k) and of nothing else (not
the global RNG, not how the batch is split across processes).  With key=None the seed is made
from the item index alone, so evaluation and preview batches are the same on every call.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..errors import UserError
from ..registry import DATASETS
from .captions import (
    FMNIST_NOUNS,
    Captions,
    FileCaptions,
    MeasuredCaptions,
    build_vocab,
    measure,
    tokenize,
    words,
)
from .core import (
    CAPTION_SALT,
    CROP_SALT,
    DIRECTIONS,
    DOMAIN_SALT,
    LOWRES_FACTORS,
    MASK_KINDS,
    MASK_SALT,
    DataSpec,
    ImageDataset,
    TaskOptions,
    adapt_images,
    convert_channels,
    item_generators,
    load_dataset,
    make_dataset,
)
from .precomputed import PrecomputedDataset, load_precomputed
from .sources import (
    IMAGE_EXTENSIONS,
    fit_square,
    list_images,
    open_image,
    progress,
    read_images,
    scan_folder,
    split_root,
    stack_channels,
)

MASK_FILL = 0.0  # value of the hole in a masked cond_image: mid-gray, the middle of [-1, 1]
EDGE_THRESHOLD = 0.25  # Sobel magnitude (in [0, 1] intensity units, / 4) that counts as an edge
# random masks (Context Encoder's train_random.lua): uniform noise on a grid of RANDOM_CELLS
# cells across the image, upsampled bicubically and thresholded at RANDOM_DENSITY; a draw
# whose hole covers outside RANDOM_AREA of the frame is redrawn
RANDOM_CELLS, RANDOM_DENSITY, RANDOM_AREA = 8, 0.25, (0.2, 0.3)
RANDOM_BATCH, RANDOM_TRIES = 8, 104
FMNIST_SNEAKER, FMNIST_ANKLE_BOOT = 7, 9


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [-1, 1], the same arithmetic as `ImageDataset.batch`."""
    return images.float().div_(127.5).sub_(1.0)


def _randint(low: int, high: int, gen: torch.Generator) -> int:
    """One integer in [low, high], both ends included."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _arg_required(name: str, arg: str | None, example: str) -> str:
    """The text after ':' in `name:ARG`; `example` shows a complete name."""
    if not arg:
        what = "a source" if name in ("masked", "lowres") else "a path"
        raise UserError(f"dataset {name!r} needs {what} after ':'; use e.g. {example}")
    return arg


def _no_arg(name: str, arg: str | None) -> None:
    if arg is not None:
        raise UserError(f"dataset {name!r} takes no ':{arg}' part; use plain {name!r}")


def _folder(path: str, what: str) -> Path:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"{what} folder '{root}' does not exist; pass an existing folder")
    return root


def _need_resolution(name: str, resolution: int | None) -> int:
    if resolution is None:
        raise UserError(
            f"dataset {name!r} needs a resolution (its images are resized to R x R); "
            f"give one, e.g. resolution=64"
        )
    return resolution


def _images_in(folder: Path) -> list[Path]:
    files = list_images(folder)
    if not files:
        raise UserError(
            f"folder '{folder}' holds no images; accepted extensions: "
            f"{' '.join(IMAGE_EXTENSIONS)} (any case)"
        )
    return files


# ---------------------------------------------------------------- pixel operators


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """Edge maps of uint8 `[N, C, H, W]` images as uint8 `[N, 1, H, W]`: 255 on an edge, 0 off.

    The operator, fixed: gray levels in [0, 1] (ITU-R 601 luma for RGB), the 3x3 Sobel kernels
    with replicated borders, magnitude sqrt(gx^2 + gy^2) / 4 (so a step from 0 to 1 scores 1 on
    each side of it), edge where the magnitude is >= EDGE_THRESHOLD.  A flat image has no edge.
    """
    gray = torch.from_numpy(convert_channels(images.numpy(), 1))
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([kx, kx.T])[:, None]  # [2, 1, 3, 3]: d/dx and d/dy
    out = torch.empty_like(gray)
    for start in range(0, len(gray), 8192):  # chunks bound the float copies' memory
        chunk = gray[start : start + 8192].float().div_(255.0)
        grad = F.conv2d(F.pad(chunk, (1, 1, 1, 1), mode="replicate"), kernels)
        magnitude = grad.square().sum(1, keepdim=True).sqrt_().div_(4.0)
        out[start : start + 8192] = (magnitude >= EDGE_THRESHOLD).to(torch.uint8) * 255
    return out


def box_downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """uint8 `[B, C, R, R]` -> float32 `[B, C, R/f, R/f]` in [-1, 1]: each output pixel is the
    mean of its f x f block (a box filter, antialiased: what Pillow's `Image.reduce(f)` computes
    before rounding to 8 bits).  The block sums of 8-bit values are exact in float32, so a
    constant image gives exactly that constant."""
    return F.avg_pool2d(images.float(), factor).div_(127.5).sub_(1.0)


def center_mask(resolution: int) -> torch.Tensor:
    """float `[1, R, R]`: 1 on the centred square of side R // 2 (Context Encoder's hole)."""
    side = resolution // 2
    start = (resolution - side) // 2
    mask = torch.zeros(1, resolution, resolution)
    mask[:, start : start + side, start : start + side] = 1.0
    return mask


def box_mask(resolution: int, gen: torch.Generator) -> torch.Tensor:
    """float `[1, R, R]`: 1 to 3 rectangles, sides R // 8 to R // 2, anywhere in the frame."""
    mask = torch.zeros(1, resolution, resolution)
    low, high = max(1, resolution // 8), max(1, resolution // 2)
    for _ in range(_randint(1, 3, gen)):
        h, w = _randint(low, high, gen), _randint(low, high, gen)
        top, left = _randint(0, resolution - h, gen), _randint(0, resolution - w, gen)
        mask[:, top : top + h, left : left + w] = 1.0
    return mask


def stroke_mask(resolution: int, gen: torch.Generator) -> torch.Tensor:
    """float `[1, R, R]`: 1 to 4 brush strokes, each a random walk of 3 to 8 points (steps of
    R/8 to R/4 in a random direction) drawn as a line R/16 to R/6 thick with round ends."""
    canvas = Image.new("L", (resolution, resolution), 0)
    draw = ImageDraw.Draw(canvas)
    thin, thick = max(1, round(resolution / 16)), max(2, round(resolution / 6))
    for _ in range(_randint(1, 4, gen)):
        width = _randint(thin, thick, gen)
        x, y = (torch.rand(2, generator=gen) * resolution).tolist()
        points = [(x, y)]
        for _ in range(_randint(2, 7, gen)):
            angle, step = torch.rand(2, generator=gen).tolist()
            length = resolution * (1 + step) / 8
            x = min(max(x + length * math.cos(2 * math.pi * angle), 0.0), resolution - 1.0)
            y = min(max(y + length * math.sin(2 * math.pi * angle), 0.0), resolution - 1.0)
            points.append((x, y))
        draw.line(points, fill=255, width=width, joint="curve")
        r = width / 2
        for px, py in (points[0], points[-1]):
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    return torch.from_numpy(np.asarray(canvas) > 0).float()[None]


def random_mask(resolution: int, gen: torch.Generator) -> torch.Tensor:
    """float `[1, R, R]`: Context Encoder's random region (train_random.lua), blobs covering
    20% to 30% of the frame.

    The reference upsamples 600 x 600 uniform noise bicubically to 10,000 x 10,000 once,
    thresholds it at 0.25 and crops 128 px windows at random until one has 20-30% holes:
    about 7.7 noise cells across a crop.  Here each draw makes its own window: noise on
    RANDOM_CELLS + 4 cells (margin for the cubic's reach), upsampled to R / RANDOM_CELLS px
    a cell, an R x R crop at a random offset, the same threshold and the same area test, so
    the blobs keep their size relative to the image at any R.  A draw passes about one time
    in four; draws come RANDOM_BATCH at a time and the first that passes is taken; after
    RANDOM_TRIES failed draws (odds below 1e-13) the last is thresholded at its own 25%
    quantile instead."""
    cells = RANDOM_CELLS + 4
    size = math.ceil(cells * resolution / RANDOM_CELLS)
    low, high = RANDOM_AREA
    for _ in range(RANDOM_TRIES // RANDOM_BATCH):
        noise = torch.rand(RANDOM_BATCH, 1, cells, cells, generator=gen)
        field = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
        offsets = torch.randint(0, size - resolution + 1, (RANDOM_BATCH, 2), generator=gen)
        for draw, (top, left) in enumerate(offsets.tolist()):
            crop = field[draw, :, top : top + resolution, left : left + resolution]
            mask = (crop < RANDOM_DENSITY).float()
            if low < mask.mean().item() < high:
                return mask
    return (crop < crop.quantile(RANDOM_DENSITY)).float()


MASK_DRAWS = {"boxes": box_mask, "strokes": stroke_mask, "random": random_mask}


def make_masks(kind: str, index: torch.Tensor, resolution: int, key: int | None) -> torch.Tensor:
    """Masks of kind `kind` (MASK_KINDS) for items `index`: float `[B, 1, R, R]`, 1 = hole.

    center: `center_mask`; boxes: `box_mask`; strokes: `stroke_mask`; random: `random_mask`
    (Context Encoder's random regions).  All but center are drawn per item from its key."""
    if kind == "center":
        return center_mask(resolution).expand(len(index), 1, -1, -1).clone()
    draw = MASK_DRAWS[kind]
    gens = item_generators(index, key, MASK_SALT)
    return torch.stack([draw(resolution, gen) for gen in gens])


# ---------------------------------------------------------------- the task data sets


class PairedDataset:
    """Aligned pairs: `image` (target) and `cond_image` (input), both in memory as uint8.

    images: targets uint8 `[N, C, R, R]`; cond_images: inputs uint8 `[N, Ci, R, R]`; labels:
    the source's class labels when it has them (for statistics; not in the batch)."""

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        name: str,
        labels: torch.Tensor | None = None,
    ) -> None:
        if len(inputs) != len(targets) or inputs.shape[-1] != targets.shape[-1]:
            raise ValueError(f"inputs {list(inputs.shape)} do not pair with {list(targets.shape)}")
        self.images, self.cond_images, self.labels = (
            targets.contiguous(),
            inputs.contiguous(),
            labels,
        )
        self.spec = DataSpec(
            channels=targets.shape[1],
            resolution=targets.shape[-1],
            name=name,
            task="paired",
            cond_channels=inputs.shape[1],
            cond_resolution=inputs.shape[-1],
        )

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor, *, key: int | None = None) -> dict[str, torch.Tensor]:
        """{"image": `[B, C, R, R]`, "cond_image": `[B, Ci, R, R]`}, in [-1, 1]; no random part."""
        return {
            "image": to_float(self.images[index]),
            "cond_image": to_float(self.cond_images[index]),
        }

    def __repr__(self) -> str:
        return f"PairedDataset({self.spec.name!r}, {len(self)} pairs)"


def paired(
    name: str,
    a: torch.Tensor,
    b: torch.Tensor,
    direction: str,
    labels: torch.Tensor | None = None,
) -> PairedDataset:
    """Pairs (a[i], b[i]) as a PairedDataset going A -> B ("AtoB") or B -> A ("BtoA")."""
    inputs, targets = (a, b) if direction == "AtoB" else (b, a)
    return PairedDataset(inputs, targets, name, labels)


def mean_pixel(images: torch.Tensor) -> tuple[float, ...]:
    """The mean of uint8 `[N, C, H, W]` images per channel, in [-1, 1] (6 decimals, so the
    value written to meta.json reads back the same).  Summed in int64, exact at any N; an
    empty set gives 0, the middle of the range."""
    if not len(images):
        return (0.0,) * images.shape[1]
    total = images.sum(dim=(0, 2, 3), dtype=torch.int64).double()
    count = images.shape[0] * images.shape[2] * images.shape[3]
    return tuple(round(2.0 * v / (255.0 * count) - 1.0, 6) for v in total.tolist())


class MaskedDataset:
    """A plain source with holes to fill: `image`, `mask` (1 = hole) and `cond_image`, the image
    with MASK_FILL in the hole.  Mask shapes: see `make_masks`; drawn per item from the key.
    The spec's `mean_pixel` is the mean of this split's images per channel (a model built
    from the train split's spec fills its holes with the train split's mean)."""

    def __init__(self, source: ImageDataset, kind: str, name: str) -> None:
        self.source, self.kind = source, kind
        self.images, self.labels = source.images, source.labels
        s = source.spec
        self.spec = DataSpec(
            channels=s.channels,
            resolution=s.resolution,
            name=name,
            task="masked",
            cond_channels=s.channels,
            cond_resolution=s.resolution,
            mean_pixel=mean_pixel(source.images),
        )

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, index: torch.Tensor, *, key: int | None = None) -> dict[str, torch.Tensor]:
        """{"image": `[B, C, R, R]`, "mask": float `[B, 1, R, R]` in {0, 1}, "cond_image"}."""
        image = self.source.batch(index)["image"]
        mask = make_masks(self.kind, index, self.spec.resolution, key)
        cond = torch.where(mask.bool(), torch.full_like(image, MASK_FILL), image)
        return {"image": image, "mask": mask, "cond_image": cond}

    def __repr__(self) -> str:
        return f"MaskedDataset({self.spec.name!r}, {len(self)} images, {self.kind} masks)"


class LowresDataset:
    """A plain source with its low-resolution copy: `image` and `cond_image`, `factor` times
    smaller on each side (`box_downsample`).  With `crop` (a side smaller than the source's),
    each item is first cut to a `crop` x `crop` patch: at an offset drawn from the key in
    training, the centre with key=None (evaluation, previews); `images` are the centre crops."""

    def __init__(
        self, source: ImageDataset, factor: int, name: str, crop: int | None = None
    ) -> None:
        self.source, self.factor, self.labels = source, factor, source.labels
        s = source.spec
        self.crop = crop if crop is not None and crop < s.resolution else None
        side = self.crop or s.resolution
        start = (s.resolution - side) // 2
        self.images = source.images[..., start : start + side, start : start + side]
        self.spec = DataSpec(
            channels=s.channels,
            resolution=side,
            name=name,
            task="lowres",
            cond_channels=s.channels,
            cond_resolution=side // factor,
        )

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, index: torch.Tensor, *, key: int | None = None) -> dict[str, torch.Tensor]:
        """{"image": `[B, C, R, R]`, "cond_image": `[B, C, R/f, R/f]`}, in [-1, 1]."""
        if self.crop is None or key is None:
            rows = self.images[index]
        else:
            full, side = self.source.images, self.crop
            room = full.shape[-1] - side  # the largest offset
            patches = []
            for i, gen in zip(index.tolist(), item_generators(index, key, CROP_SALT), strict=True):
                top, left = _randint(0, room, gen), _randint(0, room, gen)
                patches.append(full[i, :, top : top + side, left : left + side])
            rows = torch.stack(patches)
        return {"image": to_float(rows), "cond_image": box_downsample(rows, self.factor)}

    def __repr__(self) -> str:
        return f"LowresDataset({self.spec.name!r}, {len(self)} images, factor {self.factor})"


class UnpairedDataset:
    """Two domains of one shape: item i is A's image i with an image of B drawn independently.

    images_a: uint8 `[Na, C, R, R]`, images_b: uint8 `[Nb, C, R, R]`; the length is Na.  B's item
    for A's item i: from the key's generator (uniform over B) in training; i mod Nb with
    key=None, so an evaluation pass over all of A meets every B image when Nb <= Na."""

    def __init__(self, images_a: torch.Tensor, images_b: torch.Tensor, name: str) -> None:
        if images_a.shape[1:] != images_b.shape[1:]:
            raise ValueError(
                f"domains differ in shape: {list(images_a.shape)} {list(images_b.shape)}"
            )
        self.images_a, self.images_b = images_a.contiguous(), images_b.contiguous()
        self.spec = DataSpec(
            channels=images_a.shape[1], resolution=images_a.shape[-1], name=name, task="unpaired"
        )

    def __len__(self) -> int:
        return len(self.images_a)

    @property
    def domain_sizes(self) -> dict[str, int]:
        """Images of each domain; a training batch needs at least that many of each (the
        trainer checks both, not only the length)."""
        return {"A": len(self.images_a), "B": len(self.images_b)}

    def draw_b(self, index: torch.Tensor, key: int | None) -> torch.Tensor:
        """Indices into domain B (int64 `[B]`) for A's items `index`."""
        n = len(self.images_b)
        if key is None:
            return index % n
        gens = item_generators(index, key, DOMAIN_SALT)
        return torch.tensor(
            [int(torch.randint(n, (1,), generator=g)) for g in gens], dtype=torch.int64
        )

    def batch(self, index: torch.Tensor, *, key: int | None = None) -> dict[str, torch.Tensor]:
        """{"image_a": `[B, C, R, R]`, "image_b": `[B, C, R, R]`}, in [-1, 1]."""
        return {
            "image_a": to_float(self.images_a[index]),
            "image_b": to_float(self.images_b[self.draw_b(index, key)]),
        }

    def __repr__(self) -> str:
        return (
            f"UnpairedDataset({self.spec.name!r}, {len(self.images_a)} A, {len(self.images_b)} B)"
        )


class CaptionedDataset:
    """Images with captions: `image`, `text` (token ids) and `label` (labeled sources only).

    Item i's caption is one of `captions.count(i)`, chosen by the key's generator in training and
    from i alone with key=None; `spec.vocab` maps token ids back to words."""

    def __init__(
        self,
        source: ImageDataset,
        captions: Captions,
        vocab: tuple[str, ...],
        max_tokens: int,
        name: str,
    ) -> None:
        self.source, self.captions = source, captions
        self.images, self.labels = source.images, source.labels
        self._ids = {w: i for i, w in enumerate(vocab)}
        s = source.spec
        self.spec = DataSpec(
            channels=s.channels,
            resolution=s.resolution,
            num_classes=s.num_classes,
            class_names=s.class_names,
            name=name,
            task="captioned",
            vocab=vocab,
            max_tokens=max_tokens,
        )

    def __len__(self) -> int:
        return len(self.source)

    def texts(self, index: torch.Tensor, key: int | None = None) -> list[str]:
        """The caption text of each item of `index` (what `batch` tokenizes)."""
        gens = item_generators(index, key, CAPTION_SALT)
        return [
            self.captions.text(i, int(torch.randint(self.captions.count(i), (1,), generator=g)))
            for i, g in zip(index.tolist(), gens, strict=True)
        ]

    def batch(self, index: torch.Tensor, *, key: int | None = None) -> dict[str, torch.Tensor]:
        """{"image": `[B, C, R, R]`, "text": int64 `[B, max_tokens]`, "label": int64 `[B]`}."""
        out = self.source.batch(index)
        out["text"] = tokenize(self.texts(index, key), self._ids, self.spec.max_tokens)
        return out

    def __repr__(self) -> str:
        words_in = len(self.spec.vocab)
        return f"CaptionedDataset({self.spec.name!r}, {len(self)} images, {words_in} words)"


def captioned(
    source: ImageDataset,
    captions: Captions,
    name: str,
    *,
    max_tokens: int | None,
    vocab_texts: Sequence[str] | None = None,
) -> CaptionedDataset:
    """A CaptionedDataset whose vocabulary is every word of `vocab_texts` (default: all of
    `captions`); max_tokens None: the longest of those texts."""
    texts = captions.all_texts() if vocab_texts is None else vocab_texts
    if max_tokens is None:
        max_tokens = max((len(words(t)) for t in texts), default=1)
    return CaptionedDataset(source, captions, build_vocab(texts), max(1, max_tokens), name)


# ---------------------------------------------------------------- options


def _direction(options: TaskOptions) -> str:
    direction = options.direction if options.direction is not None else "AtoB"
    if direction not in DIRECTIONS:
        raise UserError(f"unknown direction {direction!r} (data.direction); use AtoB or BtoA")
    return direction


def _mask_kind(options: TaskOptions) -> str:
    kind = options.mask if options.mask is not None else "center"
    if kind not in MASK_KINDS:
        raise UserError(
            f"unknown mask kind {kind!r} (data.mask); use {', '.join(MASK_KINDS[:-1])} or "
            f"{MASK_KINDS[-1]}"
        )
    return kind


def _factor(options: TaskOptions) -> int:
    factor = options.factor if options.factor is not None else 4
    if factor not in LOWRES_FACTORS:
        raise UserError(f"unsupported lowres factor {factor!r} (data.factor); use 2 or 4")
    return factor


def _max_tokens(options: TaskOptions) -> int | None:
    if options.max_tokens is not None and options.max_tokens < 1:
        raise UserError(
            f"data.max_tokens must be at least 1, got {options.max_tokens!r}; "
            f"or leave it unset for the longest caption"
        )
    return options.max_tokens


def _plain_source(wrapper: str, arg: str | None, **load: Any) -> ImageDataset:
    """The plain data set `arg` names, for a `wrapper:SOURCE` data set."""
    source_name = _arg_required(wrapper, arg, f"{wrapper}:fmnist or {wrapper}:folder:PATH")
    source = load_dataset(source_name, **load)
    if not isinstance(source, ImageDataset):
        raise UserError(
            f"'{wrapper}:{source_name}' needs a plain image source such as fmnist or "
            f"folder:PATH, but {source_name!r} is {source.spec.task} data; name a plain source"
        )
    return source


# ---------------------------------------------------------------- registered: paired


@DATASETS.register("fmnist-edges", doc="paired: Fashion-MNIST edge maps (Sobel) -> the garments")
def fmnist_edges(arg: str | None, *, options: TaskOptions, **load: Any) -> PairedDataset:
    """A = `sobel_edges` of each garment (as many channels as the garment), B = the garment."""
    _no_arg("fmnist-edges", arg)
    direction = _direction(options)
    garments = load_dataset("fmnist", **load)
    edges = sobel_edges(garments.images).expand(-1, garments.spec.channels, -1, -1)
    return paired("fmnist-edges", edges.contiguous(), garments.images, direction, garments.labels)


def _ab_halves(files: list[Path], root: Path, resolution: int) -> tuple[list, list]:
    """Left and right halves of pix2pix AB files, each as uint8 `[1 or 3, R, R]`."""
    lefts, rights = [], []
    for path in progress(files, root):
        image = open_image(path)
        w, h = image.size
        if w != 2 * h:
            raise UserError(
                f"pix2pix image '{path}' is {w}x{h}, but an AB image holds input and target "
                f"side by side, so its width must be twice its height; re-export it, or use "
                f"pairs:PATH with A/ and B/ folders"
            )
        # crop before resizing: a resize filter reading across the seam would leak the
        # input into the target
        lefts.append(fit_square(image.crop((0, 0, h, h)), resolution))
        rights.append(fit_square(image.crop((h, 0, w, h)), resolution))
    return lefts, rights


@DATASETS.register(
    "pix2pix", doc="pix2pix:PATH - paired: aligned AB images (A left, B right) in train/ val/ test/"
)
def pix2pix(
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    options: TaskOptions,
    **_: Any,
) -> PairedDataset:
    """Split train reads PATH/train/; split test reads PATH/test/, else PATH/val/."""
    path = _arg_required("pix2pix", arg, "pix2pix:./facades")
    root, direction = _folder(path, "pix2pix"), _direction(options)
    resolution = _need_resolution(f"pix2pix:{path}", resolution)
    folders = ["train"] if split == "train" else ["test", "val"]
    folder = next((root / f for f in folders if (root / f).is_dir()), None)
    if folder is None:
        raise UserError(
            f"pix2pix folder '{root}' has no {' or '.join(f + '/' for f in folders)} subfolder "
            f"for split {split!r}; put the AB images of that split there"
        )
    lefts, rights = _ab_halves(_images_in(folder), folder, resolution)
    a, b = stack_channels(lefts, channels), stack_channels(rights, channels)
    return paired(f"pix2pix:{path}", torch.from_numpy(a), torch.from_numpy(b), direction)


def _by_stem(folder: Path) -> dict[str, Path]:
    """Image files of `folder` keyed by relative path without the extension."""
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in _images_in(folder)}


@DATASETS.register(
    "pairs", doc="pairs:PATH - paired: folders A/ and B/ with same-named images (or train/ test/)"
)
def pairs(
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    options: TaskOptions,
    **_: Any,
) -> PairedDataset:
    """Names match without their extension (A/cat.png pairs with B/cat.jpg)."""
    path = _arg_required("pairs", arg, "pairs:./sketches")
    root, direction = _folder(path, "pairs"), _direction(options)
    resolution = _need_resolution(f"pairs:{path}", resolution)
    if (root / "train").is_dir():
        root = root / split
    elif split != "train":
        raise UserError(
            f"pairs folder '{root}' has a single split; give it train/ and test/ subfolders "
            f"(each with A/ and B/) to use split {split!r}"
        )
    for side in ("A", "B"):
        if not (root / side).is_dir():
            raise UserError(
                f"pairs folder '{root}' has no {side}/ subfolder; put the {side} images there"
            )
    a_files, b_files = _by_stem(root / "A"), _by_stem(root / "B")
    unmatched = sorted(set(a_files) ^ set(b_files))
    if unmatched:
        side = "A" if unmatched[0] in a_files else "B"
        raise UserError(
            f"pairs folder '{root}': {len(unmatched)} image names have no partner, e.g. "
            f"{side}/{unmatched[0]} has none in {'B' if side == 'A' else 'A'}/; give each image a "
            f"same-named partner or remove it"
        )
    names = sorted(a_files)
    a = read_images([a_files[n] for n in names], resolution, channels, root / "A")
    b = read_images([b_files[n] for n in names], resolution, channels, root / "B")
    return paired(f"pairs:{path}", torch.from_numpy(a), torch.from_numpy(b), direction)


# ---------------------------------------------------------------- registered: masked, lowres


@DATASETS.register(
    "masked",
    doc="masked:SOURCE - masked: any plain source with holes (data.mask: center, boxes, strokes, "
    "random)",
)
def masked(arg: str | None, *, options: TaskOptions, **load: Any) -> MaskedDataset:
    kind = _mask_kind(options)
    source = _plain_source("masked", arg, **load)
    return MaskedDataset(source, kind, f"masked:{arg}")


@DATASETS.register(
    "lowres",
    doc="lowres:SOURCE - lowres: any plain source and its copy 2 or 4 times smaller (data.factor)",
)
def lowres(arg: str | None, *, options: TaskOptions, **load: Any) -> LowresDataset:
    factor = _factor(options)
    size, crop = options.load_size, None
    if size is not None:
        crop = load.get("resolution")
        if crop is None:
            raise UserError(
                f"data.load_size={size} crops images to the model's resolution; give a "
                "resolution too (the model's, e.g. 96)"
            )
        if size < crop:
            raise UserError(
                f"data.load_size={size} is smaller than the resolution {crop} it is cropped "
                f"to; use a load_size of {crop} or more (or none: whole images)"
            )
        load = {**load, "resolution": size}
    source = _plain_source("lowres", arg, **load)
    resolution = crop or source.spec.resolution
    if resolution % factor:
        raise UserError(
            f"'lowres:{arg}' at resolution {resolution} does not divide by factor {factor}; "
            f"use a resolution that is a multiple of {factor} (e.g. {factor * 8})"
        )
    return LowresDataset(source, factor, f"lowres:{arg}", crop=crop)


# ---------------------------------------------------------------- registered: unpaired


@DATASETS.register("fmnist-shoes", doc="unpaired: Fashion-MNIST sneakers (A) and ankle boots (B)")
def fmnist_shoes(arg: str | None, *, options: TaskOptions, **load: Any) -> UnpairedDataset:
    _no_arg("fmnist-shoes", arg)
    source = load_dataset("fmnist", **load)
    a = source.images[source.labels == FMNIST_SNEAKER]
    b = source.images[source.labels == FMNIST_ANKLE_BOOT]
    return UnpairedDataset(a, b, "fmnist-shoes")


@DATASETS.register(
    "cyclegan", doc="cyclegan:PATH - unpaired: CycleGAN's trainA/ trainB/ testA/ testB/ folders"
)
def cyclegan(
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    options: TaskOptions,
    **_: Any,
) -> UnpairedDataset:
    """Both domains get one channel count: channels None gives 1 when every image is gray."""
    path = _arg_required("cyclegan", arg, "cyclegan:./horse2zebra")
    root, resolution = _folder(path, "cyclegan"), _need_resolution(f"cyclegan:{path}", resolution)
    domains = []
    for side in ("A", "B"):
        folder = root / f"{split}{side}"
        if not folder.is_dir():
            raise UserError(
                f"cyclegan folder '{root}' has no {split}{side}/ subfolder; CycleGAN's layout is "
                f"trainA/ trainB/ testA/ testB/, put domain {side}'s {split} images there"
            )
        files = list_images(folder)
        if not files:
            raise UserError(
                f"domain {side} of cyclegan:{path} is empty: '{folder}' holds no images "
                f"({' '.join(IMAGE_EXTENSIONS)}); add some"
            )
        domains.append([fit_square(open_image(p), resolution) for p in progress(files, folder)])
    if channels is None:
        gray = [all(x.shape[0] == 1 for x in d) for d in domains]
        channels = 1 if all(gray) else 3
        if any(gray) and not all(gray):
            side, other = ("A", "B") if gray[0] else ("B", "A")
            warnings.warn(
                f"domain {side} of cyclegan:{path} is grayscale and domain {other} is not; "
                f"{side}'s images are repeated to 3 channels (set data.channels=1 to train "
                "both in gray)",
                stacklevel=2,
            )
    a, b = (torch.from_numpy(stack_channels(d, channels)) for d in domains)
    return UnpairedDataset(a, b, f"cyclegan:{path}")


# ---------------------------------------------------------------- registered: captioned


@DATASETS.register(
    "fmnist-captions",
    doc="captioned: Fashion-MNIST with captions of class, shade, width and fill",
)
def fmnist_captions(
    arg: str | None,
    *,
    resolution: int | None,
    channels: int | None,
    options: TaskOptions,
    **load: Any,
) -> CaptionedDataset:
    """Attributes are measured at the native 28 px, before any padding or resizing."""
    _no_arg("fmnist-captions", arg)
    max_tokens = _max_tokens(options)
    native = load_dataset("fmnist", resolution=None, channels=None, **load)
    images = adapt_images(
        native.images.numpy(), resolution=resolution, channels=channels, pad_limit=8
    )
    source = make_dataset(
        images, native.labels.numpy(), name="fmnist", class_names=native.spec.class_names
    )
    words_of = MeasuredCaptions(measure(native.images), native.labels, FMNIST_NOUNS)
    return captioned(source, words_of, "fmnist-captions", max_tokens=max_tokens)


def _caption_lines(image: Path) -> tuple[str, ...]:
    """The non-empty lines of the .txt beside `image`."""
    path = image.with_suffix(".txt")
    if not path.is_file():
        raise UserError(
            f"image '{image}' has no caption file '{path.name}' beside it; write one (one caption "
            f"a line) or remove the image"
        )
    lines = tuple(
        line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    )
    if not lines:
        raise UserError(f"caption file '{path}' is empty; write at least one caption line")
    return lines


@DATASETS.register(
    "captions", doc="captions:PATH - captioned: images with a .txt caption beside each"
)
def captions(
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    options: TaskOptions,
    **_: Any,
) -> CaptionedDataset:
    """Subfolders are classes and train/ test/ are splits, as in folder:PATH.  The vocabulary
    is every word of the training split's captions, whichever split is loaded."""
    path = _arg_required("captions", arg, "captions:./birds")
    root, resolution = _folder(path, "captions"), _need_resolution(f"captions:{path}", resolution)
    max_tokens = _max_tokens(options)
    folder, class_names = split_root(root, split)
    files, labels = scan_folder(folder, class_names)
    if not files:
        _images_in(folder)  # raises the one-line "holds no images"
    lines = [_caption_lines(p) for p in files]
    train_folder = folder if split == "train" else split_root(root, "train")[0]
    train_lines = (
        lines if split == "train" else [_caption_lines(p) for p in list_images(train_folder)]
    )
    images = read_images(files, resolution, channels, folder)
    label_array = None if labels is None else np.asarray(labels, dtype=np.int64)
    source = make_dataset(
        images,
        label_array,
        name=f"captions:{path}",
        class_names=class_names if labels is not None else (),
    )
    texts = [t for item in train_lines for t in item]
    return captioned(
        source, FileCaptions(lines), f"captions:{path}", max_tokens=max_tokens, vocab_texts=texts
    )


def _stackgan_layout(
    kind: str,
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    options: TaskOptions,
) -> PrecomputedDataset:
    path = _arg_required(kind, arg, f"{kind}:./data/{kind}")
    resolution = _need_resolution(f"{kind}:{path}", resolution)
    max_tokens = _max_tokens(options)
    return load_precomputed(
        kind, path, split=split, resolution=resolution, channels=channels, max_tokens=max_tokens
    )


@DATASETS.register(
    "birds",
    doc="birds:PATH - captioned: StackGAN's birds/ (CUB-200-2011 and char-CNN-RNN embeddings)",
)
def birds(
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    options: TaskOptions,
    **_: Any,
) -> PrecomputedDataset:
    """`--dataset birds:./data/birds`: train/ and test/ with StackGAN's three pickles, and
    CUB_200_2011/ (images cropped to their bounding boxes); text_c10/ captions optional."""
    return _stackgan_layout(
        "birds", arg, split=split, resolution=resolution, channels=channels, options=options
    )


@DATASETS.register(
    "flowers",
    doc="flowers:PATH - captioned: StackGAN's flowers/ (Oxford-102 and char-CNN-RNN embeddings)",
)
def flowers(
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    options: TaskOptions,
    **_: Any,
) -> PrecomputedDataset:
    """`--dataset flowers:./data/flowers`: train/ and test/ with StackGAN's three pickles, and
    Oxford-102's jpg/ folder; text_c10/ captions optional."""
    return _stackgan_layout(
        "flowers", arg, split=split, resolution=resolution, channels=channels, options=options
    )
