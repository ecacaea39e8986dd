"""Where the images of an evaluation come from: a folder or an ``.npz`` of images.

Both give ``[N, C, R, R]`` uint8 at one resolution (mixed sizes are resized, and the caller is
told), so that any two sets of images can be compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import load_dataset
from ..data.sources import IMAGE_EXTENSIONS
from ..errors import UserError


def images_from_npz(path: Path) -> torch.Tensor:
    """An ``.npz`` holding one uint8 image array, NHWC or NCHW (key ``images`` or the only one);
    float arrays are accepted in [-1, 1] or [0, 1].  Read with ``allow_pickle=False``."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"'{path}' is not a readable .npz of images ({err})") from None
    keys = list(archive.keys())
    if not keys:
        raise UserError(f"'{path}' holds no arrays; save images with np.savez(path, images=x)")
    key = "images" if "images" in keys else keys[0]
    if len(keys) > 1 and key != "images":
        raise UserError(f"'{path}' holds several arrays {keys}; name the images 'images'")
    x = archive[key]
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise UserError(
            f"'{path}': expected images [N, H, W, C] or [N, C, H, W], got shape {list(x.shape)}"
        )
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.dtype != np.uint8:
        x = x.astype(np.float64)
        low, high = float(x.min()), float(x.max())
        if low < -1.001 or high > 1.001:
            raise UserError(
                f"'{path}': float images must lie in [-1, 1] or [0, 1], found "
                f"[{low:.3g}, {high:.3g}]; or save them as uint8"
            )
        if low < 0:
            x = (x + 1) / 2
        x = np.rint(x * 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(x))


def images_from_folder(path: Path, resolution: int, channels: int, warn=print) -> torch.Tensor:
    """Every image under ``path`` at ``resolution``; mixed sizes are resized (and said so)."""
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UserError(f"no images in '{path}' (looked for {' '.join(IMAGE_EXTENSIONS)})")
    sizes = set()
    for f in files[:2000]:  # header reads only; enough to tell mixed folders
        try:
            with Image.open(f) as im:
                sizes.add(im.size)
        except OSError:
            raise UserError(f"cannot read image '{f}'; remove or replace it") from None
    if len(sizes) > 1 or next(iter(sizes)) != (resolution, resolution):
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4])
        warn(
            f"note: images in '{path}' are {shown}{' ...' if len(sizes) > 4 else ''}; resized "
            f"and center-cropped to {resolution}x{resolution}"
        )
    data = load_dataset(f"folder:{path}", resolution=resolution, channels=channels, split="train")
    return data.images


def load_images(path: str | Path, resolution: int, channels: int, warn=print) -> torch.Tensor:
    """uint8 ``[N, channels, resolution, resolution]`` from a folder or an ``.npz``."""
    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise UserError(f"'{path}' does not exist")
        x = images_from_npz(path)
        if x.shape[1] != channels:
            x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else _luma(x)
        if x.shape[-1] != resolution or x.shape[-2] != resolution:
            warn(
                f"note: images in '{path}' are {x.shape[-1]}x{x.shape[-2]}; resized to "
                f"{resolution}x{resolution}"
            )
            x = torch.nn.functional.interpolate(
                x.float(), size=(resolution, resolution), mode="bilinear", antialias=True
            )
            x = x.round().clamp(0, 255).to(torch.uint8)
        return x
    if not path.is_dir():
        raise UserError(f"'{path}' is neither a folder of images nor an .npz file")
    return images_from_folder(path, resolution, channels, warn=warn)


def _luma(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
