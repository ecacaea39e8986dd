"""Image-to-image networks shared by the translation families: the ResNet and U-Net generators
and the PatchGAN discriminator of CycleGAN (Zhu et al. 2017) and pix2pix (Isola et al. 2017),
as junyanz/pytorch-CycleGAN-and-pix2pix builds them, their adversarial loss on a map of patch
scores, and the padding that lets a fully convolutional generator take any image size.

A shared module of `models/`, not a family: families never import each other.

Networks keep the reference's layer order inside an ``nn.Sequential`` named ``model`` (the
ResNet blocks' ``conv_block``), so their parameter names follow the reference's.  Convolutions
keep a bias unless BatchNorm follows them: InstanceNorm without affine parameters has no shift
of its own, BatchNorm has (the reference's ``use_bias`` rule).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check

NORMS = ("instance", "batch", "none")
GAN_LOSSES = ("lsgan", "vanilla")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``instance``: InstanceNorm without affine parameters and without running statistics
    (so a network computes the same in train and eval mode, whatever the batch); ``batch``:
    BatchNorm; ``none``: the identity."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def _bias(norm: str) -> bool:
    return norm != "batch"


# ----------------------------------------------------------------------------- generators


class ResnetBlock(nn.Module):
    """``x + (pad, conv3x3, norm, ReLU, [dropout], pad, conv3x3, norm)(x)``, reflection padded."""

    def __init__(self, channels: int, norm: str, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=_bias(norm)),
            norm_layer(norm, channels),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=_bias(norm)),
            norm_layer(norm, channels),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Johnson et al.'s transformation network as CycleGAN uses it: a 7x7 convolution to
    ``ngf`` channels, two stride-2 3x3 convolutions (``2 ngf``, ``4 ngf``), ``n_blocks``
    residual blocks, two stride-2 transposed convolutions back, a 7x7 convolution to
    ``out_channels`` and tanh.  Images ``[N, in_channels, H, W]`` -> ``[N, out_channels, H,
    W]`` in [-1, 1], for H and W multiples of 4 and at least 8 (`multiple`, `minimum`)."""

    multiple = 4  # two stride-2 halvings
    minimum = 8  # the residual blocks' reflection padding needs a 2x2 bottleneck

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        bias = _bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):  # downsampling
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        for mult in (4, 2):  # upsampling
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                norm_layer(norm, ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


class UnetGenerator(nn.Module):
    """The U-Net of pix2pix: ``depth`` stride-2 4x4 convolutions down (``ngf``, ``2 ngf``,
    ``4 ngf``, then ``8 ngf`` each), as many transposed convolutions up, each joined to the
    encoder's output of its size by a skip connection (concatenated channels).  LeakyReLU 0.2
    down, ReLU up, no norm on the outermost and innermost downsampling, tanh out.  ``dropout``
    goes after the up-steps of ``dropout_blocks`` blocks counted outwards from the innermost
    one (which has none); None: those whose both sides have ``8 ngf`` channels, the
    reference's rule (``depth - 5`` blocks, 3 in unet_256; none at depth 5 and below).
    Sizes must be multiples of ``2 ** depth``; at ``depth = log2(R)`` an R x R image reaches
    a 1 x 1 bottleneck."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        ngf: int = 64,
        norm: str = "instance",
        dropout: float = 0.0,
        dropout_blocks: int | None = None,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"a U-Net needs depth >= 2, got {depth}")
        self.multiple = self.minimum = 2**depth  # down to a 1 x 1 bottleneck at least
        bias = _bias(norm)
        width = [ngf * min(2**i, 8) for i in range(depth)]  # encoder output channels per level
        downs: list[nn.Module] = [nn.Conv2d(in_channels, width[0], 4, 2, 1, bias=bias)]
        for i in range(1, depth):
            inner = i == depth - 1
            downs.append(
                nn.Sequential(
                    # not in place, so the skip keeps the encoder's output e; the reference's
                    # in-place LeakyReLU rewrites the skip to LeakyReLU(e), which the ReLU
                    # opening the up-step turns into the same ReLU(e)
                    nn.LeakyReLU(0.2),
                    nn.Conv2d(width[i - 1], width[i], 4, 2, 1, bias=bias),
                    nn.Identity() if inner else norm_layer(norm, width[i]),
                )
            )
        ups: list[nn.Module] = [
            nn.Sequential(
                nn.ReLU(True), nn.ConvTranspose2d(2 * width[0], out_channels, 4, 2, 1), nn.Tanh()
            )
        ]
        for i in range(1, depth):
            inner = i == depth - 1
            layers: list[nn.Module] = [
                nn.ReLU(True),
                nn.ConvTranspose2d(
                    width[i] * (1 if inner else 2), width[i - 1], 4, 2, 1, bias=bias
                ),
                norm_layer(norm, width[i - 1]),
            ]
            if dropout_blocks is None:
                dropped = not inner and width[i - 1] == width[i] == 8 * ngf
            else:
                dropped = depth - 1 - dropout_blocks <= i < depth - 1
            if dropout and dropped:
                layers.append(nn.Dropout(dropout))
            ups.append(nn.Sequential(*layers))
        self.downs, self.ups = nn.ModuleList(downs), nn.ModuleList(ups)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        skips = []
        x = images
        for down in self.downs:
            x = down(x)
            skips.append(x)
        y = self.ups[-1](skips[-1])
        for level in range(len(self.ups) - 2, -1, -1):
            y = self.ups[level](torch.cat([skips[level], y], 1))
        return y


# ----------------------------------------------------------------------------- discriminator


def patch_size(n_layers: int) -> int:
    """The receptive field (pixels) of one output of `PatchDiscriminator`: 70 at 3 layers."""
    field = 1 + 3 + 3  # the two stride-1 4x4 convolutions at the end
    for _ in range(n_layers):
        field = 2 * field + 2  # a stride-2 4x4 convolution below them
    return field


def patch_layers_for(resolution: int) -> int:
    """The PatchGAN depth for R x R images: ``clamp(log2(R) - 5, 1, 3)``, which keeps the
    patch near a quarter of the image side or less: 3 layers (70 px patches) at 256 px as in
    the papers, 2 (34 px) at 128, 1 (16 px) at 64 px and below."""
    return max(1, min(3, round(math.log2(resolution)) - 5))


class PatchDiscriminator(nn.Module):
    """The PatchGAN (``NLayerDiscriminator``): ``n_layers`` stride-2 4x4 convolutions
    (``ndf``, then doubling up to ``8 ndf``), one stride-1 4x4 convolution and a stride-1 4x4
    convolution to one channel, LeakyReLU 0.2, no norm after the first.  Images ``[N, C, H,
    W]`` -> raw scores ``[N, 1, h, w]``, one per overlapping patch of `patch_size` pixels."""

    def __init__(
        self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance"
    ) -> None:
        super().__init__()
        bias = _bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def patch_loss(scores: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """The reference's ``GANLoss`` on a score map: every patch's score against the target 1
    (``real``) or 0, averaged.  ``lsgan``: squared error (Mao et al.; CycleGAN's default);
    ``vanilla``: binary cross-entropy on the scores as logits (pix2pix's)."""
    target = torch.full_like(scores, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(scores.float(), target.float())
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(scores.float(), target.float())
    raise ValueError(f"gan loss must be one of {GAN_LOSSES}, got {mode!r}")


# ----------------------------------------------------------------------------- any input size


def padded_size(height: int, width: int, multiple: int, minimum: int) -> tuple[int, int]:
    """The smallest size >= ``(height, width)`` and >= ``minimum`` a side that divides by
    ``multiple``."""

    def side(n: int) -> int:
        return max(minimum, -(-n // multiple) * multiple)

    return side(height), side(width)


def pad_to(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``images [N, C, H, W]`` padded (split evenly, the extra pixel at the bottom/right) to
    ``size``: mirrored (reflect) where the image is large enough for it, its edge pixels
    repeated where a side is too short to mirror."""
    h, w = images.shape[-2:]
    top, left = (size[0] - h) // 2, (size[1] - w) // 2
    pads = (left, size[1] - w - left, top, size[0] - h - top)
    if not any(pads):
        return images
    mirror = max(pads[:2]) < w and max(pads[2:]) < h
    return F.pad(images, pads, mode="reflect" if mirror else "replicate")


def crop_from(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The ``size`` region that `pad_to` padded around, cut back out of ``images``."""
    h, w = images.shape[-2:]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return images[..., top : top + size[0], left : left + size[1]]


# ----------------------------------------------------------------------------- shared options


def check_translation_options(cfg: Any) -> None:
    """The config checks pix2pix and cyclegan share: widths, ResNet blocks, the PatchGAN
    depth, the GAN loss, Adam's rate and betas, and the linear decay's start and length."""
    r = cfg.resolution
    check(cfg.ngf >= 1 and cfg.ndf >= 1, "ngf/ndf", (cfg.ngf, cfg.ndf), "use 1 or more")
    if cfg.n_blocks is not None:
        check(cfg.n_blocks >= 0, "n_blocks", cfg.n_blocks, "use 0 or more (or none)")
    if cfg.d_layers is not None:
        # D's map: R / 2**n after the stride-2 layers, 2 smaller after the last two convs
        most = max(n for n in range(1, 9) if r // 2**n >= 3)
        check(
            1 <= cfg.d_layers <= most,
            "d_layers",
            cfg.d_layers,
            f"use 1 to {most} at {r} px (or none: {patch_layers_for(r)})",
        )
    check(cfg.gan_loss in GAN_LOSSES, "gan_loss", cfg.gan_loss, "use lsgan or vanilla")
    check(cfg.lr > 0, "lr", cfg.lr, "learning rates must be positive")
    check(
        len(cfg.betas) == 2 and all(0 <= b < 1 for b in cfg.betas),
        "betas",
        list(cfg.betas),
        "Adam's betas are two values in [0, 1), e.g. [0.5, 0.999]",
    )
    check(cfg.lr_decay_start >= 0, "lr_decay_start", cfg.lr_decay_start, "use 0 or more")
    check(cfg.lr_decay_steps >= 0, "lr_decay_steps", cfg.lr_decay_steps, "use 0 or more")
