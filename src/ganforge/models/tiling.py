"""Tiled inference for fully convolutional image networks: an image too large to run at once
goes through the network in overlapping tiles, and only the core of each tile's output is
kept.

A network whose every output pixel depends only on the input pixels within ``radius`` of it
(its receptive-field radius, in input pixels) gives, on a tile extended by ``overlap >= radius``
on each side, exactly the whole image's output over the tile's core: the padding a tile's cut
edge brings in never reaches the core.  Tiles on the image border keep the image's own edge
(and its padding), so with such an overlap the stitched result equals the untiled one
everywhere, up to the rounding of convolutions run at another size.  Layers that mix pixels
across the image (BatchNorm in train mode, attention, global pooling) break this; run such
networks in eval mode, or untiled.

A shared module of `models/`, not a family.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The tiles of one side of ``size`` pixels: ``(start, stop, lo, hi)`` for each core
    ``[start, stop)`` of ``tile`` pixels (the last one shorter) and the input ``[lo, hi)`` it is
    run on, the core extended by ``overlap`` on each side within the image."""
    spans = []
    for start in range(0, size, tile):
        stop = min(start + tile, size)
        spans.append((start, stop, max(0, start - overlap), min(size, stop + overlap)))
    return spans


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int,
) -> torch.Tensor:
    """``fn`` (``[N, C, h, w]`` -> ``[N, C', scale h, scale w]``) applied to ``images [N, C, H,
    W]`` in tiles: cores of ``tile x tile`` input pixels, each run with ``overlap`` pixels of
    context on every side, their outputs stitched into ``[N, C', scale H, scale W]``.  An image
    no larger than one tile is run whole.  With ``overlap`` at least ``fn``'s receptive-field
    radius the result equals ``fn(images)``."""
    if scale < 1 or tile < 1 or overlap < 0:
        raise ValueError(
            f"tiled needs scale >= 1, tile >= 1, overlap >= 0; got {scale, tile, overlap}"
        )
    h, w = images.shape[-2:]
    if h <= tile and w <= tile:
        return fn(images)
    out: torch.Tensor | None = None
    s = scale
    for top, bottom, y0, y1 in tile_spans(h, tile, overlap):
        for left, right, x0, x1 in tile_spans(w, tile, overlap):
            piece = fn(images[..., y0:y1, x0:x1])
            if out is None:
                out = piece.new_empty(*piece.shape[:-2], h * s, w * s)
            core = piece[
                ..., (top - y0) * s : (bottom - y0) * s, (left - x0) * s : (right - x0) * s
            ]
            out[..., top * s : bottom * s, left * s : right * s] = core
    assert out is not None
    return out
