"""``dcgan``: deep convolutional GAN (Radford, Metz and Chintala 2015).

Three architectures share the family: ``book28`` (28x28, the Keras book's example), ``radford``
(the paper's all-convolutional network at any power-of-two size) and ``classic32`` (the
architecture of the widely used single-file PyTorch reference, at 32x32); the networks are in
`ganforge.models.convnets`, which the Wasserstein families share.
"""

from __future__ import annotations

from ..registry import MODELS
from .convnets import ConvConfig, ConvGAN

Config = ConvConfig


@MODELS.register(
    "dcgan", doc="Deep convolutional GAN (Radford 2015); presets book28, radford, classic32"
)
class DCGAN(ConvGAN):
    """Convolutional G and D with BatchNorm and LeakyReLU; see the presets for the variants."""

    Config = Config
    DEFAULT_PRESET = "book28"
    PRESETS = {
        # Trains to recognisable garments in a few CPU minutes (see README).
        "book28": {"train.steps": 1500, "train.sample_every": 250, "train.checkpoint_every": 500},
        "radford": {
            "arch": "radford",
            "resolution": 64,
            "g_channels": [512, 256, 128, 64],
            "d_channels": [64, 128, 256, 512],
            "train.batch_size": 128,
        },
        "classic32": {
            "arch": "classic32",
            "d_output": "sigmoid",  # the reference ends D in nn.Sigmoid and uses nn.BCELoss
            "resolution": 32,
            "g_channels": [128, 128, 64],
            "d_channels": [16, 32, 64, 128],
        },
        "tiny": {
            "g_channels": [16, 8, 8],
            "d_channels": [8, 8, 16],
            "z_dim": 16,
            "train.batch_size": 16,
            "train.grid_size": 16,
        },
    }
