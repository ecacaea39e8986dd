"""Pieces the style-based families share: StyleGAN2's discriminator (which ``stylegan`` uses
in its ``orig`` architecture), the sampling options of every style-based generator, and the EMA
half-life counted in images.  A shared module of `models/`, not a family: families never import
each other.  Parameter names are those of StyleGAN2-ADA's code, so its published D loads
strictly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..nn.style import Conv2dLayer, FullyConnectedLayer, MappingNetwork, MinibatchStdLayer
from ..nn.upfirdn import downsample2d, setup_filter

ARCHITECTURES = ("orig", "skip", "resnet")
#: a synthesis network's noise inputs: fresh draws, the stored buffers, or none
NOISE_MODES = ("random", "const", "none")


def check_sampling(*, truncation: float | None = 1.0, noise_mode: str = "const") -> float:
    """The sampling options of every style-based generator (the style-based families and the
    latent tools), one line for a bad one: psi in [0, 1.5], where above 1 extrapolates away
    from the mean w, and a known noise mode.  Returns the psi (None, no truncation, is 1)."""
    if noise_mode not in NOISE_MODES:
        raise UserError(f"unknown noise mode {noise_mode!r}; use {', '.join(NOISE_MODES)}")
    psi = 1.0 if truncation is None else truncation
    if not 0 <= psi <= 1.5:
        raise UserError(f"truncation {psi} is out of range; use a value in [0, 1.5]")
    return psi


def class_vector(labels: torch.Tensor | None, c_dim: int) -> torch.Tensor | None:
    """What a style-based mapping network takes as its label: class indices ``[N]`` as
    one-hot rows, rows ``[N, c_dim]`` (blends) as they are, None when unconditional."""
    if not c_dim:
        return None
    if labels is None:
        raise UserError("this generator is class-conditional; give labels")
    if labels.ndim == 1:
        return F.one_hot(labels.long(), c_dim).float()
    return labels.float()


@dataclass(frozen=True)
class DiscriminatorSpec:
    """What StyleGAN2's discriminator is built from (each family fills it from its config)."""

    resolution: int
    architecture: str = "resnet"  # orig | skip | resnet
    channel_base: int = 32768  # channels at resolution r: min(channel_base / r, channel_max)
    channel_max: int = 512
    conv_clamp: float = 0.0  # clamp conv outputs to +-this; 0 = off
    mbstd_group_size: int = 4  # 0 = the whole batch
    mbstd_channels: int = 1  # 0 disables minibatch stddev
    c_dim: int = 0  # classes of a conditional D (projection); 0 = unconditional
    cmap_dim: int = 0  # the projection's width; 0 = D's channels at 4x4
    mapping_layers: int = 8  # the label mapping's depth (conditional)

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


def ema_half_life_beta(
    images_seen: int, batch_size: int, *, ema_kimg: float, ema_rampup: float
) -> float:
    """EMA decay per step for a half-life of ``ema_kimg`` thousand images, at most
    ``ema_rampup`` of the images seen so far (0: no ramp-up), as StyleGAN2-ADA counts it."""
    nimg = ema_kimg * 1000
    if ema_rampup:
        nimg = min(nimg, images_seen * ema_rampup)
    return 0.5 ** (batch_size / max(nimg, 1e-8))


def _clamp(value: float) -> float | None:
    return value if value > 0 else None


# ----- discriminator --------------------------------------------------------------------------
class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs, the second halving the resolution (and a 1x1 skip for ``resnet``)."""

    def __init__(
        self, cfg: DiscriminatorSpec, in_ch: int, tmp_ch: int, out_ch: int, res: int, channels: int
    ) -> None:
        super().__init__()
        self.in_channels, self.architecture = in_ch, cfg.architecture
        self.register_buffer("resample_filter", setup_filter((1, 3, 3, 1)))
        clamp = _clamp(cfg.conv_clamp)
        if in_ch == 0 or self.architecture == "skip":
            self.fromrgb = Conv2dLayer(channels, tmp_ch, 1, activation="lrelu", conv_clamp=clamp)
        self.conv0 = Conv2dLayer(tmp_ch, tmp_ch, 3, activation="lrelu", conv_clamp=clamp)
        self.conv1 = Conv2dLayer(tmp_ch, out_ch, 3, activation="lrelu", down=2, conv_clamp=clamp)
        if self.architecture == "resnet":
            self.skip = Conv2dLayer(tmp_ch, out_ch, 1, bias=False, down=2)

    def forward(self, x, img):
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
            return y + x, img
        return self.conv1(self.conv0(x)), img


class DiscriminatorEpilogue(nn.Module):
    """At 4x4: minibatch stddev, a 3x3 conv, a dense layer and the output (a score, or
    ``cmap_dim`` features projected on the mapped label)."""

    def __init__(self, cfg: DiscriminatorSpec, in_ch: int, cmap_dim: int, channels: int) -> None:
        super().__init__()
        self.architecture, self.cmap_dim = cfg.architecture, cmap_dim
        if self.architecture == "skip":
            self.fromrgb = Conv2dLayer(channels, in_ch, 1, activation="lrelu")
        m = cfg.mbstd_channels
        self.mbstd = MinibatchStdLayer(cfg.mbstd_group_size or None, m) if m > 0 else None
        clamp = _clamp(cfg.conv_clamp)
        self.conv = Conv2dLayer(in_ch + m, in_ch, 3, activation="lrelu", conv_clamp=clamp)
        self.fc = FullyConnectedLayer(in_ch * 16, in_ch, activation="lrelu")
        self.out = FullyConnectedLayer(in_ch, cmap_dim or 1)

    def forward(self, x, img, cmap):
        if self.architecture == "skip":
            x = x + self.fromrgb(img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """``D(images, labels)`` -> scores ``[N]``; blocks ``b{r}`` from the image's resolution
    down to 8, then the 4x4 epilogue ``b4``."""

    def __init__(self, cfg: DiscriminatorSpec, image_channels: int) -> None:
        super().__init__()
        self.c_dim = cfg.c_dim
        log2 = int(math.log2(cfg.resolution))
        self.resolutions = [2**i for i in range(log2, 2, -1)]
        for res in self.resolutions:
            in_ch = cfg.channels(res) if res < cfg.resolution else 0
            tmp = cfg.channels(res)
            block = DiscriminatorBlock(cfg, in_ch, tmp, cfg.channels(res // 2), res, image_channels)
            setattr(self, f"b{res}", block)
        c4 = cfg.channels(4)
        cmap_dim = (cfg.cmap_dim or c4) if self.c_dim else 0
        if self.c_dim:
            self.mapping = MappingNetwork(
                0,
                self.c_dim,
                cmap_dim,
                None,
                num_layers=cfg.mapping_layers,
                w_avg_beta=None,
            )
        self.b4 = DiscriminatorEpilogue(cfg, c4, cmap_dim, image_channels)

    def forward(self, img: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = None
        for res in self.resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
        cmap = None
        if self.c_dim:
            if labels is None:
                raise UserError("this discriminator is class-conditional; give labels")
            c = F.one_hot(labels.long(), self.c_dim).float() if labels.ndim == 1 else labels
            cmap = self.mapping(None, c.float())
        return self.b4(x, img, cmap).flatten()
