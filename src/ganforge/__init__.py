"""GANForge: train, evaluate and use every major GAN family on one PyTorch engine.

>>> import ganforge
>>> run = ganforge.train("dcgan", steps=200)        # doctest: +SKIP
>>> g = ganforge.load(run)                           # doctest: +SKIP
>>> images = g.generate(16, seed=0)                  # [16, 1, 28, 28] in [-1, 1]  # doctest: +SKIP
>>> ganforge.save_grid(images, "grid.png")           # doctest: +SKIP
"""

__version__ = "0.1.0"

from .api import LoadedModel, create_model, list_models, load, train  # noqa: E402
from .errors import UserError  # noqa: E402
from .images import save_grid  # noqa: E402
from .tools.latent import interpolate, project, style_mix  # noqa: E402

__all__ = [
    "LoadedModel",
    "UserError",
    "__version__",
    "create_model",
    "interpolate",
    "list_models",
    "load",
    "project",
    "save_grid",
    "style_mix",
    "train",
]
