"""StackGAN's birds/ and flowers/ layouts (data/precomputed.py), on small layouts written here.

The pickles are written as the originals were: protocol 2, numpy arrays and lists; the flowers
layout's are assembled byte by byte as Python 2 writes them (`py2_pickle`), since the shipped
files come from Python 2.  Bird images are PNG data under `.jpg` names (Pillow reads files by
content) so the crop can be checked pixel by pixel; the flowers are real JPEGs.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import DataSpec, load_dataset
from ganforge.data.core import TaskOptions
from ganforge.data.precomputed import PrecomputedDataset, bird_crop, load_pickle
from ganforge.errors import UserError
from ganforge.registry import DATASETS

E, D = 4, 6  # embeddings per image, numbers per embedding
BIRDS = [  # (split, class number, key, box x y w h)
    ("train", 1, "001.Black_footed_Albatross/Black_Footed_Albatross_0001_1", (10, 8, 12, 8)),
    ("train", 2, "002.Laysan_Albatross/Laysan_Albatross_0002_2", (0, 0, 8, 4)),
    ("test", 3, "003.Sooty_Albatross/Sooty_Albatross_0003_3", (5, 5, 20, 10)),
]
CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]


def embedding_rows(first: int, n: int) -> np.ndarray:
    """float32 [n, E, D]: item i's embedding j is the constant 10 * (first + i) + j."""
    values = 10 * (first + np.arange(n))[:, None] + np.arange(E)[None]
    return np.repeat(values[..., None], D, axis=2).astype(np.float32)


def caption(item: int, j: int) -> str:
    return f"bird {item} caption {j}"


def gradient_image(width: int = 40, height: int = 30) -> Image.Image:
    """R = 6 x, G = 8 y, B = 0: every pixel tells where it came from."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([6 * x, 8 * y, np.zeros_like(x)], axis=2).astype(np.uint8)
    return Image.fromarray(rgb)


def dump(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value, protocol=2))


def write_birds(root: Path, texts: bool = True) -> Path:
    cub = root / "CUB_200_2011"
    (cub / "images").mkdir(parents=True)
    image_lines, box_lines = [], []
    for number, (_, _, key, box) in enumerate(BIRDS, 1):
        path = cub / "images" / f"{key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        gradient_image().save(path, format="PNG")
        image_lines.append(f"{number} {key}.jpg")
        box_lines.append(f"{number} " + " ".join(f"{v:.1f}" for v in box))  # CUB writes 60.0
    (cub / "images.txt").write_text("\n".join(image_lines) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(box_lines) + "\n")
    (cub / "classes.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)))
    for split in ("train", "test"):
        items = [(i, b) for i, b in enumerate(BIRDS) if b[0] == split]
        keys = [b[2] for _, b in items]
        rows = embedding_rows(items[0][0], len(items))
        # train as a list of [E, D] arrays and str names, test as one array and bytes names
        dump(
            root / split / "char-CNN-RNN-embeddings.pickle",
            list(rows) if split == "train" else rows,
        )
        dump(
            root / split / "filenames.pickle",
            keys if split == "train" else [k.encode() for k in keys],
        )
        dump(root / split / "class_info.pickle", [b[1] for _, b in items])
    if texts:
        for item, (_, _, key, _) in enumerate(BIRDS):
            path = root / "text_c10" / f"{key}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(caption(item, j) for j in range(E)) + "\n\n")
    return root


# ---------------------------------------------------------------- Python 2 pickles


def _py2(value: object) -> bytes:
    if isinstance(value, list):
        return b"](" + b"".join(_py2(v) for v in value) + b"e"
    if isinstance(value, str | bytes):
        data = value.encode() if isinstance(value, str) else value
        if len(data) < 256:
            return b"U" + bytes([len(data)]) + data  # SHORT_BINSTRING: a Python 2 str
        return b"T" + struct.pack("<I", len(data)) + data
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    if isinstance(value, np.ndarray):
        shape = b"(" + b"".join(_py2(int(s)) for s in value.shape) + b"t"
        dtype = b"cnumpy\ndtype\n" + _py2(value.dtype.str[1:]) + b"K\x00K\x01\x87R"
        dtype += b"(K\x03" + _py2("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        head = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2("b")
        state = b"(K\x01" + shape + dtype + b"\x89" + _py2(value.tobytes()) + b"tb"
        return head + b"\x87R" + state
    raise TypeError(type(value))


def py2_pickle(value: object) -> bytes:
    """What Python 2 (numpy 1.x) writes for `pickle.dump(value, f, 2)`: str as byte strings,
    arrays through numpy.core.multiarray._reconstruct with their data as a byte string."""
    return b"\x80\x02" + _py2(value) + b"."


def write_flowers(root: Path) -> Path:
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    (root / "jpg").mkdir(parents=True)
    for i, colour in enumerate(colours, 1):
        Image.new("RGB", (24, 16), colour).save(root / "jpg" / f"image_{i:05d}.jpg", quality=95)
    for split, numbers, classes in (("train", [1, 2], [1, 2]), ("test", [3], [102])):
        folder = root / split
        folder.mkdir()
        keys = [f"jpg/image_{n:05d}" for n in numbers]
        rows = embedding_rows(numbers[0] - 1, len(numbers))
        (folder / "char-CNN-RNN-embeddings.pickle").write_bytes(py2_pickle(rows))
        (folder / "filenames.pickle").write_bytes(py2_pickle(keys))
        (folder / "class_info.pickle").write_bytes(py2_pickle(classes))
    return root


@pytest.fixture
def birds(tmp_path: Path) -> Path:
    return write_birds(tmp_path / "birds")


def load(kind: str, root: Path, split: str = "train", **kw) -> PrecomputedDataset:
    data = load_dataset(f"{kind}:{root}", split=split, resolution=kw.pop("resolution", 18), **kw)
    assert isinstance(data, PrecomputedDataset)
    return data


# ---------------------------------------------------------------- the spec


def test_text_embedding_dim_in_the_spec_and_old_specs_still_load():
    spec = DataSpec(3, 8, task="captioned", text_embedding_dim=1024)  # embeddings, no texts
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    old = {k: v for k, v in DataSpec(1, 8).to_dict().items() if k != "text_embedding_dim"}
    assert DataSpec.from_dict(old).text_embedding_dim == 0
    with pytest.raises(ValueError, match="no text embeddings"):
        DataSpec(1, 8, text_embedding_dim=4)
    with pytest.raises(ValueError, match="vocab"):
        DataSpec(1, 8, task="captioned")  # neither texts nor embeddings
    with pytest.raises(ValueError, match=">= 0"):
        DataSpec(1, 8, task="captioned", text_embedding_dim=-1)


def test_registered_with_a_usage_line():
    for kind in ("birds", "flowers"):
        assert DATASETS.doc(kind).startswith(f"{kind}:PATH - captioned:")


# ---------------------------------------------------------------- birds


def test_birds_batches_shapes_labels_and_spec(birds):
    train, test = load("birds", birds), load("birds", birds, split="test")
    assert (len(train), len(test)) == (2, 1)
    batch = train.batch(torch.tensor([0, 1]))
    assert batch.keys() == {"image", "embedding", "label", "text"}
    assert batch["image"].shape == (2, 3, 18, 18) and batch["image"].dtype == torch.float32
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["embedding"].shape == (2, D) and batch["embedding"].dtype == torch.float32
    assert batch["label"].tolist() == [0, 1] and batch["label"].dtype == torch.int64
    assert test.batch(torch.tensor([0]))["label"].tolist() == [2]  # class 3, 0-based
    spec = train.spec
    assert (spec.task, spec.text_embedding_dim, spec.num_classes) == ("captioned", D, 3)
    assert spec.class_names == ("Black footed Albatross", "Laysan Albatross", "Sooty Albatross")
    # the vocabulary is the training split's, whichever split is loaded; "bird 2 ..." is test's
    assert test.spec == spec.__class__(**{**spec.to_dict(), "name": test.spec.name})
    assert spec.vocab == ("<pad>", "<unk>", "0", "1", "2", "3", "bird", "caption")
    assert spec.max_tokens == 4 and batch["text"].shape == (2, 4)
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert train.keys == [BIRDS[0][2], BIRDS[1][2]] and test.keys == [BIRDS[2][2]]  # bytes names


def test_bird_crop_is_the_references_square_about_the_box(birds):
    # box (10, 8, 12, 8): half-side int(0.75 * 12) = 9 about the centre (16, 12)
    assert bird_crop((10, 8, 12, 8), 40, 30) == (7, 3, 25, 21)
    assert bird_crop((0, 0, 8, 4), 40, 30) == (0, 0, 10, 8)  # clipped at the top-left corner
    assert bird_crop((30, 20, 10, 10), 40, 30) == (28, 18, 40, 30)  # half-side 7 about (35, 25)
    images = load("birds", birds).images  # uint8 [2, 3, 18, 18]; the first crop is 18 x 18
    assert torch.equal(images[0, 0, 0], 6 * torch.arange(7, 25, dtype=torch.uint8))  # R = 6 x
    assert torch.equal(images[0, 1, :, 0], 8 * torch.arange(3, 21, dtype=torch.uint8))  # G = 8 y
    # the clipped 10 x 8 crop is squashed to 18 x 18: nothing from beyond x = 9 or y = 7
    assert images[1, 0].max() <= 6 * 9 and images[1, 1].max() <= 8 * 7
    assert images[1, 0, :, -1].min() >= 6 * 8 and images[1, 1, -1].min() >= 8 * 6


def test_embedding_choice_is_a_function_of_item_and_key(birds):
    data = load("birds", birds)
    index = torch.tensor([0, 1])
    fixed = data.batch(index)
    assert all(torch.equal(fixed[k], data.batch(index)[k]) for k in fixed)  # key=None: stable
    # key=None depends on the item alone, not on the rest of the batch
    assert torch.equal(data.batch(torch.tensor([1]))["embedding"][0], fixed["embedding"][1])
    seen = set()
    for key in range(40):
        batch = data.batch(index, key=key)
        again = data.batch(index, key=key)
        assert all(torch.equal(batch[k], again[k]) for k in batch)
        choice = data.choose(index, key)
        # item i's embedding j is the constant 10 i + j, and its caption is line j
        assert batch["embedding"][:, 0].tolist() == [10 * i + j for i, j in enumerate(choice)]
        assert data.texts(index, key) == [caption(i, j) for i, j in enumerate(choice.tolist())]
        decoded = [" ".join(data.spec.vocab[t] for t in row if t) for row in batch["text"]]
        assert decoded == data.texts(index, key)
        seen |= {(i, int(j)) for i, j in enumerate(choice)}
    assert len(seen) == 2 * E  # every embedding of both items is drawn


def test_all_embeddings_and_all_texts_of_an_item(birds):
    data = load("birds", birds)
    every = data.all_embeddings(torch.tensor([1]))
    assert every.shape == (1, E, D) and every[0, :, 0].tolist() == [10.0, 11.0, 12.0, 13.0]
    assert data.all_texts(torch.tensor([1])) == [tuple(caption(1, j) for j in range(E))]
    assert data.has_texts


def test_birds_without_captions_give_embeddings_only(tmp_path):
    data = load("birds", write_birds(tmp_path / "birds", texts=False))
    assert data.batch(torch.tensor([0])).keys() == {"image", "embedding", "label"}
    assert (data.spec.vocab, data.spec.max_tokens, data.spec.text_embedding_dim) == ((), 0, D)
    assert not data.has_texts
    with pytest.raises(UserError, match="no caption texts"):
        data.texts(torch.tensor([0]))


def test_max_tokens_and_gray_channels(birds):
    data = load("birds", birds, channels=1, options=TaskOptions(max_tokens=2))
    batch = data.batch(torch.tensor([0]))
    assert batch["image"].shape == (1, 1, 18, 18) and batch["text"].shape == (1, 2)


# ---------------------------------------------------------------- flowers


def test_flowers_from_python2_pickles(tmp_path):
    root = write_flowers(tmp_path / "flowers")
    assert load_pickle(root / "train" / "filenames.pickle") == [
        "jpg/image_00001",
        "jpg/image_00002",
    ]
    rows = load_pickle(root / "train" / "char-CNN-RNN-embeddings.pickle")
    assert type(rows) is np.ndarray and np.array_equal(rows, embedding_rows(0, 2))
    train, test = load("flowers", root, resolution=8), load("flowers", root, "test", resolution=8)
    batch = train.batch(torch.tensor([0, 1]))
    assert batch.keys() == {"image", "embedding", "label"}  # no text_c10/: no tokens
    assert batch["image"].shape == (2, 3, 8, 8)
    # the whole (flat) image, squashed: JPEG keeps a flat colour within a few levels
    assert (
        train.images[0].float().mean((1, 2)) - torch.tensor([200.0, 40.0, 40.0])
    ).abs().max() < 4
    assert batch["label"].tolist() == [0, 1] and test.batch(torch.tensor([0]))[
        "label"
    ].tolist() == [101]
    assert train.spec.num_classes == 102 and train.spec.text_embedding_dim == D


def test_flowers_captions_live_in_class_folders(tmp_path):
    root = write_flowers(tmp_path / "flowers")
    for number, cls in ((1, 1), (2, 2), (3, 102)):
        path = root / "text_c10" / f"class_{cls:05d}" / f"image_{number:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"a flower with {j} petals\n" for j in range(E)))
    data = load("flowers", root, resolution=8)
    assert data.all_texts(torch.tensor([1]))[0][3] == "a flower with 3 petals"
    assert "text" in data.batch(torch.tensor([0]))


# ---------------------------------------------------------------- refusing and reporting


class RunsACommand:
    """A pickle whose load would call os.system (what a plain pickle.load would run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_a_command_is_refused_and_nothing_runs(birds, tmp_path):
    marker = tmp_path / "ran"
    names = birds / "train" / "filenames.pickle"
    dump(names, [BIRDS[0][2], RunsACommand(marker)])
    with pytest.raises(UserError, match=r"forbidden global '(posix|nt|os)\.system'") as err:
        load("birds", birds)
    assert "\n" not in str(err.value) and str(names) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "value, named",
    [
        (np.array([1, "x"], dtype=object), "object dtype"),  # items of an object array: anything
        (Path("a"), "forbidden global 'pathlib"),  # any class instance
        ({"a": {1, 2}}, "forbidden global 'builtins.set'"),
    ],
)
def test_only_plain_numpy_arrays_lists_and_numbers_load(tmp_path, value, named):
    path = tmp_path / "x.pickle"
    dump(path, value)
    with pytest.raises(UserError, match=named):
        load_pickle(path)
    plain = [np.arange(3, dtype=np.int16), {"k": (1, 2.5, "s", b"", b"by")}, np.float64(2.0)]
    dump(path, plain)
    got = load_pickle(path)
    assert np.array_equal(got[0], plain[0]) and got[0].dtype == np.int16
    assert got[1:] == [{"k": [1, 2.5, "s", b"", b"by"]}, 2.0]


def test_one_line_errors(birds, tmp_path):
    cases = []

    def expect(pattern: str, name: str | None = None, **kw) -> None:
        with pytest.raises(UserError, match=pattern) as err:
            load_dataset(name or f"birds:{birds}", resolution=kw.pop("resolution", 8), **kw)
        assert "\n" not in str(err.value)
        cases.append(pattern)

    expect("does not exist", f"birds:{tmp_path / 'nowhere'}")
    expect("needs a path after ':'", "flowers")
    with pytest.raises(UserError, match="needs a resolution"):
        load_dataset(f"birds:{birds}")
    (birds / "test" / "char-CNN-RNN-embeddings.pickle").unlink()
    expect(
        r"has no test/char-CNN-RNN-embeddings.pickle; it should hold train/ and test/", split="test"
    )
    dump(birds / "train" / "class_info.pickle", [1, 2, 2])
    expect("has 3 class numbers for the 2 images")
    dump(birds / "train" / "class_info.pickle", [1, 2])
    dump(birds / "train" / "char-CNN-RNN-embeddings.pickle", embedding_rows(0, 3))
    expect("holds embeddings of 3 images, but .* lists 2")
    dump(birds / "train" / "char-CNN-RNN-embeddings.pickle", embedding_rows(0, 2))
    (birds / "text_c10" / f"{BIRDS[1][2]}.txt").write_text("only one line\n")
    expect("has 1 captions for the 4 embeddings")
    (birds / "text_c10" / f"{BIRDS[1][2]}.txt").unlink()
    expect("caption file .* is missing")
    os.rename(birds / "text_c10", tmp_path / "captions")
    (birds / "CUB_200_2011" / "images" / f"{BIRDS[0][2]}.jpg").unlink()
    expect(r"Black_Footed_Albatross_0001_1.jpg' \(key .*\) is missing; extract CUB-200-2011")
    (birds / "train" / "filenames.pickle").write_bytes(b"\x80\x02]q\x00(")
    expect("is truncated or not a pickle")
    assert len(cases) == 9
