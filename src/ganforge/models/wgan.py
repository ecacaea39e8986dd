"""``wgan`` and ``wgan-gp``: Wasserstein GANs on the DCGAN networks (`models.convnets`).

``wgan`` (Arjovsky et al. 2017): a critic with linear output, its weights clipped to [-0.01,
0.01], RMSprop at 5e-5, five critic steps per generator step.  ``wgan-gp`` (Gulrajani et al.
2017): a gradient penalty of weight 10 instead of clipping, Adam at 1e-4 with betas (0, 0.9),
five critic steps, and no BatchNorm in the critic (the penalty is per sample; the paper uses
layer normalization).  Both log the critic's Wasserstein estimate, ``D/wasserstein``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import MODELS
from .adversarial import RegConfig
from .convnets import ConvConfig, ConvGAN

TINY = {
    "g_channels": [16, 8, 8],
    "d_channels": [8, 8, 16],
    "z_dim": 16,
    "n_critic": 2,
    "train.batch_size": 16,
    "train.grid_size": 16,
}


@dataclass
class WGANConfig(ConvConfig):
    loss: str = "wasserstein"
    reg: RegConfig = field(default_factory=lambda: RegConfig(clip=0.01))
    optimizer: str = "rmsprop"
    lr_g: float = 5e-5
    lr_d: float = 5e-5
    n_critic: int = 5


@dataclass
class WGANGPConfig(ConvConfig):
    loss: str = "wasserstein"
    reg: RegConfig = field(default_factory=lambda: RegConfig(gp=10.0))
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    n_critic: int = 5
    d_norm: str = "layer"


@MODELS.register("wgan", doc="Wasserstein GAN: linear critic, weight clipping, RMSprop (2017)")
class WGAN(ConvGAN):
    """DCGAN (book28) networks trained as a WGAN; ``--set arch=radford`` etc. picks another."""

    Config = WGANConfig
    DEFAULT_PRESET = "arjovsky"
    PRESETS = {
        "arjovsky": {"train.steps": 3000, "train.sample_every": 500},
        "tiny": TINY,
    }


@MODELS.register("wgan-gp", doc="WGAN with gradient penalty: 10, Adam (0, 0.9), 5 critic steps")
class WGANGP(ConvGAN):
    """DCGAN generator, layer-normalized critic, trained with the gradient penalty."""

    Config = WGANGPConfig
    DEFAULT_PRESET = "gulrajani"
    PRESETS = {
        "gulrajani": {"train.steps": 3000, "train.sample_every": 500},
        "tiny": TINY,
    }
