"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real *and* generated
images before D, so D cannot memorise a small training set and G still gets gradients.

Images are ``[N, C, H, W]`` in ``[-1, 1]``, as in the reference implementation, whose ranges are
kept: brightness adds ``U(-0.5, 0.5)``, saturation scales the deviation from the per-pixel channel
mean by ``U(0, 2)``, contrast scales the deviation from the per-image mean by ``U(0.5, 1.5)``;
no clamping follows.  Pixels shifted in by translation and those under the cutout square are 0,
mid-grey in ``[-1, 1]``, as in the reference.  Every parameter is drawn per sample from
``generator`` or the global RNG.  No operation writes into its input, so gradients reach ``x``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .errors import UserError, did_you_mean

POLICIES = ("color", "translation", "cutout")


def _uniform(
    x: torch.Tensor, low: float, high: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One value per sample in ``[low, high)``, shaped ``[N, 1, 1, 1]`` to broadcast over x."""
    device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=device)
    return (low + (high - low) * u).to(device=x.device, dtype=x.dtype)


def _randint(
    n: int, low: int, high: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``n`` integers in ``[low, high]`` (inclusive), on ``device``."""
    gen_device = generator.device if generator is not None else device
    values = torch.randint(low, high + 1, (n,), generator=generator, device=gen_device)
    return values.to(device)


def _color(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    x = x + _uniform(x, -0.5, 0.5, generator)  # brightness
    # Saturation: on one channel x equals its channel mean, so this is the identity on gray.
    channel_mean = x.mean(dim=1, keepdim=True)
    x = (x - channel_mean) * _uniform(x, 0.0, 2.0, generator) + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_mean) * _uniform(x, 0.5, 1.5, generator) + image_mean  # contrast


def _translation(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Shift each image by whole pixels, up to 1/8 of its height and width (``dy`` down, ``dx``
    right), filling the uncovered border with 0."""
    n, _, h, w = x.shape
    max_dy, max_dx = h // 8, w // 8
    dy = _randint(n, -max_dy, max_dy, generator, x.device)
    dx = _randint(n, -max_dx, max_dx, generator, x.device)
    padded = F.pad(x, (max_dx, max_dx, max_dy, max_dy))  # zeros: out-of-image reads land here
    rows = torch.arange(h, device=x.device) + max_dy - dy[:, None]  # [N, H] source rows
    cols = torch.arange(w, device=x.device) + max_dx - dx[:, None]  # [N, W] source columns
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indices around a slice put their dimensions first: [N, H, W, C].
    shifted = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return shifted.permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Set a ``H//2 x W//2`` rectangle of each image to 0.

    As in the reference, its centre is uniform over the whole image, so near the borders the
    rectangle is clipped: the image's edges are cut as often as its middle."""
    n, _, h, w = x.shape
    size_h, size_w = h // 2, w // 2
    top = _randint(n, 0, h - size_h % 2, generator, x.device) - size_h // 2
    left = _randint(n, 0, w - size_w % 2, generator, x.device) - size_w // 2
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size_h)  # [N, H]
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size_w)  # [N, W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # [N, H, W]
    return x * keep[:, None].to(x.dtype)


_OPS: dict[str, Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]] = {
    "color": _color,
    "translation": _translation,
    "cutout": _cutout,
}


def parse_policy(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"color, translation"`` -> ``("color", "translation")``; ``""`` -> ``()``.

    Operations run in the order given.  A :class:`UserError` names any unknown operation."""
    names = text.split(",") if isinstance(text, str) else list(text)
    ops = tuple(name.strip() for name in names if name.strip())
    for op in ops:
        if op not in _OPS:
            hint = did_you_mean(op, POLICIES)
            if not all(valid in hint for valid in POLICIES):  # a suggestion only: name them all
                hint += f"; use a comma-separated subset of {','.join(POLICIES)}"
            raise UserError(f"unknown DiffAugment operation {op!r} in policy {text!r}{hint}")
    return ops


def diff_augment(
    x: torch.Tensor,
    policy: str | Sequence[str] = "color,translation,cutout",
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply the policy's operations to images ``[N, C, H, W]`` in ``[-1, 1]``, with fresh
    random parameters per sample; returns a new tensor of the same shape (``x`` itself for an
    empty policy).  Apply it to both real and fake batches before every D call, and to the
    fakes in G's step too."""
    if x.dim() != 4:
        raise ValueError(f"diff_augment expects images [N, C, H, W], got shape {tuple(x.shape)}")
    for op in parse_policy(policy):
        x = _OPS[op](x, generator)
    return x
