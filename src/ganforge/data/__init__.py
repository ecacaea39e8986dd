"""Image data: in-memory datasets, their `DataSpec`, and the registered sources.

`load_dataset("fmnist")`, `load_dataset("digits", resolution=32)`,
`load_dataset("folder:./images", resolution=64)`; importing this package registers the sources
in `ganforge.registry.DATASETS`.
"""

from . import sources as _sources  # noqa: F401  (registers the sources)
from .core import DataSpec, ImageDataset, load_dataset
from .idx import parse_idx
from .sources import find_data_dir

__all__ = ["DataSpec", "ImageDataset", "find_data_dir", "load_dataset", "parse_idx"]
