"""``cgan``: conditional GAN (Mirza and Osindero 2014) on the book28 convolutional networks.

The label reaches the networks in one of the book's two ways, chosen per network:
G ``multiply`` (z times a z-sized label embedding) or ``concat`` (z joined with an embedding);
D ``channel`` (an image-sized label embedding stacked as an extra input channel) or ``concat``
(an embedding joined to D's flattened features before the output layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import DataSpec
from ..errors import check
from ..nn import init_normal
from ..registry import MODELS
from .adversarial import Objective, TwoPlayerModel
from .base import Task
from .convnets import NORMS, LabelConditionalGenerator, book28_discriminator_body


@dataclass
class Config(Objective):
    resolution: int = 28
    z_dim: int = 100
    g_cond: str = "multiply"  # multiply | concat
    d_cond: str = "channel"  # channel | concat
    embed_dim: int = 50  # label embedding size for the concat ways
    g_channels: tuple[int, int, int] = (256, 128, 64)
    d_channels: tuple[int, int, int] = (64, 128, 256)
    d_norm: str = "batch"  # batch | layer | none (layer or none for gradient penalties)

    def validate(self) -> None:
        super().validate()
        check(self.d_norm in NORMS, "d_norm", self.d_norm, f"use one of {', '.join(NORMS)}")
        check(
            self.g_cond in ("multiply", "concat"), "g_cond", self.g_cond, "use multiply or concat"
        )
        check(self.d_cond in ("channel", "concat"), "d_cond", self.d_cond, "use channel or concat")
        check(self.resolution % 4 == 0, "resolution", self.resolution, "use a multiple of 4")
        check(self.embed_dim >= 1, "embed_dim", self.embed_dim, "use a positive size")


class ConditionalDiscriminator(nn.Module):
    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__()
        self.mode = cfg.d_cond
        self.res = cfg.resolution
        k, ch = spec.num_classes, spec.channels
        side = -(-cfg.resolution // 8)
        features = cfg.d_channels[-1] * side * side
        if self.mode == "channel":
            self.embed = nn.Embedding(k, cfg.resolution**2)
            self.body = book28_discriminator_body(ch + 1, cfg.d_channels, cfg.d_norm)
            self.head = nn.Linear(features, 1)
        else:
            self.embed = nn.Embedding(k, cfg.embed_dim)
            self.body = book28_discriminator_body(ch, cfg.d_channels, cfg.d_norm)
            self.head = nn.Linear(features + cfg.embed_dim, 1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """images ``[N, C, R, R]``, labels ``[N]`` -> logits ``[N]``."""
        e = self.embed(labels)
        if self.mode == "channel":
            x = torch.cat([images, e.view(-1, 1, self.res, self.res)], dim=1)
            return self.head(self.body(x)).flatten()
        return self.head(torch.cat([self.body(images), e], dim=1)).flatten()


@MODELS.register("cgan", doc="Conditional GAN (Mirza 2014): label embedding given to G and D")
class CGAN(TwoPlayerModel):
    """Class-conditional book28 DCGAN; ``generate(n, labels=k)`` draws class k."""

    Config = Config
    DEFAULT_PRESET = "book28"
    TASK = Task("noise", labels=True)
    PRESETS = {
        "book28": {"train.steps": 2000, "train.sample_every": 250, "train.grid_size": 100},
        "mirza": {"g_cond": "concat", "d_cond": "concat", "train.grid_size": 100},
        "tiny": {
            "g_channels": [16, 8, 8],
            "d_channels": [8, 8, 16],
            "z_dim": 16,
            "embed_dim": 4,
            "train.batch_size": 16,
            "train.grid_size": 20,
        },
    }

    def build(self) -> dict[str, nn.Module]:
        return {
            "G": LabelConditionalGenerator(self.cfg, self.spec),
            "D": ConditionalDiscriminator(self.cfg, self.spec),
        }

    def initialize(self) -> None:
        init_normal(self)

    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        inputs = super().summary_inputs()
        return {**inputs, "D": (*inputs["D"], inputs["G"][1])}
