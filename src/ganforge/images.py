"""Image grids and conversions (Pillow; no torchvision needed)."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import UserError

# The most pixels one grid image may have, after enlargement: under Pillow's decompression-bomb
# limit (about 89 million), so that the PNG written can be opened again by Pillow itself.
MAX_GRID_PIXELS = 80_000_000
# The most bytes of 8-bit frames an animation may hold in memory while it is encoded (Pillow
# keeps every frame of a GIF until the file is written; the float frames stream by in chunks).
MAX_FRAME_BYTES = 2 * 2**30


def display_scale(resolution: int) -> int:
    """How much small images are enlarged (nearest) in grids and GIFs: to about 64 px."""
    return max(1, 64 // resolution)


def check_grid_fits(n: int, resolution: int, option: str, nrow: int | None = None) -> None:
    """Refuse, before any image is made, a grid of ``n`` images of side ``resolution`` (``nrow``
    per row, default near-square) larger than `MAX_GRID_PIXELS`; ``option`` names the setting
    in the one-line `UserError`, which gives the estimate and the largest ``n`` that fits."""
    side = (resolution + 2) * display_scale(resolution)
    cols = nrow or math.ceil(math.sqrt(n))
    pixels = math.ceil(n / cols) * cols * side * side
    if pixels <= MAX_GRID_PIXELS:
        return
    if nrow:
        largest = MAX_GRID_PIXELS // (nrow * side * side) * nrow
    else:
        largest = math.isqrt(MAX_GRID_PIXELS // (side * side)) ** 2
    raise UserError(
        f"{option} {n} makes a grid of about {pixels / 1e6:,.0f} million pixels; one image "
        f"holds at most {MAX_GRID_PIXELS / 1e6:.0f} million here: use {option} {largest:,} "
        "or fewer"
    )


def check_frames_fit(frames: int, channels: int, resolution: int, option: str) -> None:
    """Refuse, before any frame is made, an animation whose enlarged 8-bit frames need more
    than `MAX_FRAME_BYTES` of memory."""
    side = resolution * display_scale(resolution)
    per_frame = channels * side * side
    need = frames * per_frame
    if need > MAX_FRAME_BYTES:
        raise UserError(
            f"{option} {frames:,} needs about {need / 2**30:,.1f} GiB of memory for its frames "
            f"(at most {MAX_FRAME_BYTES / 2**30:.0f} GiB): use {option} "
            f"{MAX_FRAME_BYTES // per_frame:,} or fewer"
        )


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[N, C, H, W]`` floats in [-1, 1] -> uint8 ``[N, H, W, C]``."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile ``[N, C, H, W]`` images in [-1, 1] into one uint8 ``[H', W', C]`` array, ``nrow``
    images per row (default: a near-square grid), with a black border of ``padding`` pixels."""
    if images.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    tiles = to_uint8(images)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = tiles[i]
    return grid


def save_image(array: np.ndarray, path: str | Path, *, scale: int = 1) -> Path:
    """Write a uint8 ``[H, W, C]`` array as PNG atomically; ``scale`` enlarges without blur."""
    path = Path(path)
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(tmp, format=_format(path))
        os.replace(tmp, path)
    except OSError as err:  # no such place, not a folder, read-only, full disk ...
        with contextlib.suppress(OSError):  # the temporary file, if it was made
            tmp.unlink(missing_ok=True)
        reason = err.strerror or type(err).__name__
        if isinstance(err, FileExistsError | NotADirectoryError):
            reason = "a file stands where a folder of that path must be"
        raise UserError(
            f"cannot write image '{path}' ({reason}); choose a folder you can write to"
        ) from None
    return path


def save_grid(
    images: torch.Tensor, path: str | Path, nrow: int | None = None, *, scale: int | None = None
) -> Path:
    """Save ``[N, C, H, W]`` images in [-1, 1] as one grid image; small images are enlarged
    (nearest) so a 28px grid is readable."""
    grid = make_grid(images, nrow=nrow)
    if scale is None:
        scale = max(1, 64 // images.shape[-1])
    return save_image(grid, path, scale=scale)


def _format(path: Path) -> str:
    ext = path.suffix.lower()
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}.get(
        ext, "PNG"
    )
