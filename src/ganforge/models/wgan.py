"""``wgan`` and ``wgan-gp``: Wasserstein GANs on the DCGAN networks (`models.convnets`).

``wgan`` (Arjovsky et al. 2017): a critic with linear output, its weights clipped to [-0.01,
0.01]; its ``arjovsky`` preset is the paper's RMSprop at 5e-5 and five critic steps per
generator step.  ``wgan-gp`` (Gulrajani et al. 2017): a gradient penalty of weight 10 instead of
clipping; its ``gulrajani`` preset is the paper's Adam at 1e-4 with betas (0, 0.9), five critic
steps, and no BatchNorm in the critic (the penalty is per sample; the paper uses layer
normalization).  Each family's default ``fast`` preset departs from its paper for time to
quality on a CPU (one critic step, faster rates decaying over the second half; for wgan-gp a
lazy penalty and BatchNorm; see the presets' comments and docs/benchmarks.md).  Both log the
critic's Wasserstein estimate, ``D/wasserstein``.
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


@MODELS.register("wgan", doc="Wasserstein GAN, weight clipping; presets fast (default), arjovsky")
class WGAN(ConvGAN):
    """DCGAN (book28) networks trained as a WGAN; ``--set arch=radford`` etc. picks another."""

    Config = WGANConfig
    DEFAULT_PRESET = "fast"
    PRESETS = {
        # what learns fastest per CPU second with clipping (docs/benchmarks.md has the runs):
        # one critic step per G step, RMSprop at 4e-4 for G and 2e-4 for the critic, batch 32,
        # both rates decaying linearly to zero over the second half; 14,000 steps are about
        # 15 minutes on 2 CPU cores.  Adam, which the paper found unstable with clipping, was
        # worse here too (5-minute trials: FID 44.9 against RMSprop's 29.4)
        "fast": {
            "n_critic": 1,
            "lr_g": 4e-4,
            "lr_d": 2e-4,
            "train.batch_size": 32,
            "lr_schedule": "linear",
            "lr_decay_start": 7000,
            "lr_decay_steps": 7000,
            "train.steps": 14000,
            "train.sample_every": 1000,
        },
        # the paper's settings: 5 critic steps, RMSprop 5e-5, clipping at 0.01
        "arjovsky": {"train.steps": 3000, "train.sample_every": 500},
        "tiny": TINY,
    }


@MODELS.register("wgan-gp", doc="WGAN with gradient penalty 10; presets fast (default), gulrajani")
class WGANGP(ConvGAN):
    """The DCGAN (book28) networks trained with the gradient penalty; the critic is
    batch-normalized in ``fast`` and layer-normalized in ``gulrajani``."""

    Config = WGANGPConfig
    DEFAULT_PRESET = "fast"
    PRESETS = {
        # what learns fastest per CPU second (docs/benchmarks.md has the runs and the profile):
        # one critic step per G step with the penalty lazily every 4 (scaled by 4), G's rate
        # twice D's, batch 32, and BatchNorm in the critic.  The penalty then sees batch statistics
        # of the interpolates rather than a per-sample critic, which the paper avoids; in 5-minute
        # trials it took FID from 21.1 (layer norm, same settings) to 13.8, with more steps too
        "fast": {
            "n_critic": 1,
            "reg.every": 4,
            "lr_g": 4e-4,
            "lr_d": 2e-4,
            "d_norm": "batch",
            "train.batch_size": 32,
            # both rates decay linearly to zero over the second half, as the paper's own CIFAR-10
            # code decays them; 15,000 steps are about 15 minutes on 2 CPU cores
            "lr_schedule": "linear",
            "lr_decay_start": 7500,
            "lr_decay_steps": 7500,
            "train.steps": 15000,
            "train.sample_every": 1000,
        },
        # the paper's settings: 5 critic steps, Adam 1e-4 (0, 0.9), layer-normalized critic
        "gulrajani": {"train.steps": 3000, "train.sample_every": 500},
        "tiny": TINY,
    }
