"""GAN families, one per module; importing this package registers them all."""

from __future__ import annotations

from ..registry import MODELS
from . import (  # noqa: F401  (registration side effect)
    acgan,
    biggan,
    cgan,
    context_encoder,
    cyclegan,
    dcgan,
    gan,
    infogan,
    pix2pix,
    progan,
    srgan,
    stackgan,
    stylegan,
    stylegan2,
    stylegan2_pytorch,
    stylegan3,
    wgan,
)
from .base import GANModel, OptimSpec, Phase


def get_family(name: str) -> type[GANModel]:
    """The registered family class for ``name`` (a one-line error names the closest ones)."""
    return MODELS.get(name)


__all__ = ["GANModel", "OptimSpec", "Phase", "get_family"]
