"""Data package: IDX parsing, Fashion-MNIST lookup, digits, image folders, dataset specs."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import DataSpec, ImageDataset, find_data_dir, load_dataset, parse_idx, sources
from ganforge.errors import UserError

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """IDX encoding written independently of the parser: magic, big-endian dims, big-endian data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_fake_idx(folder: Path, *, n_train=20, n_test=10, gz=True, seed=0):
    """A tiny Fashion-MNIST look-alike; returns {split: (images [N, 28, 28], labels [N])}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255  # the extremes -1 and 1 are present
        labels = (np.arange(n) % 10).astype(np.uint8)
        for stem, array in zip(IDX_NAMES[split], (images, labels), strict=True):
            raw = idx_bytes(array)
            path = folder / (stem + ".gz" if gz else stem)
            path.write_bytes(gzip.compress(raw) if gz else raw)
        data[split] = (images, labels)
    return data


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_parse_idx_returns_the_exact_array(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10
    path = tmp_path / "a.idx"  # gzip is detected by content, not by the name
    raw = idx_bytes(images)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = parse_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(parse_idx(raw), images)  # bytes work too


def test_parse_idx_big_endian_types():
    shorts = np.array([[1, -2], [300, -400]], dtype=np.int16)
    out = parse_idx(idx_bytes(shorts, 0x0B))
    assert out.dtype == np.dtype("int16") and out.dtype.isnative
    np.testing.assert_array_equal(out, shorts)
    floats = np.array([0.5, -1.25, 3e8], dtype=np.float32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(floats, 0x0D)), floats)


def test_parse_idx_wrong_magic_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x56\x78" + bytes(100))
    with pytest.raises(UserError, match="not an IDX file") as err:
        parse_idx(path)
    assert str(path) in str(err.value) and "0x12345678" in str(err.value)


def test_parse_idx_truncated(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    full = idx_bytes(np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(gzip.compress(full[: 16 + 1234]))
    with pytest.raises(UserError, match="truncated") as err:
        parse_idx(path)
    message = str(err.value)
    assert str(path) in message and "7840 bytes" in message and "found 1234" in message


def test_parse_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(50, np.uint8)))[:30])
    with pytest.raises(UserError, match="corrupt gzip") as err:
        parse_idx(path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------- Fashion-MNIST / MNIST


def test_fmnist_from_data_dir(tmp_path):
    data = write_fake_idx(tmp_path / "fm")
    train = load_dataset("fmnist", data_dir=str(tmp_path / "fm"))
    assert train.images.shape == (20, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.images.is_contiguous()
    np.testing.assert_array_equal(train.images[:, 0].numpy(), data["train"][0])
    assert train.labels.dtype == torch.int64
    assert train.labels.tolist() == [i % 10 for i in range(20)]
    assert train.spec == DataSpec(1, 28, 10, train.spec.class_names, "fmnist")
    assert train.spec.class_names[0] == "T-shirt/top" and train.spec.class_names[9] == "Ankle boot"

    batch = train.batch(torch.tensor([0, 3, 5]))
    assert batch["image"].shape == (3, 1, 28, 28) and batch["image"].dtype == torch.float32
    assert batch["image"].min() == -1.0 and batch["image"].max() == 1.0
    assert batch["image"][0, 0, 0, 0] == -1.0 and batch["image"][0, 0, 0, 1] == 1.0
    pixel = int(data["train"][0][3, 10, 10])
    assert batch["image"][1, 0, 10, 10].item() == pytest.approx(pixel / 127.5 - 1)
    assert batch["label"].tolist() == [0, 3, 5]

    test = load_dataset("fmnist", split="test", data_dir=str(tmp_path / "fm"))
    assert len(test) == 10
    np.testing.assert_array_equal(test.images[:, 0].numpy(), data["test"][0])


def test_fmnist_28_to_32_pads_with_background(tmp_path):
    data = write_fake_idx(tmp_path)
    ds = load_dataset("fmnist", resolution=32, data_dir=str(tmp_path))
    assert ds.images.shape == (20, 1, 32, 32) and ds.spec.resolution == 32
    np.testing.assert_array_equal(ds.images[:, 0, 2:30, 2:30].numpy(), data["train"][0])
    image = ds.batch(torch.arange(20))["image"]
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert border.sum() == 32 * 32 - 28 * 28
    assert (image[:, :, border] == -1).all()


def test_fmnist_other_sizes_resize_and_channels(tmp_path):
    write_fake_idx(tmp_path)
    flat = np.full((4, 28, 28), 77, np.uint8)  # a flat image stays flat under bilinear resizing
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(flat)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.array([1, 2, 3, 4], np.uint8)))
    )
    big = load_dataset("fmnist", resolution=64, channels=3, data_dir=str(tmp_path))
    assert big.images.shape == (4, 3, 64, 64) and big.spec.channels == 3
    assert (big.images == 77).all()
    small = load_dataset("fmnist", resolution=14, data_dir=str(tmp_path))
    assert small.images.shape == (4, 1, 14, 14) and (small.images == 77).all()


def test_fmnist_found_through_ganforge_data(tmp_path, monkeypatch):
    # raw (not gzipped) files in a fashion-mnist/ subfolder of $GANFORGE_DATA
    data = write_fake_idx(tmp_path / "datasets" / "fashion-mnist", gz=False, n_train=7)
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path / "datasets"))
    assert find_data_dir("fmnist") == tmp_path / "datasets" / "fashion-mnist"
    ds = load_dataset("fmnist")
    assert len(ds) == 7
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), data["train"][0])


def test_explicit_data_dir_without_files_does_not_fall_back(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not found in --data-dir") as err:
        load_dataset("fmnist", data_dir=str(tmp_path / "empty"))
    assert str(tmp_path / "empty") in str(err.value)


def test_missing_fmnist_offline_is_one_helpful_line(tmp_path, monkeypatch):
    no_system = dataclasses.replace(sources.IDX_SOURCES["fmnist"], system_dir=str(tmp_path / "no"))
    monkeypatch.setitem(sources.IDX_SOURCES, "fmnist", no_system)
    with pytest.raises(UserError) as err:
        load_dataset("fmnist")
    message = str(err.value)
    assert "\n" not in message
    assert "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message
    assert "GANFORGE_OFFLINE" in message and str(tmp_path / "no") in message
    assert not (tmp_path / "cache" / "ganforge").exists()  # no download was attempted
    with pytest.raises(UserError, match="downloading is disabled"):
        find_data_dir("fmnist", download=False)


def test_download_checks_sha256(tmp_path, monkeypatch):
    server = tmp_path / "server"
    write_fake_idx(server)
    names = [f"{stem}.gz" for split in ("train", "test") for stem in IDX_NAMES[split]]
    digests = {n: (hashlib.sha256((server / n).read_bytes()).hexdigest(),) for n in names}
    local = dataclasses.replace(
        sources.IDX_SOURCES["fmnist"],
        system_dir=None,
        url=server.as_uri() + "/",  # urllib reads file:// URLs, so no network is needed
        sha256=digests,
    )
    monkeypatch.setitem(sources.IDX_SOURCES, "fmnist", local)
    monkeypatch.delenv("GANFORGE_OFFLINE")
    cache = tmp_path / "cache" / "ganforge" / "data" / "fmnist"

    bad = dict(digests, **{"t10k-images-idx3-ubyte.gz": ("0" * 64,)})
    monkeypatch.setitem(sources.IDX_SOURCES, "fmnist", dataclasses.replace(local, sha256=bad))
    with pytest.raises(UserError, match="SHA-256"):
        load_dataset("fmnist")
    # files are fetched in order: the two before the bad one were verified and kept; the bad
    # one and every temporary file are gone
    assert not (cache / "t10k-images-idx3-ubyte.gz").exists()
    assert sorted(p.name for p in cache.iterdir()) == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]

    monkeypatch.setitem(sources.IDX_SOURCES, "fmnist", local)
    assert len(load_dataset("fmnist", split="test")) == 10
    assert sorted(os.listdir(cache)) == sorted(digests)


def test_image_label_count_mismatch(tmp_path):
    write_fake_idx(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(19, np.uint8)))
    )
    with pytest.raises(UserError, match="19.*labels for 20 images"):
        load_dataset("fmnist", data_dir=str(tmp_path))


@pytest.mark.skipif(not DEBIAN_FMNIST.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_train_split():
    ds = load_dataset("fmnist")
    assert ds.images.shape == (60000, 1, 28, 28)
    assert torch.bincount(ds.labels).tolist() == [6000] * 10


# ---------------------------------------------------------------- digits


def test_digits_split_is_a_fixed_80_20_partition():
    from sklearn.datasets import load_digits

    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert (len(train), len(test)) == (1438, 359)  # 1797 in all, 359 = round(0.2 * 1797)
    assert train.images.shape[1:] == (1, 8, 8) and train.images.max() == 255
    # together the two splits are exactly the 1,797 digits (as rows, in any order)
    both = torch.cat([train.images, test.images]).reshape(1797, 64).numpy()
    reference = np.rint(load_digits().images.reshape(1797, 64) * 255 / 16).astype(np.uint8)
    assert sorted(map(bytes, both)) == sorted(map(bytes, reference))
    assert torch.equal(load_dataset("digits").images, train.images)  # deterministic
    big = load_dataset("digits", split="test", resolution=28)
    assert big.images.shape == (359, 1, 28, 28) and big.spec.num_classes == 10
    assert torch.equal(big.labels, test.labels)


def test_digits_without_scikit_learn_says_how_to_add_it(monkeypatch):
    # a None entry in sys.modules makes `import sklearn.datasets` raise ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(UserError, match=r'needs scikit-learn.*pip install "ganforge\[digits\]"'):
        load_dataset("digits")


# ---------------------------------------------------------------- image folders


def save(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def test_folder_mixed_modes_with_classes(tmp_path):
    root = tmp_path / "imgs"
    save(root / "cats" / "a.PNG", Image.new("RGBA", (40, 30), (255, 0, 0, 0)))  # transparent
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 200] + [0] * 765)
    save(root / "cats" / "b.png", palette)
    save(root / "dogs" / "c.png", Image.new("L", (16, 24), 10))
    save(root / "dogs" / "d.png", Image.fromarray(np.full((32, 32), 257 * 100, np.uint16)))
    save(root / "dogs" / "e.jpg", Image.new("RGB", (50, 50), (0, 255, 0)))
    (root / "dogs" / "notes.txt").write_text("not an image")

    ds = load_dataset(f"folder:{root}", resolution=12)
    assert ds.images.shape == (5, 3, 12, 12)
    assert ds.spec.class_names == ("cats", "dogs") and ds.spec.num_classes == 2
    assert ds.labels.tolist() == [0, 0, 1, 1, 1]
    colors = ds.images[:, :, 6, 6].tolist()
    assert colors[0] == [255, 255, 255]  # transparent is composited over white
    assert colors[1] == [0, 0, 200]  # palette image
    assert colors[2] == [10, 10, 10]  # gray repeated to RGB
    assert colors[3] == [100, 100, 100]  # 16-bit 25700 scaled to 8 bits
    assert abs(colors[4][1] - 255) <= 2 and max(colors[4][0], colors[4][2]) <= 2  # JPEG


def test_folder_grayscale_unlabeled_and_center_crop(tmp_path):
    wide = np.zeros((20, 40), np.uint8)
    wide[:, 10:30] = 200  # the centred 20x20 square is all 200
    save(tmp_path / "wide.png", Image.fromarray(wide))
    save(tmp_path / "bits.bmp", Image.new("1", (8, 8), 1))
    save(tmp_path / "deep" / "deeper.png", Image.fromarray(np.full((5, 5), 65535, np.uint16)))
    ds = load_dataset(f"folder:{tmp_path}", resolution=20)
    assert ds.images.shape == (3, 1, 20, 20)  # only grayscale modes -> 1 channel
    assert ds.labels is None and ds.spec.num_classes == 0  # an image sits directly in root
    assert "label" not in ds.batch(torch.arange(3))
    assert (ds.images[0] == 255).all()  # bits.bmp, sorted first
    assert (ds.images[1] == 255).all()  # deep/deeper.png, 16-bit white
    assert (ds.images[2] == 200).all()  # wide.png, centre crop
    rgb = load_dataset(f"folder:{tmp_path}", resolution=20, channels=3)
    assert rgb.images.shape == (3, 3, 20, 20)


def test_folder_train_test_subfolders(tmp_path):
    save(tmp_path / "train" / "apples" / "1.png", Image.new("RGB", (8, 8), (9, 9, 9)))
    save(tmp_path / "train" / "pears" / "2.png", Image.new("RGB", (8, 8), (9, 9, 9)))
    save(tmp_path / "test" / "pears" / "3.png", Image.new("RGB", (8, 8), (9, 9, 9)))
    test = load_dataset(f"folder:{tmp_path}", split="test", resolution=8)
    assert test.labels.tolist() == [1] and test.spec.class_names == ("apples", "pears")
    assert len(load_dataset(f"folder:{tmp_path}", resolution=8)) == 2


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="holds no images.*\\.png"):
        load_dataset(f"folder:{tmp_path}", resolution=8)
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}", resolution=8)
    save(tmp_path / "ok.png", Image.new("L", (8, 8)))
    with pytest.raises(UserError, match="needs a resolution"):
        load_dataset(f"folder:{tmp_path}")
    with pytest.raises(UserError, match="single split"):
        load_dataset(f"folder:{tmp_path}", split="test", resolution=8)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match="cannot read image") as err:
        load_dataset(f"folder:{tmp_path}", resolution=8)
    assert str(tmp_path / "broken.jpg") in str(err.value)


# ---------------------------------------------------------------- names, options, specs


def test_unknown_names_and_options():
    with pytest.raises(UserError, match="did you mean: fmnist"):
        load_dataset("fmnsit")
    with pytest.raises(UserError, match="'train' or 'test'"):
        load_dataset("digits", split="valid")
    with pytest.raises(UserError, match="channels must be 1 or 3"):
        load_dataset("digits", channels=2)


def test_data_spec_json_round_trip():
    spec = DataSpec(channels=1, resolution=32, num_classes=2, class_names=("a", "b"), name="x")
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError):
        DataSpec(channels=2, resolution=32)


def test_image_dataset_rejects_wrong_shapes():
    spec = DataSpec(channels=1, resolution=4)
    with pytest.raises(ValueError):
        ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), None, spec)
