"""StackGAN's `birds/` and `flowers/` layouts: images with precomputed sentence embeddings.

StackGAN (Zhang et al. 2017) conditions on char-CNN-RNN sentence embeddings (Reed et al. 2016)
computed ahead of time, ten per image, which its authors ship as pickles to put beside the
CUB-200-2011 and Oxford-102 images:

    birds/                                   flowers/
      train/  test/                            train/  test/
        char-CNN-RNN-embeddings.pickle           (the same three files)
        filenames.pickle
        class_info.pickle
      CUB_200_2011/                            jpg/image_00001.jpg ...  (102flowers.tgz)
        images/<key>.jpg  images.txt             (or images/<key>.jpg)
        bounding_boxes.txt  [classes.txt]
      [text_c10/<key>.txt]                     [text_c10/class_00001/image_00001.txt]

The embeddings file holds `[N, E, D]` floats (E = 10 sentences of D = 1024 numbers) as one
array or a list of N `[E, D]` arrays; filenames.pickle the N image keys (the image's path
under its image folder, without `.jpg`); class_info.pickle the N class numbers, 1-based as
CUB's and Oxford-102's (label = number - 1; a file holding a 0 is taken as 0-based).
`text_c10/` (Reed et al.'s captions, optional) holds one file per image whose line j is the
sentence that embedding j encodes; a flower's file lives in its class's `class_%05d/` folder.

The pickles were written by Python 2 at protocol 2, numpy arrays as calls to
`numpy.core.multiarray._reconstruct`; a plain `pickle.load` calls whatever a file names.
`load_pickle` resolves only the globals that rebuild plain numpy arrays and scalars (and
`_codecs.encode` / `bytes()`, how Python 3 spells bytes at protocol 2); any other is refused,
in one line naming it, before anything runs.  Lists, dicts, str, ints and floats need no
global at all.

As the reference (hanzhanggit/StackGAN-Pytorch, `code/miscc/datasets.py`): a bird is cropped
around its bounding box (x, y, w, h) to the square of half-side 0.75 max(w, h) about the box's
centre, clipped to the image; a flower is the whole image; either is then resized (squashed,
bilinear) to R x R.  A training batch takes one of an item's E embeddings, drawn by the key's
generator (the reference: `random.randint`); with key=None the choice depends on the item
alone.  With caption texts, the batch's `text` tokens are the caption its embedding encodes.

Departures: the reference loads images at 76/64 R and, in training, takes a random R x R crop
flipped half of the time; here each image is resized to R once and not augmented, so a batch
stays a function of (item, key) and the in-memory images are what the metrics score.  The TF
release averages 4 of an item's embeddings per step (`TRAIN.NUM_EMBEDDING`); the PyTorch
release, and this one, take a single embedding.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .captions import FileCaptions, build_vocab, tokenize, words
from .core import CAPTION_SALT, SPLITS, DataSpec, convert_channels, item_generators
from .sources import IMAGE_EXTENSIONS, open_image, progress

EMBEDDINGS_FILE = "char-CNN-RNN-embeddings.pickle"
FILENAMES_FILE = "filenames.pickle"
CLASS_FILE = "class_info.pickle"
TEXT_FOLDER = "text_c10"
CUB_FOLDER = "CUB_200_2011"
CROP_SCALE = 0.75  # a bird's crop: half-side = CROP_SCALE x the box's longer side


@dataclass(frozen=True)
class Layout:
    """One of the two layouts: where its images are and what its folder must hold."""

    name: str  # "birds" or "flowers"
    image_folders: tuple[str, ...]  # where `<key>.jpg` is looked for, in order
    images_hint: str  # what to extract where, for a missing image
    holds: str  # what the folder holds, for a missing file


_PICKLES = f"train/ and test/, each with {EMBEDDINGS_FILE}, {FILENAMES_FILE} and {CLASS_FILE}"
LAYOUTS = {
    "birds": Layout(
        "birds",
        (f"{CUB_FOLDER}/images",),
        f"extract CUB-200-2011 (CUB_200_2011.tgz) into the birds folder, as {CUB_FOLDER}/",
        f"{_PICKLES} (StackGAN's birds.zip), and {CUB_FOLDER}/ with images/, images.txt and "
        "bounding_boxes.txt (CUB-200-2011)",
    ),
    "flowers": Layout(
        "flowers",
        (".", "images"),
        "extract Oxford-102 (102flowers.tgz) into the flowers folder, so that jpg/ is in it",
        f"{_PICKLES} (StackGAN's flowers.zip), and Oxford-102's jpg/ folder (102flowers.tgz)",
    ),
}


# ---------------------------------------------------------------- the restricted unpickler


class _Refused(Exception):
    """Something a pickle of plain numbers never holds; `load_pickle` says which."""


class _PlainArray(np.ndarray):
    """An ndarray being rebuilt from a pickle; refuses object arrays, whose items could be
    anything.  `_plain` turns it back into a plain ndarray."""

    def __setstate__(self, state: object) -> None:
        # (version, shape, dtype, is_fortran, data); data is bytes, or a latin-1 str when a
        # Python 2 pickle is read with encoding="latin1" (numpy takes both)
        dtype = state[2] if isinstance(state, tuple) and len(state) == 5 else None
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise _Refused("holds a numpy array that is not plain numbers")
        if not isinstance(state[4], bytes | str):
            raise _Refused("holds a numpy array whose data is not bytes")
        super().__setstate__(state)


def _reconstruct(cls: object, shape: object, typecode: object) -> np.ndarray:
    # numpy writes _reconstruct(ndarray, (0,), b'b') and then the data through __setstate__;
    # any other shape would allocate whatever size a crafted file asks for
    if cls is not _PlainArray or shape != (0,):
        raise _Refused("holds a numpy object that is not a plain array")
    return _PlainArray((0,), np.int8)


def _dtype(spec: object, align: object = False, copy: object = True) -> np.dtype:
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    if not isinstance(spec, str):
        raise _Refused("holds a numpy dtype that is not named by a string")
    dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    if dtype.hasobject:
        raise _Refused("holds a numpy object dtype")
    return dtype


def _scalar(dtype: object, data: object = None) -> object:
    # class numbers saved as numpy integers pickle as scalar(dtype, data)
    if isinstance(data, str):
        data = data.encode("latin1")
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise _Refused("holds a numpy scalar that is not a plain number")
    if len(data) != dtype.itemsize:
        raise _Refused("holds a numpy scalar of the wrong size")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    # protocol 5 (a file re-saved by Python 3.8+): the data in-band as bytes
    if not isinstance(buf, bytes | bytearray) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise _Refused("holds a numpy array that is not plain numbers")
    array = np.frombuffer(bytes(buf), dtype=dtype)
    return array.reshape(shape, order="F" if order == "F" else "C")


def _encode(text: object, encoding: object = "utf-8") -> bytes:
    # Python 3 writes bytes at protocol 2 as _codecs.encode(text, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "iso-8859-1"):
        raise _Refused("calls _codecs.encode other than to spell bytes")
    return text.encode("latin1")


def _empty_bytes(*args: object) -> bytes:
    # ... and b"" as bytes(); bytes(n) would allocate n bytes, so only the empty call passes
    if args:
        raise _Refused("calls bytes() other than to spell b''")
    return b""


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # numpy 1.x (the originals)
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # numpy 2.x
    ("numpy", "ndarray"): _PlainArray,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
    ("builtins", "bytes"): _empty_bytes,
}


class _NumpyUnpickler(pickle.Unpickler):
    """Resolves only the globals in `_ALLOWED`; every other is refused before it is called."""

    def find_class(self, module: str, name: str) -> object:
        module = "builtins" if module == "__builtin__" else module  # Python 2's spelling
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        raise _Refused(f"names the forbidden global '{module}.{name}'")

    def persistent_load(self, pid: object) -> object:
        raise _Refused("holds a persistent id")


def _plain(value: object) -> object:
    """Rebuilt arrays as plain ndarrays, tuples as lists, all the way down."""
    if isinstance(value, np.ndarray):
        return np.asarray(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# what a truncated or garbled pickle raises from pickle itself or from numpy's setstate
_CORRUPT = (EOFError, pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError)
_CORRUPT += (AttributeError, OverflowError, MemoryError)


def load_pickle(path: Path) -> object:
    """The contents of a pickle of numpy arrays, lists, dicts, str, bytes and numbers (Python 2
    pickles read as latin-1, as numpy needs); any other global is a one-line UserError and
    nothing of the file is run."""
    try:
        with open(path, "rb") as f:
            return _plain(_NumpyUnpickler(f, encoding="latin1").load())
    except _Refused as err:
        raise UserError(
            f"'{path}' {err}; refusing to load it (nothing in it was run): it should hold only "
            "numpy arrays, lists and numbers, as StackGAN's files do; replace it with the original"
        ) from None
    except _CORRUPT as err:
        why = (str(err).splitlines() or [""])[0][:200]
        raise UserError(
            f"'{path}' is truncated or not a pickle ({type(err).__name__}: {why}); copy or "
            "download it again"
        ) from None
    except OSError as err:
        raise UserError(f"cannot read '{path}': {err.strerror}") from None


# ---------------------------------------------------------------- reading a layout


def _need_file(root: Path, relative: str, layout: Layout) -> Path:
    path = root / relative
    if not path.is_file():
        raise UserError(
            f"{layout.name} folder '{root}' has no {relative}; it should hold {layout.holds}"
        )
    return path


def _as_key(value: object, path: Path, i: int) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:  # a Python 2 str of UTF-8 bytes, read as latin-1
            return value.encode("latin1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return value
    raise UserError(
        f"'{path}' item {i} is a {type(value).__name__}, not an image name; it should be a list "
        "of names such as '001.Black_footed_Albatross/Black_Footed_Albatross_0046_18'"
    )


def read_keys(root: Path, layout: Layout, split: str) -> tuple[list[str], np.ndarray]:
    """The image keys of filenames.pickle and the class numbers (int64 `[N]`) of
    class_info.pickle of one split, checked to pair up."""
    names_path = _need_file(root, f"{split}/{FILENAMES_FILE}", layout)
    class_path = _need_file(root, f"{split}/{CLASS_FILE}", layout)
    names, classes = load_pickle(names_path), load_pickle(class_path)
    if isinstance(names, np.ndarray):
        names = names.tolist()
    if not isinstance(names, list) or not names:
        raise UserError(f"'{names_path}' holds no list of image names; replace it")
    keys = [_as_key(v, names_path, i) for i, v in enumerate(names)]
    try:
        ids = np.asarray(classes)
    except ValueError:
        ids = np.asarray([])
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise UserError(
            f"'{class_path}' holds {type(classes).__name__} {list(ids.shape)} of {ids.dtype}, "
            "not one class number per image; replace it"
        )
    if len(ids) != len(keys):
        raise UserError(
            f"'{class_path}' has {len(ids)} class numbers for the {len(keys)} images of "
            f"'{names_path}'; the two files must list the same images, replace them"
        )
    if ids.min() < 0:
        raise UserError(f"'{class_path}' holds class number {ids.min()}; they must be >= 0")
    return keys, ids.astype(np.int64)


def read_embeddings(root: Path, layout: Layout, split: str, n: int) -> np.ndarray:
    """float32 `[N, E, D]` from the split's char-CNN-RNN-embeddings.pickle (one array, or a
    list of N `[E, D]` arrays; `[N, D]` means one embedding an item)."""
    path = _need_file(root, f"{split}/{EMBEDDINGS_FILE}", layout)
    value = load_pickle(path)
    if isinstance(value, list):
        shapes = {np.shape(v) for v in value}
        if len(shapes) > 1:
            raise UserError(
                f"'{path}' holds embeddings of different shapes ({sorted(shapes)[:3]}); every "
                "image needs the same number of embeddings of one length"
            )
        value = np.asarray(value) if value else np.zeros((0, 1, 1), np.float32)
    numeric = isinstance(value, np.ndarray) and value.dtype.kind in "fiu"
    if not numeric or value.ndim not in (2, 3):
        what = f"{value.dtype} {list(value.shape)}" if isinstance(value, np.ndarray) else "it"
        raise UserError(
            f"'{path}' holds {what}, not embeddings [images, sentences, length] of numbers; "
            "replace it"
        )
    embeddings = value.astype(np.float32)
    if embeddings.ndim == 2:
        embeddings = embeddings[:, None]
    if len(embeddings) != n:
        raise UserError(
            f"'{path}' holds embeddings of {len(embeddings)} images, but "
            f"'{root / split / FILENAMES_FILE}' lists {n}; the files must come from one "
            "download, replace them"
        )
    if not np.isfinite(embeddings).all():
        raise UserError(f"'{path}' holds NaN or infinite values; replace it")
    return np.ascontiguousarray(embeddings)


def read_bounding_boxes(root: Path, layout: Layout) -> dict[str, tuple[int, int, int, int]]:
    """CUB-200-2011's boxes (x, y, width, height), truncated to whole pixels as the reference
    reads them, keyed by image key (images.txt's path without its extension)."""
    tables = []
    for name, columns in (("images.txt", 2), ("bounding_boxes.txt", 5)):
        path = _need_file(root, f"{CUB_FOLDER}/{name}", layout)
        rows = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != columns:
                shape = "'id path'" if columns == 2 else "'id x y width height'"
                raise UserError(f"line {number} of '{path}' is not {shape}: {line[:80]!r}")
            rows[parts[0]] = parts[1:]
        tables.append((path, rows))
    (_, names), (boxes_path, boxes) = tables
    out = {}
    for image_id, (name,) in names.items():
        if image_id not in boxes:
            raise UserError(f"'{boxes_path}' has no box for image {image_id} ({name})")
        try:
            x, y, w, h = (int(float(v)) for v in boxes[image_id])
        except ValueError:
            raise UserError(
                f"'{boxes_path}' has a box of image {image_id} that is not numbers"
            ) from None
        out[str(Path(name).with_suffix("").as_posix())] = (x, y, w, h)
    return out


def bird_crop(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, ...]:
    """The reference's crop of a bird: the square of half-side int(0.75 max(w, h)) about the
    box's centre, clipped to the image; (left, top, right, bottom) in pixels."""
    x, y, w, h = box
    half = int(max(w, h) * CROP_SCALE)
    cx, cy = (2 * x + w) // 2, (2 * y + h) // 2  # the reference's int((2x + w) / 2), x, w >= 0
    return max(0, cx - half), max(0, cy - half), min(width, cx + half), min(height, cy + half)


def _image_file(root: Path, layout: Layout, key: str) -> Path:
    name = key if Path(key).suffix.lower() in IMAGE_EXTENSIONS else f"{key}.jpg"
    candidates = [root / folder / name for folder in layout.image_folders]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise UserError(f"image '{candidates[0]}' (key {key!r}) is missing; {layout.images_hint}")
    return found


def read_images(
    root: Path, layout: Layout, keys: Sequence[str], resolution: int, channels: int | None
) -> np.ndarray:
    """uint8 `[N, C, R, R]` (C = 3 unless channels=1): birds cropped by `bird_crop`, every
    image squashed to R x R with Pillow's bilinear filter (antialiased when shrinking)."""
    boxes = read_bounding_boxes(root, layout) if layout.name == "birds" else None
    out = np.empty((len(keys), 3, resolution, resolution), dtype=np.uint8)
    for i, key in enumerate(progress(list(keys), root)):
        path = _image_file(root, layout, key)
        image = open_image(path).convert("RGB")
        if boxes is not None:
            box = boxes.get(key)
            if box is None:
                raise UserError(
                    f"image key {key!r} is not in '{root / CUB_FOLDER / 'images.txt'}'; the "
                    "pickles and CUB-200-2011 must match, extract the original CUB_200_2011.tgz"
                )
            left, top, right, bottom = bird_crop(box, *image.size)
            if right <= left or bottom <= top:
                raise UserError(f"the bounding box {box} of {key!r} lies outside its image")
            image = image.crop((left, top, right, bottom))  # before resizing: no bleed
        image = image.resize((resolution, resolution), Image.Resampling.BILINEAR)
        out[i] = np.asarray(image).transpose(2, 0, 1)
    return convert_channels(out, channels) if channels is not None else out


def _caption_file(root: Path, key: str, class_number: int) -> Path:
    folder = root / TEXT_FOLDER
    direct = folder / f"{key}.txt"  # birds: text_c10/001.Black_footed_Albatross/<name>.txt
    by_class = folder / f"class_{class_number:05d}" / f"{Path(key).name}.txt"  # flowers
    return next((p for p in (direct, by_class) if p.is_file()), direct)


def read_captions(
    root: Path, keys: Sequence[str], ids: np.ndarray, counts: int | None
) -> list[tuple[str, ...]]:
    """Each item's caption lines from text_c10/; with `counts`, each file must hold exactly
    that many (line j is the caption embedding j encodes)."""
    out = []
    for key, number in zip(keys, ids.tolist(), strict=True):
        path = _caption_file(root, key, number)
        if not path.is_file():
            raise UserError(
                f"caption file '{path}' of image {key!r} is missing; {TEXT_FOLDER}/ needs one "
                f"per image (or remove {TEXT_FOLDER}/ to train on the embeddings alone)"
            )
        text = path.read_text(encoding="utf-8", errors="replace").replace("\ufffd\ufffd", " ")
        lines = tuple(line.strip() for line in text.splitlines() if line.strip())
        if counts is not None and len(lines) != counts:
            raise UserError(
                f"caption file '{path}' has {len(lines)} captions for the {counts} embeddings "
                "of its image; line j must be the caption embedding j encodes, fix the file"
            )
        out.append(lines)
    return out


def _class_names(root: Path, layout: Layout, base: int, count: int) -> tuple[str, ...]:
    """CUB's classes.txt names ("1 001.Black_footed_Albatross" -> "Black footed Albatross")
    when it names every class; otherwise the class numbers as written in class_info."""
    numbers = [str(base + c) for c in range(count)]
    path = root / CUB_FOLDER / "classes.txt"
    if layout.name != "birds" or not path.is_file():
        return tuple(numbers)
    named = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        number, _, name = line.strip().partition(" ")
        named[number] = name.partition(".")[2].replace("_", " ") or name
    return tuple(named.get(n, n) for n in numbers)


# ---------------------------------------------------------------- the data set


class PrecomputedDataset:
    """Captioned data with precomputed sentence embeddings, whole in memory.

    images: uint8 `[N, C, R, R]`; labels: int64 `[N]`; embeddings: float32 `[N, E, D]`, E per
    item.  `batch` gives {"image": `[B, C, R, R]` in [-1, 1], "embedding": float32 `[B, D]`,
    "label": int64 `[B]`} and, with caption texts, "text" (int64 `[B, max_tokens]`): the
    tokens of the caption the chosen embedding encodes.  Which of its E embeddings an item
    gets: `choose`, drawn by the key's generator in training, from the item alone with
    key=None.  `all_embeddings` and `all_texts` give every one of an item's (sample grids)."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        embeddings: torch.Tensor,
        *,
        name: str,
        num_classes: int,
        class_names: tuple[str, ...] = (),
        captions: Sequence[tuple[str, ...]] | None = None,
        vocab: tuple[str, ...] = (),
        max_tokens: int = 0,
        keys: Sequence[str] = (),
    ) -> None:
        n = len(images)
        if embeddings.dim() != 3 or len(embeddings) != n or len(labels) != n:
            raise ValueError(
                f"{n} images need embeddings [{n}, E, D] and {n} labels, got "
                f"{list(embeddings.shape)} and {list(labels.shape)}"
            )
        if captions is not None and len(captions) != n:
            raise ValueError(f"{n} images need {n} caption tuples, got {len(captions)}")
        if n and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes})")
        self.images, self.labels = images.contiguous(), labels.contiguous()
        self.embeddings = embeddings.float().contiguous()
        self.captions = None if captions is None else FileCaptions(captions)
        self.keys = list(keys)
        self._ids = {w: i for i, w in enumerate(vocab)}
        self.spec = DataSpec(
            channels=images.shape[1],
            resolution=images.shape[-1],
            num_classes=num_classes,
            class_names=class_names,
            name=name,
            task="captioned",
            vocab=vocab,
            max_tokens=max_tokens,
            text_embedding_dim=embeddings.shape[-1],
        )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_texts(self) -> bool:
        """Whether the items have caption texts (the layout's text_c10/ folder)."""
        return self.captions is not None

    def choose(self, index: torch.Tensor, key: int | None = None) -> torch.Tensor:
        """Which embedding of each item of `index` a batch takes: int64 `[B]` in [0, E)."""
        count = self.embeddings.shape[1]
        gens = item_generators(index, key, CAPTION_SALT)
        return torch.tensor(
            [int(torch.randint(count, (1,), generator=g)) for g in gens], dtype=torch.int64
        )

    def batch(self, index: torch.Tensor, *, key: int | None = None) -> dict[str, torch.Tensor]:
        """{"image", "embedding": `[B, D]`, "label"} (+ "text" with caption texts)."""
        choice = self.choose(index, key)
        out = {
            "image": self.images[index].float().div_(127.5).sub_(1.0),
            "embedding": self.embeddings[index, choice],
            "label": self.labels[index],
        }
        if self.captions is not None:
            out["text"] = tokenize(self._texts(index, choice), self._ids, self.spec.max_tokens)
        return out

    def all_embeddings(self, index: torch.Tensor) -> torch.Tensor:
        """Every embedding of the items `index`: float32 `[B, E, D]`."""
        return self.embeddings[index]

    def texts(self, index: torch.Tensor, key: int | None = None) -> list[str]:
        """The caption `batch(index, key=key)` takes for each item (what its embedding encodes)."""
        return self._texts(index, self.choose(index, key))

    def all_texts(self, index: torch.Tensor) -> list[tuple[str, ...]]:
        """Every caption of the items `index`, in embedding order."""
        captions = self._need_texts()
        return [tuple(captions.lines[i]) for i in index.tolist()]

    def _texts(self, index: torch.Tensor, choice: torch.Tensor) -> list[str]:
        captions = self._need_texts()
        return [captions.text(i, j) for i, j in zip(index.tolist(), choice.tolist(), strict=True)]

    def _need_texts(self) -> FileCaptions:
        if self.captions is None:
            raise UserError(
                f"data set {self.spec.name!r} has no caption texts (no {TEXT_FOLDER}/ folder), "
                f"only embeddings; add Reed et al.'s {TEXT_FOLDER}/ captions to show them"
            )
        return self.captions

    def __repr__(self) -> str:
        e, d = self.embeddings.shape[1:]
        texts = f", {len(self.spec.vocab)} words" if self.captions is not None else ""
        return f"PrecomputedDataset({self.spec.name!r}, {len(self)} images, {e} x {d}{texts})"


def _class_range(root: Path, layout: Layout, ids: np.ndarray, split: str) -> tuple[int, int]:
    """(base, count): class numbers start at base (1, or 0 when a 0 occurs), count classes,
    over both splits so that a class has one label in each."""
    seen = [ids]
    for other in SPLITS:
        if other != split and (root / other / CLASS_FILE).is_file():
            seen.append(read_keys(root, layout, other)[1])
    numbers = np.concatenate(seen)
    if not len(numbers):
        return 1, 1
    base = 0 if numbers.min() == 0 else 1
    return base, int(numbers.max()) - base + 1


def load_precomputed(
    kind: str,
    path: str,
    *,
    split: str,
    resolution: int,
    channels: int | None,
    max_tokens: int | None,
) -> PrecomputedDataset:
    """One split of a `birds/` or `flowers/` folder (`kind`) at R = resolution; see the module
    docstring for the layout.  The vocabulary (with text_c10/) is every word of the training
    split's captions, whichever split is loaded; max_tokens None: the longest of them."""
    layout = LAYOUTS[kind]
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(
            f"{kind} folder '{root}' does not exist; pass the folder that holds {layout.holds}"
        )
    keys, ids = read_keys(root, layout, split)
    embeddings = read_embeddings(root, layout, split, len(keys))
    base, num_classes = _class_range(root, layout, ids, split)
    captions, vocab, tokens = None, (), 0
    if (root / TEXT_FOLDER).is_dir():
        captions = read_captions(root, keys, ids, embeddings.shape[1])
        if split == "train":
            train_lines = captions
        else:
            train_keys, train_ids = read_keys(root, layout, "train")
            train_lines = read_captions(root, train_keys, train_ids, None)
        texts = [t for item in train_lines for t in item]
        vocab = build_vocab(texts)
        longest = max((len(words(t)) for t in texts), default=1)
        tokens = max(1, max_tokens if max_tokens is not None else longest)
    images = read_images(root, layout, keys, resolution, channels)
    return PrecomputedDataset(
        torch.from_numpy(images),
        torch.from_numpy(ids - base),
        torch.from_numpy(embeddings),
        name=f"{kind}:{path}",
        num_classes=num_classes,
        class_names=_class_names(root, layout, base, num_classes),
        captions=captions,
        vocab=vocab,
        max_tokens=tokens,
        keys=keys,
    )
