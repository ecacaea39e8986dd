"""Adversarial and reconstruction losses as pure functions of logits and tensors.

Discriminators output raw logits ``[N]``; the sigmoid lives inside the loss (log-sigmoid via
softplus), which is the numerically stable form of BCE on probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_nonsaturating(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, *, real_target: float = 1.0
) -> dict[str, torch.Tensor]:
    """BCE for D: ``-log D(x) - log(1 - D(G(z)))``, halved as in the common references.

    ``real_target`` < 1 is one-sided label smoothing (Salimans et al. 2016)."""
    real = F.binary_cross_entropy_with_logits(
        real_logits, torch.full_like(real_logits, real_target)
    )
    fake = F.softplus(fake_logits).mean()  # = BCE(fake_logits, 0)
    return {"loss": 0.5 * (real + fake), "real": real, "fake": fake}


def g_nonsaturating(fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Non-saturating G loss ``-log D(G(z))`` (Goodfellow 2014, section 3)."""
    return {"loss": F.softplus(-fake_logits).mean()}
