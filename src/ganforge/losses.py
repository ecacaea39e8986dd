"""Adversarial and reconstruction losses as pure functions of logits and tensors.

Discriminators output raw values ``[N]``: logits for the probabilistic losses (the sigmoid lives
inside the loss, via softplus, which is the numerically stable form of BCE on probabilities) and
unbounded scores for the others.  Every ``d_<name>(real_logits, fake_logits)`` returns
``{"loss", "real", "fake", ...}`` and every ``g_<name>(fake_logits)`` returns ``{"loss", ...}``.
For all but ``nonsaturating``/``minimax`` (halved, see there) ``loss = real + fake``.  All
reductions are means over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import UserError, did_you_mean

Losses = dict[str, torch.Tensor]
DLoss = Callable[..., Losses]
GLoss = Callable[[torch.Tensor], Losses]


def d_nonsaturating(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, *, real_target: float = 1.0
) -> Losses:
    """BCE for D: ``-log D(x) - log(1 - D(G(z)))``, halved as in the common references.

    ``real_target`` < 1 is one-sided label smoothing (Salimans et al. 2016)."""
    real = F.binary_cross_entropy_with_logits(
        real_logits, torch.full_like(real_logits, real_target)
    )
    fake = F.softplus(fake_logits).mean()  # = BCE(fake_logits, 0)
    return {"loss": 0.5 * (real + fake), "real": real, "fake": fake}


def g_nonsaturating(fake_logits: torch.Tensor) -> Losses:
    """Non-saturating G loss ``-log D(G(z))`` (Goodfellow 2014, section 3)."""
    return {"loss": F.softplus(-fake_logits).mean()}


def d_minimax(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, *, real_target: float = 1.0
) -> Losses:
    """D's side of the minimax game is the same BCE as :func:`d_nonsaturating`; only G differs."""
    return d_nonsaturating(real_logits, fake_logits, real_target=real_target)


def g_minimax(fake_logits: torch.Tensor) -> Losses:
    """Saturating G loss: minimise ``log(1 - D(G(z)))`` (Goodfellow 2014, eq. 1).

    With ``D = sigmoid(l)``, ``log(1 - sigmoid(l)) = -softplus(l)``; its gradient ``-sigmoid(l)``
    vanishes when D confidently rejects the fakes (``l`` very negative), which is why the
    non-saturating form exists."""
    return {"loss": (-F.softplus(fake_logits)).mean()}


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> Losses:
    """Hinge loss for D (Lim & Ye 2017; SAGAN, BigGAN): ``relu(1 - D(x)) + relu(1 + D(G(z)))``."""
    real = F.relu(1.0 - real_logits).mean()
    fake = F.relu(1.0 + fake_logits).mean()
    return {"loss": real + fake, "real": real, "fake": fake}


def g_hinge(fake_logits: torch.Tensor) -> Losses:
    """G's hinge loss is the plain ``-D(G(z))``."""
    return {"loss": (-fake_logits).mean()}


def d_wasserstein(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> Losses:
    """Critic loss ``D(G(z)) - D(x)`` (Arjovsky et al. 2017).

    Only meaningful with a Lipschitz constraint (weight clipping, gradient penalty or spectral
    norm).  ``"wasserstein"`` is the critic's estimate of the distance, ``mean(real) -
    mean(fake)``: the number to watch, since it tracks sample quality."""
    real = -real_logits.mean()
    fake = fake_logits.mean()
    return {"loss": real + fake, "real": real, "fake": fake, "wasserstein": -(real + fake)}


def g_wasserstein(fake_logits: torch.Tensor) -> Losses:
    """G raises the critic's score of its samples: ``-D(G(z))``."""
    return {"loss": (-fake_logits).mean()}


def d_lsgan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> Losses:
    """Least squares for D (Mao et al. 2017, eq. 9 with a=0, b=1):
    ``1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2``."""
    real = 0.5 * (real_logits - 1.0).square().mean()
    fake = 0.5 * fake_logits.square().mean()
    return {"loss": real + fake, "real": real, "fake": fake}


def g_lsgan(fake_logits: torch.Tensor) -> Losses:
    """Least squares for G (c=1): ``1/2 (D(G(z)) - 1)^2``."""
    return {"loss": 0.5 * (fake_logits - 1.0).square().mean()}


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> Losses:
    """The non-saturating logistic loss of StyleGAN/StyleGAN2 for D:
    ``softplus(D(G(z))) + softplus(-D(x))``, the BCE of `d_nonsaturating` without the halving,
    which sets the scale R1's gamma is tuned against."""
    real = F.softplus(-real_logits).mean()
    fake = F.softplus(fake_logits).mean()
    return {"loss": real + fake, "real": real, "fake": fake}


LOSSES: dict[str, tuple[DLoss, GLoss]] = {
    "nonsaturating": (d_nonsaturating, g_nonsaturating),
    "minimax": (d_minimax, g_minimax),
    "hinge": (d_hinge, g_hinge),
    "wasserstein": (d_wasserstein, g_wasserstein),
    "lsgan": (d_lsgan, g_lsgan),
    "logistic": (d_logistic, g_nonsaturating),
}

# Losses that read D's output as the logit of a probability (label smoothing applies to these).
PROBABILISTIC_LOSSES = frozenset({"nonsaturating", "minimax"})


def get_loss(name: str) -> tuple[DLoss, GLoss]:
    """``(d_fn, g_fn)`` for a loss name; a one-line :class:`UserError` for unknown names."""
    if name in LOSSES:
        return LOSSES[name]
    hint = did_you_mean(name, LOSSES)
    if not all(valid in hint for valid in LOSSES):  # a suggestion only: name them all too
        hint += f"; valid losses: {', '.join(LOSSES)}"
    raise UserError(f"unknown adversarial loss {name!r}{hint}")


def reconstruction_loss(a: torch.Tensor, b: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute (``"l1"``, pix2pix, CycleGAN) or squared (``"l2"``, context encoder)
    difference of two tensors of the same shape, averaged over every element."""
    if a.shape != b.shape:
        raise ValueError(
            f"reconstruction_loss: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}"
        )
    if kind == "l1":
        return F.l1_loss(a, b)
    if kind == "l2":
        return F.mse_loss(a, b)
    raise UserError(f"unknown reconstruction loss {kind!r}; use l1 or l2")
