"""Adaptive instance normalization: the style operation of the first StyleGAN.

AdaIN (Huang & Belongie 2017) normalizes each channel of each sample to zero mean and unit
variance over its pixels, then gives it a new mean and standard deviation taken from a style.
StyleGAN (Karras et al. 2019) computes the style from w with a learned affine map, one per
layer, so w decides every layer's channel statistics while the normalization stops a layer's
style from leaking into the next.  StyleGAN2 replaced this with weight demodulation
(`ganforge.nn.style.modulated_conv2d`) because the normalization also erased signal magnitudes
the generator then smuggled through as droplet artifacts.
"""

from __future__ import annotations

import torch
from torch import nn

from .style import FullyConnectedLayer


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each channel of each sample of ``x`` [N, C, H, W] to zero mean and unit variance over
    its H x W pixels (biased variance, ``eps`` inside the square root).  Computed in float32,
    since in half precision the mean of squares loses digits and ``eps`` underflows."""
    dtype = x.dtype
    x = x.float()
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return (x * (x.square().mean(dim=(2, 3), keepdim=True) + eps).rsqrt()).to(dtype)


def adaptive_instance_norm(
    x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """``scale * instance_norm(x) + bias``: channel c of sample n leaves with mean
    ``bias[n, c]`` and standard deviation ``|scale[n, c]|``; ``scale`` and ``bias`` are
    ``[N, C]``."""
    return instance_norm(x, eps) * scale[:, :, None, None] + bias[:, :, None, None]


class AdaIN(nn.Module):
    """AdaIN with its style from w: ``(y_s, y_b) = affine(w)``, output
    ``(1 + y_s) * instance_norm(x) + y_b``.

    The ``1 +`` (with the affine map's bias at zero) centres the scales at 1, as in the
    reference implementation, so a w near zero gives a plain instance norm rather than a layer
    multiplied by zero.  The affine map is an equalized-learning-rate dense layer like the rest
    of the generator.
    """

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.affine = FullyConnectedLayer(w_dim, 2 * channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x`` [N, C, H, W], ``w`` [N, w_dim] -> [N, C, H, W]."""
        scale, bias = self.affine(w.to(x.dtype)).chunk(2, dim=1)
        return adaptive_instance_norm(x, 1 + scale, bias)
