"""Spectral normalization as BigGAN computes it (Brock et al. 2019; Miyato et al. 2018).

``torch.nn.utils.parametrizations.spectral_norm`` (which the other families use for D) keeps
both singular vectors and, in eval mode, reuses its last estimate.  BigGAN keeps only ``u`` per
singular value (buffers ``u0``, ``u1`` ..., with ``sv0`` ... recorded for logging) and runs its
power iterations on every forward, also in eval mode, where it leaves ``u`` unchanged.  The two
give different weights for the same stored state, so a published BigGAN can only be reproduced
with BigGAN's own scheme; this module writes that scheme (no library provides it), keeping the
published buffer names so a BigGAN-PyTorch state dict loads strictly.

With ``num_svs`` > 1 the further singular vectors are orthogonalised against the earlier ones
(Gram-Schmidt) and the weight is divided by the first singular value only, as the reference does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _orthogonalize(x: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    """``x`` [1, d] minus its projections on each earlier (not necessarily unit) vector."""
    for y in basis:
        x = x - (x @ y.T) * y / (y @ y.T)
    return x


class SpectralNormMixin:
    """Adds BigGAN's spectral normalization to a layer with a ``weight`` [out, ...]: call
    `init_spectral_norm` in ``__init__`` and use `normalized_weight` in ``forward``."""

    weight: torch.Tensor
    training: bool

    def init_spectral_norm(self, rows: int, num_svs: int, num_itrs: int, eps: float) -> None:
        self.num_svs, self.num_itrs, self.sn_eps = num_svs, num_itrs, eps
        for i in range(num_svs):
            self.register_buffer(f"u{i}", torch.randn(1, rows))
            self.register_buffer(f"sv{i}", torch.ones(1))

    def _power_iteration(self, w: torch.Tensor) -> list[torch.Tensor]:
        """One step of the power method for each singular value of ``w`` [out, in]; updates the
        stored ``u`` in training mode.  The singular values keep their gradient through ``w``;
        the singular vectors are constants of the step, as in the reference."""
        us: list[torch.Tensor] = []
        vs: list[torch.Tensor] = []
        svs = []
        for i in range(self.num_svs):
            stored = getattr(self, f"u{i}")
            with torch.no_grad():
                v = F.normalize(_orthogonalize(stored @ w, vs), eps=self.sn_eps)
                u = F.normalize(_orthogonalize(v @ w.T, us), eps=self.sn_eps)
                vs.append(v)
                us.append(u)
                if self.training:
                    stored.copy_(u)
            svs.append(((v @ w.T) @ u.T).squeeze())
        return svs

    def normalized_weight(self) -> torch.Tensor:
        """``weight / sigma``, sigma from `num_itrs` power iterations (in eval mode each starts
        from the same stored ``u``, so they all give the same value)."""
        w = self.weight.reshape(self.weight.shape[0], -1)
        for _ in range(self.num_itrs):
            svs = self._power_iteration(w)
        if self.training:
            with torch.no_grad():
                for i, sv in enumerate(svs):
                    getattr(self, f"sv{i}").copy_(sv.detach())
        return self.weight / svs[0]


class SNConv2d(nn.Conv2d, SpectralNormMixin):
    """``nn.Conv2d`` with BigGAN's spectral normalization (buffers ``u0``, ``sv0``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        bias: bool = True,
        *,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-6,
    ) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self.init_spectral_norm(out_channels, num_svs, num_itrs, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


class SNLinear(nn.Linear, SpectralNormMixin):
    """``nn.Linear`` with BigGAN's spectral normalization."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-6,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias)
        self.init_spectral_norm(out_features, num_svs, num_itrs, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class SNEmbedding(nn.Embedding, SpectralNormMixin):
    """``nn.Embedding`` [classes, dim] with BigGAN's spectral normalization (the projection
    discriminator's class vectors; the matrix is normalised as [classes, dim])."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-6,
    ) -> None:
        nn.Embedding.__init__(self, num_embeddings, embedding_dim)
        self.init_spectral_norm(num_embeddings, num_svs, num_itrs, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.embedding(x, self.normalized_weight())
