"""The registered image sources: Fashion-MNIST, MNIST, scikit-learn digits, image folders.

Each source is a function `(arg, *, split, resolution, channels, data_dir, download, options) ->
ImageDataset` registered in `DATASETS` (see its docstring); importing this module registers them.
Plain sources ignore `options` (the task options of data/tasks.py).  The image-file helpers at
the end (`list_images`, `scan_folder`, `read_images`, `open_image`, `fit_square`) serve the task
layouts too.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError, did_you_mean
from ..registry import DATASETS
from .core import ImageDataset, TaskOptions, adapt_images, convert_channels, make_dataset
from .idx import parse_idx

DOWNLOAD_TIMEOUT = 15  # seconds without an answer before a download gives up


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset lives and how to check it."""

    name: str
    subfolders: tuple[str, ...]  # accepted names of a subfolder holding the files
    system_dir: str | None  # where a distribution package installs it
    url: str  # base URL of the official .gz files
    # file name -> accepted SHA-256 digests of the .gz file
    sha256: dict[str, tuple[str, ...]]
    class_names: tuple[str, ...]
    install_hint: str


IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

IDX_SOURCES = {
    "fmnist": IdxSource(
        name="fmnist",
        subfolders=("fashion-mnist", "fmnist"),
        system_dir="/usr/share/datasets/fashion-mnist",
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        # First the official files (as tensorflow/datasets' url_checksums/fashion_mnist.txt lists
        # them), then Debian's dataset-fashion-mnist copies: same data, but the package
        # recompresses the .gz files, so their bytes differ.
        sha256={
            "train-images-idx3-ubyte.gz": (
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            ),
            "train-labels-idx1-ubyte.gz": (
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            ),
            "t10k-images-idx3-ubyte.gz": (
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
            ),
        },
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        install_hint="install it with 'apt-get install dataset-fashion-mnist', or put the four "
        "IDX files in a folder and pass --data-dir DIR (or set GANFORGE_DATA)",
    ),
    "mnist": IdxSource(
        name="mnist",
        subfolders=("mnist",),
        system_dir="/usr/share/datasets/mnist",
        # The mirror torchvision downloads from; the digests are those of the official files
        # (tensorflow/datasets' url_checksums/mnist.txt).
        url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        sha256={
            "train-images-idx3-ubyte.gz": (
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            ),
            "train-labels-idx1-ubyte.gz": (
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            ),
            "t10k-images-idx3-ubyte.gz": (
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            ),
        },
        class_names=tuple(str(d) for d in range(10)),
        install_hint="download the four .gz files from https://ossci-datasets.s3.amazonaws.com/"
        "mnist/ into a folder and pass --data-dir DIR (or set GANFORGE_DATA)",
    ),
}


# ---------------------------------------------------------------- finding and fetching IDX data


def cache_dir(name: str) -> Path:
    """The per-user download folder of a dataset: $XDG_CACHE_HOME/ganforge/data/<name>."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "ganforge" / "data" / name


def _holds_files(folder: Path, source: IdxSource) -> Path | None:
    """The folder (or its dataset-named subfolder) holding all four IDX files, else None."""
    stems = [stem for pair in IDX_FILES.values() for stem in pair]
    for candidate in [folder / sub for sub in source.subfolders] + [folder]:
        if all(
            (candidate / stem).is_file() or (candidate / f"{stem}.gz").is_file() for stem in stems
        ):
            return candidate
    return None


def find_data_dir(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, download: bool = False
) -> Path:
    """The folder holding the IDX files of `name` ("fmnist" or "mnist").

    Looks in `data_dir` alone when given; otherwise in $GANFORGE_DATA, the system folder
    (/usr/share/datasets/fashion-mnist for fmnist), then the user cache, each directly or in a
    subfolder named after the dataset.  With download=True (and GANFORGE_OFFLINE unset) missing
    data is downloaded into the cache and checked against its SHA-256.
    """
    if name not in IDX_SOURCES:
        raise UserError(f"no IDX dataset named {name!r}{did_you_mean(name, IDX_SOURCES)}")
    source = IDX_SOURCES[name]
    files = ", ".join(f"{stem}[.gz]" for pair in IDX_FILES.values() for stem in pair)
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        found = _holds_files(folder, source)
        if found is None:
            subs = " or ".join(f"{s}/" for s in source.subfolders)
            raise UserError(
                f"dataset {name!r} not found in --data-dir {folder}: it needs {files} there or in "
                f"a {subs} subfolder; pass the folder that holds them"
            )
        return found
    candidates = [Path(p) for p in (os.environ.get("GANFORGE_DATA"), source.system_dir) if p]
    candidates.append(cache_dir(name))
    for folder in candidates:
        found = _holds_files(folder, source)
        if found is not None:
            return found
    if not download:
        reason = "downloading is disabled"
    elif os.environ.get("GANFORGE_OFFLINE", "") not in ("", "0"):
        reason = "GANFORGE_OFFLINE is set"
    else:
        try:
            _download(source, cache_dir(name))
            return cache_dir(name)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = f"the download failed ({exc})"
    raise UserError(
        f"dataset {name!r} not found in {', '.join(map(str, candidates))} and {reason}; "
        f"{source.install_hint}"
    )


def _download(source: IdxSource, folder: Path) -> None:
    """Fetch the missing .gz files into `folder`, each through a verified temporary file."""
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, digests in source.sha256.items():
        target = folder / file_name
        if target.is_file():
            continue  # only verified files are ever renamed into place
        url = source.url + file_name
        print(f"ganforge: downloading {url}", file=sys.stderr)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file_name}.", suffix=".part", dir=folder)
        try:
            digest = hashlib.sha256()
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response,
            ):
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() not in digests:
                raise ValueError(f"{url} has SHA-256 {digest.hexdigest()}, expected {digests[0]}")
            os.replace(tmp_name, target)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)


# ---------------------------------------------------------------- IDX sources


def _no_arg(name: str, arg: str | None) -> None:
    if arg is not None:
        raise UserError(f"dataset {name!r} takes no ':{arg}' part; use plain {name!r}")


def _idx_file(folder: Path, stem: str) -> Path:
    gz = folder / f"{stem}.gz"
    return gz if gz.is_file() else folder / stem


def _load_idx(
    name: str,
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    data_dir: str | None,
    download: bool,
    options: TaskOptions | None = None,
) -> ImageDataset:
    _no_arg(name, arg)
    source = IDX_SOURCES[name]
    folder = find_data_dir(name, data_dir, download=download)
    image_path, label_path = (_idx_file(folder, stem) for stem in IDX_FILES[split])
    images, labels = parse_idx(image_path), parse_idx(label_path)
    hint = f"re-install it or pass --data-dir with the {name} files"
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise UserError(
            f"'{image_path}' holds {images.dtype} {list(images.shape)}, expected uint8 square "
            f"images [N, H, H]; {hint}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise UserError(
            f"'{label_path}' holds {list(labels.shape)} labels for {len(images)} images in "
            f"'{image_path}'; {hint}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(source.class_names)):
        raise UserError(
            f"'{label_path}' holds labels outside 0..{len(source.class_names) - 1}; {hint}"
        )
    images = adapt_images(images[:, None], resolution=resolution, channels=channels, pad_limit=8)
    return make_dataset(images, labels, name=name, class_names=source.class_names)


@DATASETS.register("fmnist", doc="Fashion-MNIST: 70,000 28x28 grayscale garments, 10 classes")
def fmnist(arg: str | None, **options: Any) -> ImageDataset:
    return _load_idx("fmnist", arg, **options)


@DATASETS.register("mnist", doc="MNIST: 70,000 28x28 grayscale handwritten digits, 10 classes")
def mnist(arg: str | None, **options: Any) -> ImageDataset:
    return _load_idx("mnist", arg, **options)


# ---------------------------------------------------------------- scikit-learn digits

DIGITS_SEED = 0
DIGITS_TEST_FRACTION = 0.2


def _load_digits_function() -> Any:
    """scikit-learn's ``load_digits``; scikit-learn is the optional ``digits`` extra."""
    try:
        # imported late: scikit-learn is slow to import and only this set needs it
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError(
            "the 'digits' dataset needs scikit-learn, which is not installed: "
            'pip install "ganforge[digits]"'
        ) from None
    return load_digits


@DATASETS.register(
    "digits", doc="scikit-learn digits: 1,797 8x8 grayscale digits, 10 classes, bundled"
)
def digits(
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    data_dir: str | None = None,
    download: bool = True,
    options: TaskOptions | None = None,
) -> ImageDataset:
    _no_arg("digits", arg)
    load_digits = _load_digits_function()
    bunch = load_digits()
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)  # values 0..16 -> 0..255
    # RandomState's stream is frozen across numpy versions, so the split never changes.
    order = np.random.RandomState(DIGITS_SEED).permutation(len(images))
    n_test = round(len(images) * DIGITS_TEST_FRACTION)
    rows = order[:-n_test] if split == "train" else order[-n_test:]
    adapted = adapt_images(images[rows, None], resolution=resolution, channels=channels)
    names = tuple(str(d) for d in range(10))
    return make_dataset(adapted, bunch.target[rows], name="digits", class_names=names)


# ---------------------------------------------------------------- image folders

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N")
PROGRESS_MIN_FILES = 2000


@DATASETS.register("folder", doc="folder:PATH - every image under PATH; subfolders are classes")
def folder(
    arg: str | None,
    *,
    split: str,
    resolution: int | None,
    channels: int | None,
    data_dir: str | None = None,
    download: bool = True,
    options: TaskOptions | None = None,
) -> ImageDataset:
    exts = " ".join(IMAGE_EXTENSIONS)
    if not arg:
        raise UserError("dataset 'folder' needs a path: use folder:PATH, e.g. folder:./images")
    root = Path(arg).expanduser()
    if not root.is_dir():
        raise UserError(
            f"image folder '{root}' does not exist; use folder:PATH with a folder of images "
            f"({exts})"
        )
    if resolution is None:
        raise UserError(
            f"dataset 'folder:{arg}' needs a resolution (its images are resized to R x R); "
            f"give one, e.g. resolution=64"
        )
    split_folder, class_names = split_root(root, split)
    files, labels = scan_folder(split_folder, class_names)
    if not files:
        raise UserError(
            f"image folder '{split_folder}' holds no images; accepted extensions: {exts} (any case)"
        )
    images = read_images(files, resolution, channels, split_folder)
    label_array = None if labels is None else np.asarray(labels, dtype=np.int64)
    return make_dataset(
        images,
        label_array,
        name=f"folder:{arg}",
        class_names=class_names if labels is not None else (),
    )


def _subdirs(folder: Path) -> list[str]:
    """The class subfolders: visible ones holding at least one image at any depth, so an empty
    folder (or one holding only a symlink loop) is no class without images."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and _holds_images(p)
    )


def _holds_images(folder: Path) -> bool:
    return any(  # stops at the first image
        p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        for p in folder.rglob("*")
    )


def split_root(root: Path, split: str) -> tuple[Path, tuple[str, ...]]:
    """The folder of `split` and the class names (subfolders; the union over train/ and test/,
    so a class has the same index in both splits)."""
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train and has_test:
        names = sorted(set(_subdirs(root / "train")) | set(_subdirs(root / "test")))
        return root / split, tuple(names)
    if has_test:
        raise UserError(
            f"image folder '{root}' has a test/ subfolder but no train/; put the training "
            f"images in '{root / 'train'}' (or rename test/ if it is a class)"
        )
    if split == "test":
        raise UserError(
            f"image folder '{root}' has a single split; give it train/ and test/ subfolders "
            f"to use split 'test'"
        )
    return root, tuple(_subdirs(root))


def list_images(root: Path) -> list[Path]:
    """Image files under root (any depth, hidden ones skipped), sorted by relative path."""
    return sorted(
        (
            p
            for p in root.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        ),
        key=lambda p: p.relative_to(root).as_posix(),
    )


def scan_folder(root: Path, class_names: tuple[str, ...]) -> tuple[list[Path], list[int] | None]:
    """Image files under root, sorted; labels from the first subfolder, or None when any image
    sits directly in root."""
    files = list_images(root)
    if not files or any(p.parent == root for p in files):
        return files, None
    index = {name: i for i, name in enumerate(class_names)}
    return files, [index[p.relative_to(root).parts[0]] for p in files]


def progress(files: list[Path], root: Path) -> Iterable[Path]:
    if len(files) < PROGRESS_MIN_FILES:
        return files
    try:
        from tqdm import tqdm
    except ImportError:
        return files
    return tqdm(files, desc=f"reading {root}", unit="img", leave=False)


def read_images(files: list[Path], resolution: int, channels: int | None, root: Path) -> np.ndarray:
    """Image files as uint8 `[N, C, R, R]` (each resized and centre cropped, see `fit_square`);
    channels None: 1 when every file is grayscale, else 3."""
    arrays = [fit_square(open_image(path), resolution) for path in progress(files, root)]
    return stack_channels(arrays, channels)


def stack_channels(arrays: list[np.ndarray], channels: int | None) -> np.ndarray:
    """uint8 `[1 or 3, R, R]` arrays as one `[N, C, R, R]`; channels None: 1 if all are gray."""
    if channels is None:
        channels = 1 if all(a.shape[0] == 1 for a in arrays) else 3
    return np.stack([convert_channels(a[None], channels)[0] for a in arrays])


def open_image(path: Path) -> Image.Image:
    """One image file (its first frame) as a Pillow image in mode L or RGB."""
    try:
        with Image.open(path) as im:
            im.load()  # the first frame, for animated GIF/WebP
            return _to_l_or_rgb(ImageOps.exif_transpose(im))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read image '{path}' ({exc}); fix or remove the file") from exc


def fit_square(image: Image.Image, resolution: int) -> np.ndarray:
    """A Pillow image as uint8 `[1 or 3, R, R]`: its shorter side resized to R (Lanczos when
    shrinking, bicubic when growing), centre cropped."""
    w, h = image.size
    side = min(w, h)
    square = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    resample = Image.Resampling.LANCZOS if side > resolution else Image.Resampling.BICUBIC
    # Resizing just the centred square box equals resizing the shorter side then cropping.
    image = image.resize((resolution, resolution), resample, box=square, reducing_gap=3.0)
    array = np.asarray(image)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _to_l_or_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit L (grayscale modes) or RGB; alpha is composited over white."""
    if im.mode.startswith("I"):  # 16-bit (or 32-bit integer) grayscale: scale 0..65535 to 0..255
        values = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.rint(np.clip(values, 0, 65535) / 257).astype(np.uint8))
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        gray = im.mode in ("LA", "La")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im.convert("RGBA"))
        return im.convert("L" if gray else "RGB")
    if im.mode in GRAY_MODES:
        return im.convert("L")
    return im.convert("RGB")
