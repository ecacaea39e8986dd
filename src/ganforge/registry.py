"""Name -> builder registries for models, data sets and metrics.

Each registry states its contract in its docstring; entries register themselves with a decorator
(`@MODELS.register("dcgan")`) so that adding a family never means editing a central switch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .errors import UserError, did_you_mean


class Registry:
    """A named collection of builders, looked up by name with helpful errors."""

    def __init__(self, kind: str, doc: str) -> None:
        self.kind = kind
        self.__doc__ = doc
        self._entries: dict[str, Any] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, *, doc: str | None = None) -> Callable[[Any], Any]:
        def decorator(obj: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            text = doc if doc is not None else (obj.__doc__ or "")
            self._docs[name] = text.strip().splitlines()[0] if text.strip() else ""
            return obj

        return decorator

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)}")
        return self._entries[name]

    def doc(self, name: str) -> str:
        self.get(name)
        return self._docs[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)


MODELS = Registry(
    "model",
    """GAN families.  An entry is a subclass of `ganforge.models.base.GANModel` with a `Config`
    dataclass (defaults) and `PRESETS` (name -> dotted overrides).  It builds its networks from a
    config and a `DataSpec`, lists its training phases, and generates images in [-1, 1].""",
)

DATASETS = Registry(
    "dataset",
    """Image sources and task data sets.  An entry is a function `(arg, *, split, resolution,
    channels, data_dir, download, options) -> Dataset` holding the whole split in memory (uint8
    `[N, C, R, R]`): an `ImageDataset` for plain sources, a task data set of `data/tasks.py`
    (paired, masked, lowres, unpaired, captioned) otherwise; `options` is a
    `ganforge.data.TaskOptions`.  `arg` is the text after ':' in names like `folder:PATH` or
    `masked:fmnist` (None otherwise).""",
)

METRICS = Registry(
    "metric",
    """Evaluation metrics.  An entry is a `ganforge.metrics.catalog.Metric`, declared with the
    `ganforge.metrics.catalog.metric` decorator around the function that computes it: what it
    needs (``real`` a real or target image set, ``labels`` class labels, ``styles`` a style-based
    generator, ``targets`` pixel-aligned targets, ``masks`` inpainting masks), its kind (``sets``:
    compares two sets in a feature network's space; ``pixels``: outputs against their targets;
    ``generator``: measures the generator itself), the figures it produces, whether lower is
    better, and a doc line.  Importing `ganforge.metrics` registers the built-in ones.""",
)
