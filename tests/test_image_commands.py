"""`ganforge inpaint` and `ganforge upscale`: files in, files out, the image's own size kept
(times the factor for upscale), known pixels kept, and every user mistake a one-line error with
exit 2 and nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganforge.cli import main

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


def write_folder(root, n: int, size: int = 16) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("test", 4)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / f"{i}.png")


def train(tmp_path, model: str, dataset: str) -> object:
    data = tmp_path / "data"
    write_folder(data, 8)
    run = tmp_path / model
    argv = ["train", model, "--preset", "tiny", "--dataset", f"{dataset}:folder:{data}"]
    assert main([*argv, "--out", str(run), "--steps", "2", *QUIET]) == 0
    return run


@pytest.fixture(scope="module")
def inpainter(tmp_path_factory):
    return train(tmp_path_factory.mktemp("ce"), "context-encoder", "masked")


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(path)
    return path


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_inpaint_with_a_box_keeps_every_known_pixel(inpainter, photo, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(["inpaint", str(inpainter), str(photo), "--box", "4,6,8,10", "--out", str(out)]) == 0
    )
    assert "wrote 1 inpainted images" in capsys.readouterr().out
    before, after = read(photo), read(out / "photo.png")
    assert after.shape == before.shape  # its own size (padded for G, cropped back)
    hole = np.zeros(before.shape, bool)
    hole[4:12, 6:16] = True
    assert np.array_equal(after[~hole], before[~hole])


def test_inpaint_with_a_mask_file(inpainter, photo, tmp_path):
    mask = np.zeros((20, 24), np.uint8)
    mask[2:9, 3:11] = 255
    mask_file = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_file)
    out = tmp_path / "out"
    assert (
        main(["inpaint", str(inpainter), str(photo), "--mask", str(mask_file), "--out", str(out)])
        == 0
    )
    before, after = read(photo), read(out / "photo.png")
    assert np.array_equal(after[mask == 0], before[mask == 0])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--box", "15,0,8,8"], "reaches past the 24x20 image"),
        (["--box", "1,2,3"], "give the hole as Y,X,H,W"),
        (["--box", "1,2,0,3"], "H and W 1 or more"),
        (["--mask", "WRONG_SIZE"], "is 10x10 but image"),
        (["--mask", "EMPTY"], "has no hole"),
        (["--mask", "FULL"], "covers the whole image"),
        (["--mask", "MISSING"], "does not exist"),
    ],
)
def test_inpaint_mistakes_are_one_line_and_write_nothing(
    inpainter, photo, tmp_path, capsys, extra, message
):
    masks = {
        "WRONG_SIZE": np.full((10, 10), 255, np.uint8),
        "EMPTY": np.zeros((20, 24), np.uint8),
        "FULL": np.full((20, 24), 255, np.uint8),
    }
    for name, pixels in masks.items():
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    extra = [str(tmp_path / f"{e}.png") if e in (*masks, "MISSING") else e for e in extra]
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["inpaint", str(inpainter), str(photo), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_inpaint_needs_one_hole_and_an_inpainting_model(inpainter, photo, tmp_path, capsys):
    with pytest.raises(SystemExit) as both:  # argparse: --mask and --box are exclusive
        main(["inpaint", str(inpainter), str(photo), "--box", "1,1,2,2", "--mask", "m.png"])
    assert both.value.code == 2
    with pytest.raises(SystemExit) as none:
        main(["inpaint", str(inpainter), str(photo)])
    assert none.value.code == 2
    capsys.readouterr()
    assert main(["upscale", str(inpainter), str(photo)]) == 2
    assert "does not upscale images" in capsys.readouterr().err
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    assert main(["inpaint", str(inpainter), str(not_image), "--box", "1,1,2,2"]) == 2
    assert "cannot read image" in capsys.readouterr().err
