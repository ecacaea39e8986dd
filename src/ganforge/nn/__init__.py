"""Leaf layers: depend on torch only, never on the rest of GANForge."""

from .layers import Reshape, UpsampleConv2d, init_normal

__all__ = ["Reshape", "UpsampleConv2d", "init_normal"]
