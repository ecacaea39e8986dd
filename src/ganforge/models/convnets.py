"""Convolutional G and D builders shared by the families of the DCGAN lineage.

``dcgan``, ``wgan`` and ``wgan-gp`` train `ConvGAN` (its three architectures: ``book28``, 28x28,
the Keras book's example; ``radford``, the paper's all-convolutional network at any power-of-two
size; ``classic32``, the architecture of the widely used single-file PyTorch reference, at
32x32); ``cgan``, ``acgan`` and ``infogan`` build on the book28 blocks and the label-conditional
generator.  A shared module of `models/`, not a family: families never import each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..data import DataSpec
from ..errors import UserError, check
from ..nn import Reshape, UpsampleConv2d, init_normal
from .adversarial import Objective, TwoPlayerModel

ARCHS = ("book28", "radford", "classic32")


NORMS = ("batch", "layer", "none")


@dataclass
class ConvConfig(Objective):
    arch: str = "book28"
    resolution: int = 28
    z_dim: int = 100
    g_channels: tuple[int, ...] = (256, 128, 64)  # from the smallest feature map up
    d_channels: tuple[int, ...] = (64, 128, 256)  # from the image down
    d_dropout: float = 0.25  # classic32 only (Dropout2d after each D block)
    # D's normalization (book28, radford): batch as in the papers; layer (or none) for a
    # gradient penalty, which is per-sample and so must not mix samples through BatchNorm
    d_norm: str = "batch"

    def validate(self) -> None:
        super().validate()
        check(self.arch in ARCHS, "arch", self.arch, f"use one of {', '.join(ARCHS)}")
        check(self.d_norm in NORMS, "d_norm", self.d_norm, f"use one of {', '.join(NORMS)}")
        if self.d_norm != "batch" and self.arch == "classic32":
            raise UserError(
                "d_norm applies to the book28 and radford architectures; classic32 "
                "keeps the reference's BatchNorm"
            )
        check(self.z_dim >= 1, "z_dim", self.z_dim, "use a positive size")
        check(0 <= self.d_dropout < 1, "d_dropout", self.d_dropout, "use a value in [0, 1)")
        check(
            all(c >= 1 for c in (*self.g_channels, *self.d_channels)),
            "g_channels/d_channels",
            (self.g_channels, self.d_channels),
            "channel counts must be positive",
        )
        if self.arch == "book28":
            check(
                self.resolution % 4 == 0,
                "resolution",
                self.resolution,
                "book28 needs a multiple of 4 (28 for Fashion-MNIST)",
            )
            check(
                len(self.g_channels) == 3 and len(self.d_channels) == 3,
                "g_channels/d_channels",
                (self.g_channels, self.d_channels),
                "book28 takes three of each",
            )
        elif self.arch == "radford":
            steps = math.log2(self.resolution) if self.resolution > 0 else 0
            check(
                steps.is_integer() and steps >= 3,
                "resolution",
                self.resolution,
                "radford needs a power of two >= 8, e.g. 32 or 64",
            )
            need = int(steps) - 2
            check(
                len(self.g_channels) == need and len(self.d_channels) == need,
                "g_channels/d_channels",
                (self.g_channels, self.d_channels),
                f"radford at {self.resolution}px takes {need} of each",
            )
        else:
            check(
                self.resolution % 16 == 0,
                "resolution",
                self.resolution,
                "classic32 needs a multiple of 16 (32 as in the reference)",
            )
            check(
                len(self.g_channels) == 3 and len(self.d_channels) == 4,
                "g_channels/d_channels",
                (self.g_channels, self.d_channels),
                "classic32 takes 3 G and 4 D channel counts",
            )


def book28_generator(
    in_dim: int, channels: tuple[int, ...], out_ch: int, res: int
) -> nn.Sequential:
    """Dense -> [C0, R/4, R/4] -> BN -> ConvT s2 -> BN -> LReLU -> ConvT s2 -> BN -> LReLU ->
    ConvT s1 -> tanh (the Keras book's Fashion-MNIST generator)."""
    c0, c1, c2 = channels
    s = res // 4
    return nn.Sequential(
        nn.Linear(in_dim, c0 * s * s),
        Reshape(c0, s, s),
        nn.BatchNorm2d(c0),
        nn.ConvTranspose2d(c0, c1, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(c1),
        nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(c1, c2, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(c2),
        nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(c2, out_ch, 3, stride=1, padding=1),
        nn.Tanh(),
    )


def norm_layer(kind: str, channels: int) -> list[nn.Module]:
    """D's normalization: BatchNorm, LayerNorm over (C, H, W) as GroupNorm(1), or nothing."""
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":
        return [nn.GroupNorm(1, channels)]
    return []


def book28_discriminator_body(
    in_ch: int, channels: tuple[int, ...], norm: str = "batch"
) -> nn.Sequential:
    """Three 3x3 stride-2 convolutions with LeakyReLU, BatchNorm on all but the first; flattened."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip((in_ch, *channels[:-1]), channels, strict=True)):
        layers.append(nn.Conv2d(a, b, 3, stride=2, padding=1))
        if i > 0:
            layers += norm_layer(norm, b)
        layers.append(nn.LeakyReLU(0.2))
    layers.append(nn.Flatten())
    return nn.Sequential(*layers)


def radford_generator(z_dim: int, channels: tuple[int, ...], out_ch: int) -> nn.Sequential:
    """z as a 1x1 map -> 4x4 by a 4x4 transposed conv, then stride-2 transposed convs doubling
    the size; BN + ReLU everywhere but the tanh output."""
    layers: list[nn.Module] = [
        Reshape(z_dim, 1, 1),
        nn.ConvTranspose2d(z_dim, channels[0], 4, 1, 0, bias=False),
        nn.BatchNorm2d(channels[0]),
        nn.ReLU(),
    ]
    for a, b in zip(channels[:-1], channels[1:], strict=True):
        layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
    layers += [nn.ConvTranspose2d(channels[-1], out_ch, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def radford_discriminator(
    in_ch: int, channels: tuple[int, ...], norm: str = "batch"
) -> nn.Sequential:
    """Stride-2 4x4 convs with LeakyReLU(0.2), BN on all but the input layer, to a 4x4 map, then a
    4x4 valid conv to one logit."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip((in_ch, *channels[:-1]), channels, strict=True)):
        layers.append(nn.Conv2d(a, b, 4, 2, 1, bias=False))
        if i > 0:
            layers += norm_layer(norm, b)
        layers.append(nn.LeakyReLU(0.2))
    layers += [nn.Conv2d(channels[-1], 1, 4, 1, 0, bias=False), nn.Flatten(0)]
    return nn.Sequential(*layers)


def classic32_generator(
    z_dim: int, channels: tuple[int, ...], out_ch: int, res: int
) -> nn.Sequential:
    """Linear -> [C0, R/4, R/4], BN, 2 x (nearest 2x, 3x3 conv, BN, LReLU), 3x3 conv, tanh.

    BatchNorm eps=0.8 reproduces the reference, which passes 0.8 as BatchNorm2d's second
    positional argument (eps, though it reads like a momentum)."""
    c0, c1, c2 = channels
    s = res // 4
    return nn.Sequential(
        nn.Linear(z_dim, c0 * s * s),
        Reshape(c0, s, s),
        nn.BatchNorm2d(c0),
        UpsampleConv2d(c0, c1),  # nn.Upsample(2) + Conv2d(3, padding=1), fused
        nn.BatchNorm2d(c1, eps=0.8),
        nn.LeakyReLU(0.2),
        UpsampleConv2d(c1, c2),
        nn.BatchNorm2d(c2, eps=0.8),
        nn.LeakyReLU(0.2),
        nn.Conv2d(c2, out_ch, 3, stride=1, padding=1),
        nn.Tanh(),
    )


def classic32_discriminator(
    in_ch: int, channels: tuple[int, ...], res: int, dropout: float
) -> nn.Sequential:
    """Four 3x3 stride-2 blocks: conv, LReLU, Dropout2d, BN (eps 0.8, not on the first); then
    Linear to one logit (the reference's sigmoid is inside the loss)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip((in_ch, *channels[:-1]), channels, strict=True)):
        layers += [nn.Conv2d(a, b, 3, 2, 1), nn.LeakyReLU(0.2), nn.Dropout2d(dropout)]
        if i > 0:
            layers.append(nn.BatchNorm2d(b, eps=0.8))
    side = res // 2 ** len(channels)
    layers += [nn.Flatten(), nn.Linear(channels[-1] * side * side, 1), nn.Flatten(0)]
    return nn.Sequential(*layers)


class ConvGAN(TwoPlayerModel):
    """Convolutional G and D with BatchNorm and LeakyReLU in one of `ARCHS` (``cfg.arch``)."""

    def build(self) -> dict[str, nn.Module]:
        cfg, ch, res = self.cfg, self.spec.channels, self.cfg.resolution
        if cfg.arch == "book28":
            side = -(-res // 8)  # three stride-2 convs with padding 1 round up
            D = nn.Sequential(
                book28_discriminator_body(ch, cfg.d_channels, cfg.d_norm),
                nn.Linear(cfg.d_channels[-1] * side * side, 1),
                nn.Flatten(0),
            )
            return {"G": book28_generator(cfg.z_dim, cfg.g_channels, ch, res), "D": D}
        if cfg.arch == "radford":
            return {
                "G": radford_generator(cfg.z_dim, cfg.g_channels, ch),
                "D": radford_discriminator(ch, cfg.d_channels, cfg.d_norm),
            }
        return {
            "G": classic32_generator(cfg.z_dim, cfg.g_channels, ch, res),
            "D": classic32_discriminator(ch, cfg.d_channels, res, cfg.d_dropout),
        }

    def initialize(self) -> None:
        init_normal(self)


class LabelConditionalGenerator(nn.Module):
    """The book28 generator fed z and a label: ``multiply`` (z times a z-sized label embedding)
    or ``concat`` (z joined with an ``embed_dim`` embedding), as ``cfg.g_cond`` says."""

    def __init__(self, cfg: Objective, spec: DataSpec) -> None:
        super().__init__()
        self.mode = cfg.g_cond
        k = spec.num_classes
        if self.mode == "multiply":
            self.embed = nn.Embedding(k, cfg.z_dim)
            in_dim = cfg.z_dim
        else:
            self.embed = nn.Embedding(k, cfg.embed_dim)
            in_dim = cfg.z_dim + cfg.embed_dim
        self.net = book28_generator(in_dim, cfg.g_channels, spec.channels, cfg.resolution)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z ``[N, z_dim]``, labels ``[N]`` int64 -> images ``[N, C, R, R]`` in [-1, 1]."""
        e = self.embed(labels)
        return self.net(z * e if self.mode == "multiply" else torch.cat([z, e], dim=1))
