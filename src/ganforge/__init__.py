"""GANForge: train, evaluate and use every major GAN family on one PyTorch engine.

>>> import ganforge
>>> run = ganforge.train("dcgan", steps=200)        # doctest: +SKIP
>>> g = ganforge.load(run)                           # doctest: +SKIP
>>> images = g.generate(16, seed=0)                  # [16, 1, 28, 28] in [-1, 1]  # doctest: +SKIP
>>> ganforge.save_grid(images, "grid.png")           # doctest: +SKIP

The public names load on first use (PEP 562): ``import ganforge`` alone imports neither torch
nor the families, so that ``ganforge --help`` answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> the module that defines it
_LAZY = {
    "LoadedModel": "api",
    "create_model": "api",
    "export": "api",
    "list_models": "api",
    "load": "api",
    "train": "api",
    "UserError": "errors",
    "save_grid": "images",
    "interpolate": "tools.latent",
    "project": "tools.latent",
    "style_mix": "tools.latent",
    "ModelLoader": "tools.stylegan2_pytorch",
}

__all__ = [
    "LoadedModel",
    "ModelLoader",
    "UserError",
    "__version__",
    "create_model",
    "export",
    "interpolate",
    "list_models",
    "load",
    "project",
    "save_grid",
    "style_mix",
    "train",
]

if TYPE_CHECKING:  # type checkers and IDEs see the names without the lazy lookup
    from .api import LoadedModel, create_model, export, list_models, load, train
    from .errors import UserError
    from .images import save_grid
    from .tools.latent import interpolate, project, style_mix
    from .tools.stylegan2_pytorch import ModelLoader


def __getattr__(name: str) -> Any:
    """Import the module behind a public name the first time it is asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
