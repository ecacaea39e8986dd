"""``gan``: the original multilayer-perceptron GAN (Goodfellow et al. 2014)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import check
from ..nn import Reshape
from ..registry import MODELS
from .adversarial import Objective, TwoPlayerModel


@dataclass
class Config(Objective):
    resolution: int = 28
    z_dim: int = 100
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (1024, 512, 256)
    d_dropout: float = 0.3  # the paper trains D with dropout

    def validate(self) -> None:
        super().validate()
        check(self.resolution >= 4, "resolution", self.resolution, "use 4 or more pixels")
        check(self.z_dim >= 1, "z_dim", self.z_dim, "use a positive size")
        check(0 <= self.d_dropout < 1, "d_dropout", self.d_dropout, "use a value in [0, 1)")


def mlp(sizes: list[int], *, dropout: float = 0.0) -> list[nn.Module]:
    """Linear layers with LeakyReLU(0.2) (and dropout) between them."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


@MODELS.register("gan", doc="MLP generator and discriminator, non-saturating BCE (Goodfellow 2014)")
class GAN(TwoPlayerModel):
    """The MLP GAN: z (100) -> 256 -> 512 -> 1024 -> image, tanh; MLP D with dropout."""

    Config = Config
    DEFAULT_PRESET = "goodfellow"
    PRESETS = {
        "goodfellow": {"train.steps": 3000},
        "tiny": {
            "g_hidden": [32, 64],
            "d_hidden": [64, 32],
            "z_dim": 16,
            "train.batch_size": 16,
            "train.grid_size": 16,
        },
    }

    def build(self) -> dict[str, nn.Module]:
        cfg, spec = self.cfg, self.spec
        pixels = spec.channels * cfg.resolution**2
        G = nn.Sequential(
            *mlp([cfg.z_dim, *cfg.g_hidden]),
            nn.Linear(cfg.g_hidden[-1], pixels),
            nn.Tanh(),
            Reshape(spec.channels, cfg.resolution, cfg.resolution),
        )
        D = nn.Sequential(
            nn.Flatten(),
            *mlp([pixels, *cfg.d_hidden], dropout=cfg.d_dropout),
            nn.Linear(cfg.d_hidden[-1], 1),
            nn.Flatten(0),
        )
        return {"G": G, "D": D}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(z)
