"""Image data: in-memory datasets, their `DataSpec`, the registered sources and task data sets.

`load_dataset("fmnist")`, `load_dataset("digits", resolution=32)`,
`load_dataset("folder:./images", resolution=64)`, and task data (`data/tasks.py`):
`load_dataset("masked:fmnist", options=TaskOptions(mask="strokes"))`, `"pix2pix:PATH"`, ...
Importing this package registers them all in `ganforge.registry.DATASETS`.  Training batch k is
`data.batch(index, key=batch_key(seed, k))`.
"""

from . import sources as _sources  # noqa: F401  (registers the sources)
from . import tasks as _tasks  # noqa: F401  (registers the task data sets, after the sources)
from .core import Dataset, DataSpec, ImageDataset, TaskOptions, batch_key, load_dataset
from .idx import parse_idx
from .sources import find_data_dir
from .tasks import (
    CaptionedDataset,
    LowresDataset,
    MaskedDataset,
    PairedDataset,
    UnpairedDataset,
    tokenize,
)

__all__ = [
    "CaptionedDataset",
    "DataSpec",
    "Dataset",
    "ImageDataset",
    "LowresDataset",
    "MaskedDataset",
    "PairedDataset",
    "TaskOptions",
    "UnpairedDataset",
    "batch_key",
    "find_data_dir",
    "load_dataset",
    "parse_idx",
    "tokenize",
]
