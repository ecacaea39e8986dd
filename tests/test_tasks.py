"""Task data sets: each task's batch contract, its determinism, and the user layouts."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import DataSpec, TaskOptions, batch_key, load_dataset, tokenize
from ganforge.data.captions import (
    CAPTION_TEMPLATES,
    FileCaptions,
    MeasuredCaptions,
    build_vocab,
    measure,
    words,
)
from ganforge.data.core import make_dataset
from ganforge.data.tasks import (
    MASK_FILL,
    CaptionedDataset,
    LowresDataset,
    MaskedDataset,
    UnpairedDataset,
    box_downsample,
    captioned,
    sobel_edges,
)
from ganforge.errors import UserError
from ganforge.registry import DATASETS


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def save(path: Path, array: np.ndarray) -> None:
    """uint8 [H, W] or [H, W, 3] as a PNG (lossless, so values survive exactly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def flat(value: int, h: int = 8, w: int = 8) -> np.ndarray:
    return np.full((h, w), value, np.uint8)


def u8(value: int) -> float:
    """The float32 an 8-bit level becomes in a batch: value / 127.5 - 1."""
    return torch.tensor(float(value)).div(127.5).sub(1.0).item()


def write_fake_fmnist(
    folder: Path, labels: list[int], images: np.ndarray | None = None
) -> np.ndarray:
    """The four IDX files of a tiny Fashion-MNIST look-alike (both splits alike) holding
    `images` (default random) uint8 [N, 28, 28]; returns the images."""
    folder.mkdir(parents=True, exist_ok=True)
    if images is None:
        images = np.random.default_rng(0).integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    arrays = (images, np.asarray(labels, np.uint8))
    for prefix in ("train", "t10k"):
        for stem, array in zip(("images-idx3", "labels-idx1"), arrays, strict=True):
            header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (folder / f"{prefix}-{stem}-ubyte.gz").write_bytes(
                gzip.compress(header + array.tobytes())
            )
    return images


def assert_images(batch: dict[str, torch.Tensor], key: str, shape: tuple[int, ...]) -> None:
    image = batch[key]
    assert image.dtype == torch.float32 and tuple(image.shape) == shape, (key, image.shape)
    assert image.min() >= -1.0 and image.max() <= 1.0


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------- spec, keys, options


def test_registered_names_and_their_tasks():
    names = {"fmnist-edges", "pix2pix", "pairs", "masked", "lowres", "fmnist-shoes"}
    names |= {"cyclegan", "fmnist-captions", "captions"}
    assert names <= set(DATASETS)
    assert all(DATASETS.doc(n) for n in names)  # each has a line for `ganforge list datasets`


def test_old_meta_json_spec_still_loads_as_plain():
    old = {"channels": 1, "resolution": 28, "num_classes": 0, "class_names": [], "name": "fmnist"}
    spec = DataSpec.from_dict(old)
    assert spec == DataSpec(1, 28, name="fmnist") and spec.task == "plain"
    assert (spec.cond_channels, spec.cond_resolution, spec.vocab, spec.max_tokens) == (0, 0, (), 0)
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_spec_refuses_fields_its_task_lacks():
    with pytest.raises(ValueError, match="task"):
        DataSpec(1, 8, task="noise")
    with pytest.raises(ValueError, match="input shape"):
        DataSpec(1, 8, task="paired")  # no cond_channels / cond_resolution
    with pytest.raises(ValueError, match="no image input"):
        DataSpec(1, 8, cond_channels=1, cond_resolution=8)
    with pytest.raises(ValueError, match="vocab"):
        DataSpec(1, 8, task="captioned", vocab=("a", "b"), max_tokens=3)
    with pytest.raises(ValueError, match="no captions"):
        DataSpec(1, 8, vocab=("<pad>", "<unk>"), max_tokens=3)


def test_batch_keys_differ_between_seeds_and_steps():
    keys = {batch_key(s, k) for s in range(3) for k in range(100)}
    assert len(keys) == 300 and all(0 <= k < 2**63 for k in keys)
    assert batch_key(4, 17) == batch_key(4, 17)


def test_plain_data_ignores_the_key():
    digits = load_dataset("digits")
    index = torch.tensor([0, 5, 9])
    assert_same(digits.batch(index), digits.batch(index, key=batch_key(0, 3)))


def test_an_option_for_another_task_is_refused():
    with pytest.raises(UserError, match="data.mask='boxes' applies to masked") as err:
        load_dataset("digits", options=TaskOptions(mask="boxes"))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="data.factor=2 applies to lowres"):
        load_dataset("masked:digits", options=TaskOptions(factor=2))


def test_data_config_checks_and_passes_the_task_options():
    cfg = DataConfig(name="masked:digits", mask="strokes")
    cfg.validate()
    assert cfg.task_options() == TaskOptions(mask="strokes")
    for field, value in (("mask", "circle"), ("factor", 3), ("direction", "AB"), ("max_tokens", 0)):
        with pytest.raises(UserError, match=f"data.{field}"):
            DataConfig(**{field: value}).validate()


# ---------------------------------------------------------------- masked


def test_center_mask_covers_a_quarter_at_32px():
    data = load_dataset("masked:digits", resolution=32)
    assert data.spec.task == "masked" and data.spec.name == "masked:digits"
    assert (data.spec.cond_channels, data.spec.cond_resolution) == (1, 32)
    batch = data.batch(torch.arange(4))
    assert set(batch) == {"image", "mask", "cond_image"}
    for key in ("image", "cond_image", "mask"):
        assert_images(batch, key, (4, 1, 32, 32))
    mask = batch["mask"]
    assert mask.sum().item() == 4 * 16 * 16  # a 16 x 16 hole in each 32 x 32 image: a quarter
    assert (mask[:, :, 8:24, 8:24] == 1).all()
    hole = mask.bool()
    assert (batch["cond_image"][hole] == MASK_FILL).all()
    assert torch.equal(batch["cond_image"][~hole], batch["image"][~hole])
    assert_same(batch, data.batch(torch.arange(4), key=123))  # a centred hole has no random part


@pytest.mark.parametrize("kind", ["boxes", "strokes"])
def test_random_masks_follow_the_key(kind):
    data = load_dataset("masked:digits", resolution=32, options=TaskOptions(mask=kind))
    index = torch.arange(8)
    first = data.batch(index, key=batch_key(0, 1))
    assert_same(first, data.batch(index, key=batch_key(0, 1)))  # same key: bitwise the same
    other = data.batch(index, key=batch_key(0, 2))
    differs = (first["mask"] != other["mask"]).flatten(1).any(1)
    assert differs.all()  # another key redraws every item's mask
    assert_same(data.batch(index), data.batch(index))  # key=None: stable across calls
    mask = first["mask"]
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    covered = mask.mean((1, 2, 3))
    assert (covered > 0).all() and (covered < 1).all()  # never empty, never the whole frame
    expected = torch.where(mask.bool(), torch.tensor(MASK_FILL), first["image"])
    assert torch.equal(first["cond_image"], expected)
    # an item's mask depends on (key, item) only, not on the batch it sits in (or its process)
    alone = data.batch(torch.tensor([5]), key=batch_key(0, 1))
    assert torch.equal(alone["mask"][0], mask[5])


def test_masked_errors():
    with pytest.raises(UserError, match="unknown mask kind 'circle'.*strokes or random"):
        load_dataset("masked:digits", options=TaskOptions(mask="circle"))
    with pytest.raises(UserError, match="needs a plain image source"):
        load_dataset("masked:lowres:digits")
    with pytest.raises(UserError, match="needs a source after.*masked:fmnist"):
        load_dataset("masked")


# ---------------------------------------------------------------- lowres


def test_lowres_input_of_a_constant_image_is_that_constant(tmp_path):
    for i, value in enumerate((0, 77, 255)):
        save(tmp_path / f"{i}.png", flat(value, 40, 40))
    data = load_dataset(f"lowres:folder:{tmp_path}", resolution=32)
    assert data.spec.task == "lowres" and (data.spec.cond_resolution, data.factor) == (8, 4)
    batch = data.batch(torch.arange(3))
    assert set(batch) == {"image", "cond_image"}
    assert_images(batch, "image", (3, 1, 32, 32))
    assert_images(batch, "cond_image", (3, 1, 8, 8))
    for i, value in enumerate((0, 77, 255)):
        assert (batch["cond_image"][i] == u8(value)).all()
        assert (batch["cond_image"][i] == batch["image"][i, 0, 0, 0]).all()  # bitwise equal


def test_lowres_averages_each_block():
    image = torch.tensor([[0, 255, 10, 10], [255, 255, 10, 10]], dtype=torch.uint8)
    source = make_dataset(
        np.tile(image.numpy(), (2, 1))[None, None],  # one 4 x 4 image, rows repeated
        None,
        name="blocks",
    )
    data = LowresDataset(source, 2, "lowres:blocks")
    cond = data.batch(torch.tensor([0]))["cond_image"][0, 0]
    # (0 + 255 + 255 + 255) / 4 = 191.25 -> 0.5 in [-1, 1]; the flat 10s stay 10
    assert cond.tolist() == [[0.5, u8(10)], [0.5, u8(10)]]
    assert data.batch(torch.tensor([0]), key=7)["cond_image"].equal(cond[None, None])


def test_lowres_errors():
    with pytest.raises(UserError, match="unsupported lowres factor 3.*use 2 or 4"):
        load_dataset("lowres:digits", options=TaskOptions(factor=3))
    with pytest.raises(UserError, match="resolution 30 does not divide by factor 4"):
        load_dataset("lowres:digits", resolution=30)
    assert load_dataset("lowres:digits", options=TaskOptions(factor=2)).spec.cond_resolution == 4


def test_lowres_crops_are_keyed_in_training_and_central_in_evaluation():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 1, 12, 12), dtype=np.uint8)
    source = make_dataset(images, None, name="pixels")
    data = LowresDataset(source, 2, "lowres:pixels", crop=8)
    assert (data.spec.resolution, data.spec.cond_resolution) == (8, 4)
    full = source.batch(torch.arange(3))["image"]
    centre = data.batch(torch.arange(3))["image"]
    assert torch.equal(centre, full[..., 2:10, 2:10])  # key None: the centre crop
    assert torch.equal(data.images, source.images[..., 2:10, 2:10])
    one, again = (data.batch(torch.arange(3), key=5) for _ in range(2))
    assert torch.equal(one["image"], again["image"])  # a pure function of (key, item)
    # each crop is a window of its own image, and the low-res input is made from that window
    for i in range(3):
        windows = full[i].unfold(1, 8, 1).unfold(2, 8, 1)  # [1, 5, 5, 8, 8]
        found = (windows == one["image"][i][:, None, None]).flatten(3).all(-1)
        assert found.any()
    assert torch.equal(one["cond_image"], box_downsample(to_uint8_rows(one["image"]), 2))
    offsets = {
        tuple(data.batch(torch.tensor([0]), key=k)["image"][0, 0, 0, :2].tolist())
        for k in range(20)
    }
    assert len(offsets) > 1  # keys move the window


def to_uint8_rows(images: torch.Tensor) -> torch.Tensor:
    return images.add(1).mul(127.5).round().to(torch.uint8)


def test_lowres_load_size_loads_larger_and_crops_to_the_resolution(tmp_path):
    for i, value in enumerate((0, 77, 255)):
        save(tmp_path / f"{i}.png", flat(value, 40, 40))
    options = TaskOptions(load_size=24)
    data = load_dataset(f"lowres:folder:{tmp_path}", resolution=16, options=options)
    assert (data.spec.resolution, data.source.spec.resolution, data.crop) == (16, 24, 16)
    assert data.batch(torch.arange(3), key=3)["image"].shape == (3, 1, 16, 16)
    with pytest.raises(UserError, match="load_size=8 is smaller than the resolution 16"):
        load_dataset(f"lowres:folder:{tmp_path}", resolution=16, options=TaskOptions(load_size=8))
    with pytest.raises(UserError, match="applies to lowres data sets"):
        load_dataset(f"masked:folder:{tmp_path}", resolution=16, options=options)


# ---------------------------------------------------------------- paired


def test_edge_map_of_a_flat_image_is_empty_and_a_step_has_two_edge_columns():
    flat_images = torch.full((2, 1, 16, 16), 130, dtype=torch.uint8)
    assert (sobel_edges(flat_images) == 0).all()
    step = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    step[..., 8:] = 255
    edges = sobel_edges(step)[0, 0]
    assert edges.dtype == torch.uint8 and set(edges.unique().tolist()) == {0, 255}
    # Sobel's gradient at a column reads its two neighbours, so only columns 7 and 8 see the step
    assert (edges[:, 7:9] == 255).all() and edges.sum().item() == 2 * 16 * 255


def test_fmnist_edges_pairs_edges_with_garments(tmp_path):
    garments = np.random.default_rng(1).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    garments[1] = 90  # one flat garment: its edge map is empty
    write_fake_fmnist(tmp_path, [0, 1, 2, 3], garments)
    data = load_dataset("fmnist-edges", split="test", data_dir=str(tmp_path))
    spec = data.spec
    assert (spec.task, spec.channels, spec.cond_channels, spec.cond_resolution) == (
        "paired",
        1,
        1,
        28,
    )
    batch = data.batch(torch.arange(4))
    assert set(batch) == {"image", "cond_image"}
    assert_images(batch, "cond_image", (4, 1, 28, 28))
    np.testing.assert_array_equal(
        ((batch["image"][:, 0] + 1) * 127.5).round().numpy(), garments
    )  # the target is the garment
    assert (batch["cond_image"][1] == -1).all()  # the flat garment: no edge anywhere
    assert set(batch["cond_image"].unique().tolist()) == {-1.0, 1.0}
    flipped = load_dataset(
        "fmnist-edges",
        split="test",
        data_dir=str(tmp_path),
        options=TaskOptions(direction="BtoA"),
    ).batch(torch.arange(4))
    assert torch.equal(flipped["image"], batch["cond_image"])
    assert torch.equal(flipped["cond_image"], batch["image"])


def write_ab(path: Path, left: int, right: int, h: int = 8) -> None:
    array = np.concatenate([flat(left, h, h), flat(right, h, h)], axis=1)  # [h, 2h]
    save(path, array)


def test_pix2pix_left_half_is_the_input_by_default(tmp_path):
    write_ab(tmp_path / "train" / "1.png", 40, 200)
    write_ab(tmp_path / "train" / "2.png", 60, 220)
    write_ab(tmp_path / "val" / "3.png", 10, 250, h=16)
    data = load_dataset(f"pix2pix:{tmp_path}", resolution=8)
    assert data.spec.task == "paired" and len(data) == 2
    batch = data.batch(torch.arange(2))
    assert (batch["cond_image"][0] == u8(40)).all() and (batch["image"][0] == u8(200)).all()
    assert (batch["cond_image"][1] == u8(60)).all() and (batch["image"][1] == u8(220)).all()
    assert_same(batch, data.batch(torch.arange(2), key=batch_key(0, 9)))  # no random part
    flipped = load_dataset(
        f"pix2pix:{tmp_path}", resolution=8, options=TaskOptions(direction="BtoA")
    )
    assert (flipped.batch(torch.tensor([0]))["cond_image"] == u8(200)).all()
    test = load_dataset(f"pix2pix:{tmp_path}", split="test", resolution=8)  # no test/: val/
    assert len(test) == 1 and (test.batch(torch.tensor([0]))["image"] == u8(250)).all()


def test_pix2pix_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(f"pix2pix:{tmp_path / 'nope'}", resolution=8)
    with pytest.raises(UserError, match="no train/ subfolder"):
        load_dataset(f"pix2pix:{tmp_path}", resolution=8)
    save(tmp_path / "train" / "square.png", flat(9, 8, 8))
    with pytest.raises(UserError, match="is 8x8.*width must be twice its height") as err:
        load_dataset(f"pix2pix:{tmp_path}", resolution=8)
    assert str(tmp_path / "train" / "square.png") in str(err.value)
    with pytest.raises(UserError, match="needs a resolution"):
        load_dataset(f"pix2pix:{tmp_path}")


def test_pairs_match_a_and_b_by_name(tmp_path):
    save(tmp_path / "A" / "cat.png", flat(10))
    save(tmp_path / "B" / "cat.png", flat(110))
    save(tmp_path / "A" / "dog.png", flat(20))
    save(tmp_path / "B" / "dog.bmp", flat(120))  # names match without their extension
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 250
    save(tmp_path / "A" / "eel.png", flat(30))
    save(tmp_path / "B" / "eel.png", rgb)
    data = load_dataset(f"pairs:{tmp_path}", resolution=8)
    assert (data.spec.cond_channels, data.spec.channels) == (1, 3)  # gray inputs, RGB targets
    batch = data.batch(torch.arange(3))
    assert batch["cond_image"][:, 0, 0, 0].tolist() == [u8(10), u8(20), u8(30)]
    assert batch["image"][:, 0, 0, 0].tolist() == [u8(110), u8(120), u8(250)]


def test_pairs_errors(tmp_path):
    save(tmp_path / "A" / "cat.png", flat(10))
    with pytest.raises(UserError, match="no B/ subfolder"):
        load_dataset(f"pairs:{tmp_path}", resolution=8)
    save(tmp_path / "B" / "cow.png", flat(10))
    with pytest.raises(UserError, match="2 image names have no partner, e.g. A/cat") as err:
        load_dataset(f"pairs:{tmp_path}", resolution=8)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="single split"):
        load_dataset(f"pairs:{tmp_path}", split="test", resolution=8)


# ---------------------------------------------------------------- unpaired


def test_fmnist_shoes_are_sneakers_and_ankle_boots(tmp_path):
    labels = [7, 9, 0, 7, 9, 9, 3, 7]
    images = write_fake_fmnist(tmp_path, labels)
    data = load_dataset("fmnist-shoes", data_dir=str(tmp_path), resolution=32)
    assert isinstance(data, UnpairedDataset) and data.spec.task == "unpaired"
    assert (len(data.images_a), len(data.images_b)) == (3, 3)
    np.testing.assert_array_equal(data.images_a[:, 0, 2:30, 2:30].numpy(), images[[0, 3, 7]])
    np.testing.assert_array_equal(data.images_b[:, 0, 2:30, 2:30].numpy(), images[[1, 4, 5]])
    batch = data.batch(torch.arange(3), key=5)
    assert set(batch) == {"image_a", "image_b"}
    assert_images(batch, "image_a", (3, 1, 32, 32))
    assert_images(batch, "image_b", (3, 1, 32, 32))


def make_cyclegan(root: Path, n_a: int, n_b: int) -> None:
    for split in ("train", "test"):
        for i in range(n_a):
            save(root / f"{split}A" / f"{i}.png", flat(10 + i))
        for i in range(n_b):
            save(root / f"{split}B" / f"{i}.png", flat(100 + i))


def b_items(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Which B image each row of a cyclegan batch holds (image i of B is flat 100 + i)."""
    return ((batch["image_b"][:, 0, 0, 0] + 1) * 127.5).round().long() - 100


def test_cyclegan_domains_are_drawn_independently_by_key(tmp_path):
    make_cyclegan(tmp_path, n_a=6, n_b=5)
    data = load_dataset(f"cyclegan:{tmp_path}", resolution=8)
    index = torch.arange(6)
    plain = data.batch(index)
    assert b_items(plain).tolist() == [0, 1, 2, 3, 4, 0]  # key=None: item i meets B's i mod 5
    assert_same(plain, data.batch(index))
    first, again = data.batch(index, key=batch_key(1, 0)), data.batch(index, key=batch_key(1, 0))
    assert_same(first, again)
    draws = [b_items(data.batch(index, key=batch_key(1, k))).tolist() for k in range(4)]
    assert len({tuple(d) for d in draws}) == 4  # another key, other B images
    assert all(0 <= i < 5 for d in draws for i in d)
    a = ((first["image_a"][:, 0, 0, 0] + 1) * 127.5).round().long() - 10
    assert a.tolist() == list(range(6))  # A follows the index, whatever the key


def test_cyclegan_errors(tmp_path):
    with pytest.raises(UserError, match="no trainA/ subfolder"):
        load_dataset(f"cyclegan:{tmp_path}", resolution=8)
    save(tmp_path / "trainA" / "a.png", flat(1))
    (tmp_path / "trainB").mkdir()
    with pytest.raises(UserError, match="domain B of cyclegan:.* is empty") as err:
        load_dataset(f"cyclegan:{tmp_path}", resolution=8)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- captioned


def test_tokenize_lowercases_pads_cuts_and_marks_unknown_words():
    vocab = build_vocab(["a dark t-shirt", "a light coat"])
    assert vocab == ("<pad>", "<unk>", "a", "coat", "dark", "light", "t-shirt")
    tokens = tokenize(["A DARK T-shirt!", "a green coat", "a a a a a"], vocab, 4)
    assert tokens.dtype == torch.int64
    assert tokens.tolist() == [[2, 4, 6, 0], [2, 1, 3, 0], [2, 2, 2, 2]]
    assert words("It's a T-shirt, 2 sizes.") == ["it's", "a", "t-shirt", "2", "sizes"]


def test_measure_reads_shade_width_and_fill():
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    images[0, :, 7:21, 7:21] = 200  # 14 x 14: half the width, a quarter of the frame, bright
    images[1, :, 2:26, 0:28] = 100  # full width, 24 * 28 / 784 = 0.857 of the frame, dim
    # word indices (shade, width, fill): dark, narrow, small; light, wide, large
    assert measure(images).tolist() == [[2, 0, 0], [0, 2, 2]]


def test_captions_of_two_images_of_one_class_differ():
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    images[0, :, 7:21, 7:21] = 200
    images[1, :, 2:26, 0:28] = 100
    captions = MeasuredCaptions(measure(images), torch.tensor([9, 9]), ("x",) * 9 + ("ankle boot",))
    for j in range(len(CAPTION_TEMPLATES)):
        assert captions.text(0, j) != captions.text(1, j)
    assert (
        captions.text(0, 0) == "a dark ankle boot" and captions.text(1, 0) == "a light ankle boot"
    )
    assert captions.text(1, 4) == "a large wide ankle boot"
    assert len({captions.text(0, j) for j in range(captions.count(0))}) == len(CAPTION_TEMPLATES)


def decode(vocab: tuple[str, ...], row: torch.Tensor) -> list[str]:
    return [vocab[i] for i in row.tolist() if i != 0]


def test_fmnist_captions_contract_and_vocab_round_trip(tmp_path):
    write_fake_fmnist(tmp_path, list(range(10)) * 2)
    data = load_dataset("fmnist-captions", data_dir=str(tmp_path), resolution=32)
    spec = data.spec
    assert isinstance(data, CaptionedDataset) and spec.task == "captioned"
    assert spec.vocab[:2] == ("<pad>", "<unk>") and "sneaker" in spec.vocab
    # the longest caption: "a picture of a dark pair of trousers that fills a small part of
    # the frame", 16 words
    assert spec.max_tokens == 16
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    index = torch.arange(20)
    batch = data.batch(index, key=batch_key(0, 0))
    assert set(batch) == {"image", "text", "label"}
    assert_images(batch, "image", (20, 1, 32, 32))
    assert batch["text"].dtype == torch.int64 and batch["text"].shape == (20, 16)
    assert batch["label"].tolist() == list(range(10)) * 2
    texts = data.texts(index, batch_key(0, 0))
    assert [decode(spec.vocab, row) for row in batch["text"]] == [words(t) for t in texts]
    assert (batch["text"] != 1).all()  # every word is in the vocabulary
    assert_same(batch, data.batch(index, key=batch_key(0, 0)))
    assert_same(data.batch(index), data.batch(index))
    other = data.batch(index, key=batch_key(0, 1))
    assert not torch.equal(other["text"], batch["text"])  # another key, other templates
    assert torch.equal(other["image"], batch["image"])


def test_captions_folder_with_classes_and_lines(tmp_path):
    for split, word in (("train", "striped"), ("test", "dotted")):
        for cls, value in (("cats", 50), ("dogs", 150)):
            save(tmp_path / split / cls / "1.png", flat(value))
            (tmp_path / split / cls / "1.txt").write_text(
                f"A {word} {cls[:-1]}\n\nthe {cls[:-1]} sleeps\n"
            )
    train = load_dataset(f"captions:{tmp_path}", resolution=8)
    assert train.spec.class_names == ("cats", "dogs")
    assert train.spec.vocab == ("<pad>", "<unk>", "a", "cat", "dog", "sleeps", "striped", "the")
    assert train.spec.max_tokens == 3
    texts = {tuple(train.texts(torch.tensor([0]), batch_key(0, k))) for k in range(8)}
    assert texts == {("A striped cat",), ("the cat sleeps",)}  # the key picks one of the lines
    test = load_dataset(f"captions:{tmp_path}", split="test", resolution=8)
    assert test.spec.vocab == train.spec.vocab  # the training split's words, whichever split
    batch = test.batch(torch.arange(2))
    assert batch["label"].tolist() == [0, 1]
    unk = 1
    first = batch["text"][0].tolist()
    assert first in ([2, unk, 3], [7, 3, 5])  # "dotted" is not a training word


def test_captions_errors(tmp_path):
    save(tmp_path / "a.png", flat(5))
    with pytest.raises(UserError, match="no caption file 'a.txt'"):
        load_dataset(f"captions:{tmp_path}", resolution=8)
    (tmp_path / "a.txt").write_text("\n  \n")
    with pytest.raises(UserError, match="is empty; write at least one caption"):
        load_dataset(f"captions:{tmp_path}", resolution=8)
    (tmp_path / "a.txt").write_text("a caption")
    with pytest.raises(UserError, match="max_tokens must be at least 1"):
        load_dataset(f"captions:{tmp_path}", resolution=8, options=TaskOptions(max_tokens=0))
    data = load_dataset(f"captions:{tmp_path}", resolution=8, options=TaskOptions(max_tokens=5))
    assert data.batch(torch.tensor([0]))["text"].tolist() == [[2, 3, 0, 0, 0]]
    assert "label" not in data.batch(torch.tensor([0]))  # no class subfolders: unlabeled


def test_file_captions_feed_a_captioned_data_set():
    source = make_dataset(np.zeros((2, 1, 4, 4), np.uint8), None, name="tiny")
    data = captioned(source, FileCaptions([("one two",), ("three",)]), "tiny", max_tokens=None)
    assert data.spec.max_tokens == 2 and data.spec.vocab[2:] == ("one", "three", "two")
    assert data.batch(torch.arange(2))["text"].tolist() == [[2, 4], [3, 0]]


def test_masked_and_lowres_keep_their_source_for_statistics():
    digits = load_dataset("digits")
    masked = MaskedDataset(digits, "center", "masked:digits")
    assert masked.images is digits.images and torch.equal(masked.labels, digits.labels)
    assert len(masked) == len(digits) == 1438
