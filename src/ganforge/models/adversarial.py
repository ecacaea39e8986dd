"""The two-phase G/D scheme shared by the non-saturating families (gan, dcgan, cgan).

G steps first and hands its fakes to the D step of the same iteration through ``ctx``, so each
iteration runs G forward once (as the common single-file references do), instead of twice.
"""

from __future__ import annotations

from typing import Any

import torch

from ..losses import d_nonsaturating, g_nonsaturating
from .base import Batch, GANModel, Losses, OptimSpec, Phase


class TwoPlayerModel(GANModel):
    """G and D with Adam and the non-saturating loss; subclasses build ``G`` and ``D``.

    Config fields used: ``lr_g``, ``lr_d``, ``betas``, ``label_smoothing``."""

    def param_groups(self) -> dict[str, OptimSpec]:
        c = self.cfg
        return {
            "G": OptimSpec(self.G.parameters(), lr=c.lr_g, betas=tuple(c.betas)),
            "D": OptimSpec(self.D.parameters(), lr=c.lr_d, betas=tuple(c.betas)),
        }

    def phases(self) -> list[Phase]:
        return [
            Phase("G", group="G", step=self.g_step),
            Phase("D", group="D", step=self.d_step, new_batch=False),
        ]

    def critic(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D's logits ``[N]`` for images ``[N, C, H, W]`` (and labels when conditional)."""
        return self.D(images) if labels is None else self.D(images, labels)

    def g_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        labels = batch["label"] if self.conditional else None
        fake = self.G(*self.generator_inputs(batch["image"].shape[0], labels, None))
        ctx["fake"], ctx["fake_labels"] = fake.detach(), labels
        return g_nonsaturating(self.critic(fake, labels))

    def d_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        real, labels = batch["image"], batch.get("label") if self.conditional else None
        if "fake" in ctx:
            fake, fake_labels = ctx.pop("fake"), ctx.pop("fake_labels")
        else:
            with torch.no_grad():
                fake = self.G(*self.generator_inputs(real.shape[0], labels, None))
            fake_labels = labels
        real_target = 1.0 - self.cfg.label_smoothing
        return d_nonsaturating(
            self.critic(real, labels), self.critic(fake, fake_labels), real_target=real_target
        )
