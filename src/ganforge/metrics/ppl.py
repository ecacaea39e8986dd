"""Perceptual path length (Karras et al. 2019), in W with end-point sampling, as StyleGAN2
reports it, measured with GANForge's domain feature network instead of LPIPS/VGG.

A pair of latents w0, w1 (mapped from two Gaussian z) is cut at t = 0 and at t = epsilon:
``d = |f(G(w0)) - f(G(lerp(w0, w1, epsilon)))|^2 / epsilon^2``, with ``f`` the features the
domain network gives FID.  Averaged over many pairs it measures how much the image changes
per unit of W: small when W is smooth (a small step in W is a small change of the image),
large when the images jump.  The few extreme pairs dominate a plain mean, so as in the
reference only the values between the 1st and 99th percentiles count.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError

EPSILON = 1e-4


@torch.no_grad()
def perceptual_path_length(
    model: Any,
    features: nn.Module,
    *,
    n: int = 10_000,
    epsilon: float = EPSILON,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """PPL of ``model``'s style-based generator over ``n`` pairs (``2 n`` images), measured by
    ``features`` (a module with ``features(images)``; the domain network).

    Every batch gets fresh noise maps shared by both images of a pair (``noise_mode='const'``
    on a private copy of G), so the noise moves no distance.  Conditional models cycle
    through the classes, the same class for both ends.  ``model`` is anything with the model
    interface (``task.styles`` and ``generator()``, whose ``map`` gives ws and ``synthesis``
    images).  Returns ``ppl``, the pairs ``n``, how many were ``kept`` between the percentiles,
    and ``epsilon``."""
    net = copy.deepcopy(_style_generator(model)).eval().requires_grad_(False)
    device = next(net.parameters()).device
    features = features.eval()
    noise_maps = [b for k, b in net.synthesis.named_buffers() if k.endswith("noise_const")]
    gen = torch.Generator().manual_seed(seed)
    distances = []
    for lo in range(0, n, batch_size):
        k = min(batch_size, n - lo)
        z = torch.randn(2 * k, net.z_dim, generator=gen).to(device)
        labels = None
        if getattr(net, "c_dim", 0):
            labels = (torch.arange(lo, lo + k) % net.c_dim).repeat(2).to(device)
        w0, w1 = net.map(z, labels).chunk(2)
        for buf in noise_maps:
            buf.copy_(torch.randn(buf.shape, generator=gen))
        images = net.synthesis(torch.cat([w0, w0.lerp(w1, epsilon)]), noise_mode="const")
        f0, f1 = features.features(images.float()).double().chunk(2)
        distances.append((f0 - f1).square().sum(1).cpu() / epsilon**2)
    d = torch.cat(distances).numpy()
    lo_cut = np.percentile(d, 1, method="lower")
    hi_cut = np.percentile(d, 99, method="higher")
    kept = d[(d >= lo_cut) & (d <= hi_cut)]
    return {"ppl": float(kept.mean()), "n": int(n), "kept": int(len(kept)), "epsilon": epsilon}


def _style_generator(model: Any) -> nn.Module:
    """The generator of a style-based model; a one-line error for any other."""
    if not model.task.styles:
        raise UserError("ppl needs a style-based generator (stylegan2, stylegan); this has none")
    return model.generator()
