"""``acgan``: auxiliary classifier GAN (Odena, Olah and Shlens 2017).

G is class-conditional (z times a label embedding, on the book28 generator); D has one body and
two heads: the source (real or fake) and the class.  Both players also minimise the class
cross-entropy: D on real and generated images, G on its own images, so G learns to make images
D can classify as the class asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSpec
from ..errors import check
from ..nn import init_normal
from ..registry import MODELS
from .adversarial import Objective, TwoPlayerModel
from .base import Batch, Losses, Task
from .convnets import NORMS, LabelConditionalGenerator, book28_discriminator_body


@dataclass
class Config(Objective):
    resolution: int = 28
    z_dim: int = 100
    g_cond: str = "multiply"  # multiply | concat, as in cgan
    embed_dim: int = 50
    g_channels: tuple[int, int, int] = (256, 128, 64)
    d_channels: tuple[int, int, int] = (64, 128, 256)
    d_norm: str = "batch"
    aux_weight: float = 1.0  # weight of the class cross-entropy for both players
    # the paper trains D's class head on generated images too; off, it learns from real ones
    # only, so G cannot satisfy it with class-specific artefacts the two agree on
    d_class_on_fake: bool = True

    def validate(self) -> None:
        super().validate()
        check(
            self.g_cond in ("multiply", "concat"), "g_cond", self.g_cond, "use multiply or concat"
        )
        check(self.resolution % 4 == 0, "resolution", self.resolution, "use a multiple of 4")
        check(self.aux_weight >= 0, "aux_weight", self.aux_weight, "use 0 or more")
        check(self.d_norm in NORMS, "d_norm", self.d_norm, f"use one of {', '.join(NORMS)}")


class AuxiliaryDiscriminator(nn.Module):
    """book28 body; ``forward`` gives the source logits ``[N]``, ``both`` also the class
    logits ``[N, K]``."""

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__()
        side = -(-cfg.resolution // 8)
        features = cfg.d_channels[-1] * side * side
        self.body = book28_discriminator_body(spec.channels, cfg.d_channels, cfg.d_norm)
        self.source = nn.Linear(features, 1)
        self.classes = nn.Linear(features, spec.num_classes)

    def both(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(images)
        return self.source(h).flatten(), self.classes(h)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.both(images)[0]


@MODELS.register("acgan", doc="Auxiliary classifier GAN (Odena 2017): D predicts source and class")
class ACGAN(TwoPlayerModel):
    """Class-conditional G; D with source and auxiliary-class heads."""

    Config = Config
    DEFAULT_PRESET = "book28"
    TASK = Task("noise", labels=True)
    PRESETS = {
        # ours: D's class head learns from real images only.  Measured at 4 CPU minutes on
        # Fashion-MNIST: label agreement 0.70 and CAS 0.77, against 0.28 and 0.48 with the
        # paper's head, whose grid showed garments but no class per column.
        "book28": {
            "d_class_on_fake": False,
            "train.steps": 2000,
            "train.sample_every": 250,
            "train.grid_size": 100,
        },
        # the paper's objective: the class head also learns from generated images
        "odena": {"train.steps": 2000, "train.sample_every": 250, "train.grid_size": 100},
        "tiny": {
            "g_channels": [16, 8, 8],
            "d_channels": [8, 8, 16],
            "z_dim": 16,
            "train.batch_size": 16,
            "train.grid_size": 20,
        },
    }

    def build(self) -> dict[str, nn.Module]:
        return {
            "G": LabelConditionalGenerator(self.cfg, self.spec),
            "D": AuxiliaryDiscriminator(self.cfg, self.spec),
        }

    def initialize(self) -> None:
        init_normal(self)

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None):
        """Source logits and class logits; D itself does not see the label (the class head
        has to find it)."""
        return self.D.both(self._augment(images))

    def aux_losses(
        self, role: str, real_aux: Any, fake_aux: Any, batch: Batch, fake_inputs: tuple[Any, ...]
    ) -> Losses:
        fake_labels = fake_inputs[1]
        fake_ce = F.cross_entropy(fake_aux, fake_labels)
        w = self.cfg.aux_weight
        if role == "G":
            return {"class": w * fake_ce}
        real_ce = F.cross_entropy(real_aux, batch["label"])
        if not self.cfg.d_class_on_fake:
            return {"class": w * real_ce}
        return {"class": w * 0.5 * (real_ce + fake_ce)}
