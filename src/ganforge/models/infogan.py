"""``infogan``: InfoGAN (Chen et al. 2016) on the book28 networks.

G's input is noise z plus latent codes c: one categorical code (10-way by default) and
continuous codes (2, uniform in [-1, 1]).  A Q head on D's body predicts c from an image; the
mutual-information lower bound is maximised by minimising Q's cross-entropy (categorical) and
Gaussian negative log-likelihood (continuous).  D's step trains Q and the body on it, G's step
trains G, so the codes come to control distinct factors without any labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSpec
from ..errors import UserError, check
from ..nn import init_normal
from ..registry import MODELS
from .adversarial import Objective, TwoPlayerModel
from .base import Batch, Losses
from .convnets import NORMS, book28_discriminator_body, book28_generator


@dataclass
class Config(Objective):
    resolution: int = 28
    z_dim: int = 62  # noise; the paper's MNIST model uses 62 + 10 + 2
    n_cat: int = 10  # categories of the categorical code
    n_cont: int = 2  # continuous codes, uniform in [-1, 1]
    lambda_cat: float = 1.0
    lambda_cont: float = 0.1
    g_channels: tuple[int, int, int] = (256, 128, 64)
    d_channels: tuple[int, int, int] = (64, 128, 256)
    d_norm: str = "batch"
    q_hidden: int = 128

    def validate(self) -> None:
        super().validate()
        check(self.n_cat >= 2, "n_cat", self.n_cat, "use 2 or more categories")
        check(self.n_cont >= 0, "n_cont", self.n_cont, "use 0 or more continuous codes")
        check(self.lambda_cat >= 0, "lambda_cat", self.lambda_cat, "use 0 or more")
        check(self.lambda_cont >= 0, "lambda_cont", self.lambda_cont, "use 0 or more")
        check(self.resolution % 4 == 0, "resolution", self.resolution, "use a multiple of 4")
        check(self.d_norm in NORMS, "d_norm", self.d_norm, f"use one of {', '.join(NORMS)}")


class InfoDiscriminator(nn.Module):
    """book28 body with a source head and a Q head (categorical logits, continuous mean and
    log-std)."""

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__()
        side = -(-cfg.resolution // 8)
        features = cfg.d_channels[-1] * side * side
        self.body = book28_discriminator_body(spec.channels, cfg.d_channels, cfg.d_norm)
        self.source = nn.Linear(features, 1)
        self.q = nn.Sequential(
            nn.Linear(features, cfg.q_hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(cfg.q_hidden, cfg.n_cat + 2 * cfg.n_cont),
        )

    def both(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(images)
        return self.source(h).flatten(), self.q(h)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.both(images)[0]


@MODELS.register("infogan", doc="InfoGAN (Chen 2016): latent codes recovered by a Q head")
class InfoGAN(TwoPlayerModel):
    """Unsupervised: the categorical code tends to pick the class, the continuous ones style."""

    Config = Config
    DEFAULT_PRESET = "chen"
    PRESETS = {
        # the paper's MNIST settings: G learns 5x faster than D (1e-3 vs 2e-4); at an equal
        # 2e-4 the categorical code came out nearly independent of the class (purity 0.28
        # against 0.63 in a 3-minute Fashion-MNIST run)
        "chen": {
            "lr_g": 1e-3,
            "train.steps": 3000,
            "train.sample_every": 500,
            "train.grid_size": 100,
        },
        "tiny": {
            "g_channels": [16, 8, 8],
            "d_channels": [8, 8, 16],
            "z_dim": 8,
            "q_hidden": 8,
            "train.batch_size": 16,
            "train.grid_size": 20,
        },
    }

    def build(self) -> dict[str, nn.Module]:
        cfg, spec = self.cfg, self.spec
        in_dim = cfg.z_dim + cfg.n_cat + cfg.n_cont
        return {
            "G": book28_generator(in_dim, cfg.g_channels, spec.channels, cfg.resolution),
            "D": InfoDiscriminator(cfg, spec),
        }

    def initialize(self) -> None:
        init_normal(self)

    # ----- latent codes ---------------------------------------------------------------------
    def make_input(self, z: torch.Tensor, cat: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        """G's input ``[N, z_dim + n_cat + n_cont]`` from noise, category indices and codes."""
        onehot = F.one_hot(cat.long(), self.cfg.n_cat).to(z.dtype)
        return torch.cat([z, onehot, cont.to(z.dtype)], dim=1)

    def split_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.cfg
        z, onehot, cont = x.split([c.z_dim, c.n_cat, c.n_cont], dim=1)
        return z, onehot.argmax(1), cont

    def generator_inputs(
        self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        c = self.cfg
        z = torch.randn(n, c.z_dim, generator=generator)
        cat = torch.randint(0, c.n_cat, (n,), generator=generator)
        cont = torch.rand(n, c.n_cont, generator=generator) * 2 - 1
        return (self.make_input(z, cat, cont).to(self.device),)

    def truncated_inputs(
        self, args: tuple[Any, ...], truncation: float | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        """Truncation scales the noise only; the codes keep their meaning."""
        if truncation is None or truncation == 1.0:
            return args
        z, cat, cont = self.split_input(args[0])
        (z,) = super().truncated_inputs((z,), truncation, generator)
        return (self.make_input(z, cat, cont), *args[1:])

    @torch.no_grad()
    def vary(self, code: str, *, rows: int = 8, steps: int = 10, seed: int = 0) -> torch.Tensor:
        """A grid varying one code along each row, everything else fixed per row: ``code`` is
        ``cat`` (every category) or ``contK`` (-2..2, past the training range of -1..1).
        Returns ``[rows * steps, C, H, W]`` in [-1, 1], row-major."""
        c = self.cfg
        (base,) = self.generator_inputs(rows, None, torch.Generator().manual_seed(seed))
        z, cat, cont = self.split_input(base.cpu())
        if code == "cat":
            steps = c.n_cat
            values = torch.arange(c.n_cat)
        elif code.startswith("cont") and code[4:].isdigit() and int(code[4:]) < c.n_cont:
            values = torch.linspace(-2, 2, steps)
        else:
            conts = ", ".join(f"cont{i}" for i in range(c.n_cont))
            raise UserError(f"unknown code {code!r} to vary; use cat or {conts}")
        zs, cats, conts_ = [], [], []
        for r in range(rows):
            for v in values:
                zs.append(z[r])
                cats.append(v.long() if code == "cat" else cat[r])
                k = cont[r].clone()
                if code != "cat":
                    k[int(code[4:])] = v
                conts_.append(k)
        x = self.make_input(torch.stack(zs), torch.stack(cats), torch.stack(conts_))
        net = self.G_ema.eval()
        return net(x.to(self.device)).float().clamp(-1, 1)

    # ----- training ---------------------------------------------------------------------------
    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None):
        return self.D.both(self._augment(images))

    def aux_losses(
        self, role: str, real_aux: Any, fake_aux: Any, batch: Batch, fake_inputs: tuple[Any, ...]
    ) -> Losses:
        """The mutual-information loss on the generated images, for both players."""
        c = self.cfg
        _, cat, cont = self.split_input(fake_inputs[0])
        cat_logits, mean, log_std = fake_aux.split([c.n_cat, c.n_cont, c.n_cont], dim=1)
        info_cat = F.cross_entropy(cat_logits, cat)
        losses = {"info_cat": c.lambda_cat * info_cat}
        if c.n_cont:
            log_std = log_std.clamp(-5, 5)
            nll = log_std + 0.5 * ((cont - mean) / log_std.exp()) ** 2 + 0.5 * math.log(2 * math.pi)
            losses["info_cont"] = c.lambda_cont * nll.sum(1).mean()
        return losses
