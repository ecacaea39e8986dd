"""pix2pix: the reference's networks and their sizes, dropout where the paper puts it and kept
at test time (seeded), D seeing input and output together, the losses and their weights, the
L1-only ablation, test-time normalization, translate at any size, and the commands."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _families import build, example_batch
from conftest import write_ab
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.data import DataSpec
from ganforge.errors import UserError
from ganforge.models.imagenets import UnetGenerator, patch_loss

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def paired_spec(channels: int = 3, resolution: int = 256, cond: int | None = None) -> DataSpec:
    return DataSpec(
        channels=channels,
        resolution=resolution,
        name="synthetic",
        task="paired",
        cond_channels=cond or channels,
        cond_resolution=resolution,
    )


def dropouts(net: torch.nn.Module) -> list[torch.nn.Dropout]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Dropout)]


# ----- the networks -------------------------------------------------------------------------
def test_isola_preset_builds_the_references_networks():
    """unet_256 with BatchNorm prints 54.414 M in the reference; its 70x70 PatchGAN on 6
    channels (A and B concatenated) with BatchNorm: the 3-channel instance-norm D's 2,764,737
    (the cyclegan test) + 3 x 64 x 16 first-layer weights for the extra input channels
    - 896 conv biases dropped before BatchNorm + 2 x 896 BatchNorm scales and shifts
    = 2,768,705 (printed as 2.769 M)."""
    with torch.device("meta"):
        model = ganforge.create_model("pix2pix", "isola", paired_spec())
    assert {k: count(v) for k, v in model.networks().items()} == {
        "G": 54_413_955,
        "D": 2_768_705,
    }
    assert model.D.model[0].in_channels == 6
    assert len(model.G.downs) == 8  # log2(256): down to 1 x 1
    assert len(dropouts(model.G)) == 3 and all(m.p == 0.5 for m in dropouts(model.G))


def test_dropout_sits_in_the_decoder_blocks_next_to_the_bottleneck():
    # the reference's rule (None): blocks with 8 ngf on both sides, 3 at depth 8, 0 at depth 5
    assert len(dropouts(UnetGenerator(1, 1, 8, 4, dropout=0.5))) == 3
    assert len(dropouts(UnetGenerator(1, 1, 5, 4, dropout=0.5))) == 0
    net = UnetGenerator(1, 1, 5, 4, dropout=0.5, dropout_blocks=2)
    # ups[4] is the innermost (no dropout), then ups[3] and ups[2]; none further out
    with_dropout = [i for i, up in enumerate(net.ups) if dropouts(up)]
    assert with_dropout == [2, 3]
    # pix2pix keeps at least one at small sizes (fmnist32: depth 5)
    model = ganforge.create_model("pix2pix", "fmnist32", paired_spec(1, 32))
    assert len(dropouts(model.G)) == 1


def test_resnet_option_and_the_l1_only_ablation_build_no_d():
    model = ganforge.create_model(
        "pix2pix", "tiny", paired_spec(1, 16), g_arch="resnet", n_blocks=2
    )
    assert type(model.G).__name__ == "ResnetGenerator" and len(dropouts(model.G)) == 2
    l1 = ganforge.create_model("pix2pix", "tiny", paired_spec(1, 16), lambda_gan=0)
    assert list(l1.networks()) == ["G"] and [p.name for p in l1.phases()] == ["G"]
    assert list(l1.param_groups()) == ["G"]


def test_edge_maps_of_fewer_channels_than_the_targets():
    model = ganforge.create_model("pix2pix", "tiny", paired_spec(3, 16, cond=1))
    assert model.G.downs[0].in_channels == 1 and model.D.model[0].in_channels == 4
    out = model.translate(torch.zeros(2, 1, 16, 16))
    assert out.shape == (2, 3, 16, 16)


# ----- the losses ---------------------------------------------------------------------------
def test_g_loss_is_vanilla_gan_on_the_pair_plus_100_l1():
    model, _ = build("pix2pix")
    batch = example_batch(model, 4)
    torch.manual_seed(3)
    losses = model.g_step(batch, ctx := {})
    torch.manual_seed(3)  # the same dropout masks
    fake = model.G(batch["cond_image"])
    scores = model.D(torch.cat([batch["cond_image"], fake], 1))
    l1 = (fake - batch["image"]).abs().mean()
    adv = torch.nn.functional.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
    torch.testing.assert_close(losses["l1"], 100 * l1)
    torch.testing.assert_close(losses["adv"], adv)
    torch.testing.assert_close(losses["loss"], 100 * l1 + adv)
    torch.testing.assert_close(ctx["fake"], fake.detach())


def test_d_loss_is_halved_on_real_and_fake_pairs():
    model, _ = build("pix2pix")
    batch = example_batch(model, 4)
    fake = torch.rand_like(batch["image"]) * 2 - 1
    losses = model.d_step(batch, {"fake": fake})
    x = batch["cond_image"]
    real = patch_loss(model.D(torch.cat([x, batch["image"]], 1)), True, "vanilla")
    made = patch_loss(model.D(torch.cat([x, fake], 1)), False, "vanilla")
    torch.testing.assert_close(losses["loss"], 0.5 * (real + made))


def test_the_rate_is_constant_then_decays_linearly_to_zero():
    model, _ = build("pix2pix", lr_decay_start=10, lr_decay_steps=20)
    schedule = model.param_groups()["G"].schedule
    assert [schedule.factor(s) for s in (0, 9, 10, 20, 30, 40)] == [1, 1, 1, 0.5, 0, 0]
    assert model.param_groups()["D"].schedule == schedule


# ----- using a trained model ------------------------------------------------------------------
def test_translate_keeps_dropout_on_and_is_repeatable_by_seed():
    model, _ = build("pix2pix")
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    state = torch.get_rng_state()
    a, b = model.translate(x, seed=1), model.translate(x, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert torch.equal(a, b)
    assert not torch.equal(a, model.translate(x, seed=2))  # dropout differs by seed
    off, _ = build("pix2pix", test_dropout=False)
    off.load_state_dict(model.state_dict())
    assert torch.equal(off.translate(x, seed=1), off.translate(x, seed=2))
    assert model.G.training  # translate leaves the training mode as it was


def test_each_image_by_its_own_statistics_leaves_the_running_ones_alone():
    model, _ = build("pix2pix", test_norm="image", test_dropout=False)
    bn = next(m for m in model.G.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = {k: v.clone() for k, v in model.G.state_dict().items()}
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    together = model.translate(x)
    alone = model.translate(x[1:2])
    torch.testing.assert_close(together[1:2], alone)  # independent of its batch mates
    after = model.G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert bn.momentum == 0.1


@pytest.mark.parametrize("size", [(13, 19), (16, 16), (40, 17)])
def test_translate_takes_any_size_and_crops_back(size):
    model, _ = build("pix2pix")
    out = model.translate(torch.zeros(2, 1, *size))
    assert out.shape == (2, 1, *size) and out.abs().max() <= 1
    assert model.valid_size(*size) == tuple(-(-s // 16) * 16 for s in size)


def test_translate_refuses_directions_and_wrong_channels():
    model, _ = build("pix2pix")
    with pytest.raises(UserError, match="one way only"):
        model.translate(torch.zeros(1, 1, 16, 16), direction="b2a")
    with pytest.raises(UserError, match=r"give \[N, 1, H, W\]"):
        model.translate(torch.zeros(1, 3, 16, 16))
    with pytest.raises(UserError, match="translate"):
        model.generate(2)


def test_preview_rows_are_input_output_target():
    model, _ = build("pix2pix")
    batch = example_batch(model, 4)
    images, nrow = model.preview(12, 0, batch)
    assert nrow == 4 and images.shape == (12, 1, 16, 16)
    torch.testing.assert_close(images[:4], batch["cond_image"])
    torch.testing.assert_close(images[8:], batch["image"])
    torch.testing.assert_close(images[4:8], model.translate(batch["cond_image"]))


# ----- the commands ---------------------------------------------------------------------------
@pytest.fixture
def tiny_run(tmp_path):
    data = tmp_path / "ab"
    write_ab(data, {"train": 6, "test": 4})
    run = tmp_path / "run"
    argv = ["train", "pix2pix", "--preset", "tiny", "--dataset", f"pix2pix:{data}"]
    assert main([*argv, "--out", str(run), "--steps", "2", *QUIET]) == 0
    return run


def test_translate_and_sample_commands(tiny_run, tmp_path, capsys):
    sketch = tmp_path / "in" / "sketch.png"
    sketch.parent.mkdir()
    Image.fromarray(np.zeros((13, 21), np.uint8)).save(sketch)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["translate", str(tiny_run), str(sketch), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert Image.open(out / "sketch.png").size == (21, 13)
    assert "padded to 32x16 for the network" in captured.err
    assert main(["translate", str(tiny_run), str(sketch), "--direction", "a2b"]) == 2
    assert "one way only" in capsys.readouterr().err
    grid = tmp_path / "grid.png"
    assert main(["sample", str(tiny_run), "--n", "12", "--out", str(grid)]) == 0
    # input | output | target rows of the 4 test pairs: 3 rows of 4 columns of 16 px, borders
    # of 2 px, enlarged 4x
    assert Image.open(grid).size == ((4 * 18 + 2) * 4, (3 * 18 + 2) * 4)
    loaded = ganforge.load(tiny_run)
    x = torch.zeros(1, 1, 16, 16)
    assert torch.equal(loaded.translate(x, seed=5), loaded.translate(x, seed=5))


def test_ab_files_of_odd_width_are_refused_before_training(tmp_path, capsys):
    data = tmp_path / "ab"
    write_ab(data, {"train": 2, "test": 1})
    Image.fromarray(np.zeros((16, 31), np.uint8)).save(data / "train" / "bad.png")
    argv = ["train", "pix2pix", "--preset", "tiny", "--dataset", f"pix2pix:{data}"]
    assert main([*argv, "--out", str(tmp_path / "run"), *QUIET]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained, nothing saved
