"""The one version string of GANForge: the package, pyproject.toml and the checkpoints read it.

It is a module of its own, in the lowest layer, so that the engine and the tools can record the
version without importing the package root (whose public names reach every layer)."""

__version__ = "0.1.0"
