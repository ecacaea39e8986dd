"""cyclegan: the reference's networks and their sizes, the image pool's rule, the pools in
the checkpoint and exact resume, the losses, the LR decay, translate at any size, and the
translate/sample commands with their one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _families import build, example_batch, tiny_data
from PIL import Image

import ganforge
from ganforge.api import check_direction
from ganforge.cli import main
from ganforge.config import build_config
from ganforge.data import DataSpec, load_dataset
from ganforge.engine.trainer import Trainer
from ganforge.errors import UserError
from ganforge.metrics.image_tasks import collect
from ganforge.models.base import Task
from ganforge.models.cyclegan import ImagePool
from ganforge.models.imagenets import (
    PatchDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    pad_to,
    patch_layers_for,
    patch_size,
)

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def unpaired_spec(channels: int = 1, resolution: int = 16) -> DataSpec:
    return DataSpec(channels=channels, resolution=resolution, name="synthetic", task="unpaired")


# ----- the networks -------------------------------------------------------------------------
def test_parameter_counts_match_the_reference_networks():
    """The reference's resnet_9blocks G (ngf 64, RGB) has 11,378,179 parameters and its basic
    70x70 PatchGAN D (ndf 64) 2,764,737; its unet_256 with BatchNorm (pix2pix's G) prints
    54.414 M.  Built on the meta device: counted, not allocated."""
    with torch.device("meta"):
        assert count(ResnetGenerator(3, 3, 64, 9)) == 11_378_179
        assert count(PatchDiscriminator(3, 64, 3)) == 2_764_737
        assert count(UnetGenerator(3, 3, 8, 64, norm="batch")) == 54_413_955
        model = ganforge.create_model("cyclegan", "zhu", unpaired_spec(3, 256))
    counts = {name: count(net) for name, net in model.networks().items()}
    assert counts == {"G_AB": 11_378_179, "G_BA": 11_378_179, "D_A": 2_764_737, "D_B": 2_764_737}


def test_patch_sizes_and_the_depth_rule():
    assert [patch_size(n) for n in (1, 2, 3)] == [16, 34, 70]
    assert [patch_layers_for(r) for r in (16, 32, 64, 128, 256, 512)] == [1, 1, 1, 2, 3, 3]


@pytest.mark.parametrize("resolution,patches", [(32, 14), (256, 30)])
def test_generator_and_discriminator_shapes(resolution, patches):
    """G keeps the size; D gives one score per patch: 30 x 30 at 256 px (3 layers), 14 x 14 at
    32 px (1 layer).  ngf/ndf 8 keep the 256 px forward pass quick; the shapes are the same."""
    model = ganforge.create_model(
        "cyclegan", "zhu", unpaired_spec(3, resolution), resolution=resolution, ngf=8, ndf=8
    )
    blocks = [m for m in model.G_AB.model if type(m).__name__ == "ResnetBlock"]
    assert len(blocks) == (9 if resolution == 256 else 6)
    x = torch.rand(1, 3, resolution, resolution) * 2 - 1
    with torch.no_grad():
        y = model.G_AB(x)
        scores = model.D_B(y)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert scores.shape == (1, 1, patches, patches)


def test_unet_option_builds_its_depth_from_the_resolution():
    model, _ = build("cyclegan", g_arch="unet")  # tiny: 16 px, depth 4 down to 1 x 1
    assert len(model.G_AB.downs) == 4
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert model.translate(x).shape == x.shape
    with pytest.raises(UserError, match="power of two"):
        build_config("cyclegan", "tiny", overrides=[("g_arch", "unet"), ("resolution", 24)])


def test_weights_start_as_the_references_normal_init():
    model = ganforge.create_model("cyclegan", "fmnist32", unpaired_spec(1, 32))
    convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    ]
    weights = torch.cat([m.weight.flatten() for m in convs])
    biases = torch.cat([m.bias.flatten() for m in convs if m.bias is not None])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001
    assert torch.count_nonzero(biases) == 0


# ----- the image pool -------------------------------------------------------------------------
def flat(*values: float) -> torch.Tensor:
    """One 1 x 2 x 2 image per value, every pixel that value."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)


def values(images: torch.Tensor) -> list[float]:
    return images[:, 0, 0, 0].tolist()


def test_pool_fills_first_then_swaps_half_the_time():
    pool = ImagePool(2, channels=1, resolution=2)
    assert values(pool.query(flat(1, 2))) == [1, 2]  # filling: each image returned and stored
    assert values(pool.images) == [1, 2] and int(pool.count) == 2
    torch.manual_seed(3)
    draws = [(bool(torch.rand(1) < 0.5), int(torch.randint(2, (1,)))) for _ in range(6)]
    torch.manual_seed(3)
    returned = [values(pool.query(flat(v)))[0] for v in (5, 6, 7, 8, 9, 10)]
    stored, expected = [1.0, 2.0], []
    for value, (swap, slot) in zip((5, 6, 7, 8, 9, 10), draws, strict=True):
        if swap:  # the stored image comes out, the new one takes its slot
            expected.append(stored[slot])
            stored[slot] = value
        else:
            expected.append(value)
    assert returned == expected and values(pool.images) == stored
    assert 0 < sum(swap for swap, _ in draws) < 6  # both cases met in these six draws


def test_full_pool_keeps_every_image_it_is_given_or_returns_it():
    """Nothing is lost or duplicated: what goes in (the pool plus the batch) comes out (the
    pool plus the answer), and about half of 400 answers are stored images."""
    pool = ImagePool(5, channels=1, resolution=2)
    pool.query(flat(*range(5)))
    torch.manual_seed(0)
    swapped = 0
    for start in range(100, 500, 4):
        batch = flat(*range(start, start + 4))
        before = values(pool.images)
        out = values(pool.query(batch))
        assert sorted(before + values(batch)) == sorted(values(pool.images) + out)
        swapped += sum(v < start for v in out)
    assert 160 < swapped < 240  # binomial(400, 1/2): 200, give or take 4 deviations of 10


def test_pool_of_size_zero_passes_images_through():
    pool = ImagePool(0, channels=1, resolution=2)
    images = flat(1, 2, 3)
    assert pool.query(images) is images


def test_a_run_without_pools_saves_and_loads(tmp_path):
    cfg = build_config(
        "cyclegan",
        "tiny",
        overrides=[
            ("pool_size", 0),
            ("train.steps", 1),
            ("train.progress", False),
            ("train.tensorboard", False),
        ],
    )
    Trainer(cfg, tmp_path, data=tiny_data("cyclegan")).fit()  # a [0, 1, 16, 16] buffer each
    loaded = ganforge.load(tmp_path)
    assert loaded.model.pool_a.images.shape == (0, 1, 16, 16)
    assert loaded.translate(torch.zeros(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_the_pools_are_in_the_state_dict():
    model, _ = build("cyclegan")  # tiny: pool 4, 1 x 16 x 16
    state = model.state_dict()
    for domain in ("a", "b"):
        assert state[f"pool_{domain}.images"].shape == (4, 1, 16, 16)
        assert state[f"pool_{domain}.count"].item() == 0
    model.pool_a.query(torch.full((1, 1, 16, 16), 7.0))
    other, _ = build("cyclegan", seed=1)
    other.load_state_dict(model.state_dict())
    assert int(other.pool_a.count) == 1 and other.pool_a.images[0].eq(7).all()
    assert int(other.pool_b.count) == 0


@pytest.mark.parametrize("split,filled", [(1, 4), (3, 6)])
def test_resume_is_bitwise_exact_with_the_pools_partly_or_fully_filled(tmp_path, split, filled):
    """Batch 4 into pools of 6: after one step they hold 4 (partly filled), after two they
    are full and later steps swap; a run cut at either point ends as the straight one."""
    data = tiny_data("cyclegan")
    settings = [
        ("pool_size", 6),
        ("train.checkpoint_every", split),
        ("train.sample_every", 100),
        ("train.progress", False),
        ("train.tensorboard", False),
    ]

    def run(folder: str, steps: int, resume: bool = False) -> Trainer:
        cfg = build_config("cyclegan", "tiny", overrides=[*settings, ("train.steps", steps)])
        (tmp_path / folder).mkdir(exist_ok=True)
        trainer = Trainer(cfg, tmp_path / folder, resume=resume, data=data)
        trainer.fit()
        return trainer

    straight = run("a", 5).model.state_dict()
    cut = run("b", split)
    assert int(cut.model.pool_a.count) == int(cut.model.pool_b.count) == filled
    resumed = run("b", 5, resume=True).model.state_dict()
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert int(resumed["pool_a.count"]) == 6


# ----- the losses and the schedule -----------------------------------------------------------
def calls(model) -> dict[str, int]:
    counts = {"G_AB": 0, "G_BA": 0}
    for name in counts:

        def hook(*_, name=name):
            counts[name] += 1

        getattr(model, name).register_forward_hook(hook)
    return counts


def test_the_generator_losses_and_their_weights():
    model, _ = build("cyclegan")
    batch = example_batch(model, n=4)
    seen = calls(model)
    losses = model.g_step(batch, {})
    assert seen == {"G_AB": 3, "G_BA": 3}  # fake, cycle and identity passes each
    a = batch["image_a"]
    with torch.no_grad():
        identity = 0.5 * 10 * (model.G_BA(a) - a).abs().mean()  # lambda_identity * lambda_a
    assert torch.allclose(losses["idt_a"], identity)
    parts = [v for k, v in losses.items() if k != "loss"]
    assert torch.allclose(losses["loss"], sum(parts))


def test_identity_loss_off_skips_its_passes_and_its_terms():
    model, _ = build("cyclegan", lambda_identity=0.0)
    seen = calls(model)
    losses = model.g_step(example_batch(model, n=4), {})
    assert seen == {"G_AB": 2, "G_BA": 2}
    assert set(losses) == {"loss", "adv_ab", "adv_ba", "cycle_a", "cycle_b"}
    total = losses["adv_ab"] + losses["adv_ba"] + losses["cycle_a"] + losses["cycle_b"]
    assert torch.equal(losses["loss"], total)


def test_d_loss_is_halved_lsgan_on_pooled_fakes():
    """With D's last conv zeroed, every patch scores 0: LSGAN gives (1 + 0) / 2 per D."""
    model, _ = build("cyclegan")
    for d in (model.D_A, model.D_B):
        torch.nn.init.zeros_(d.model[-1].weight)
        torch.nn.init.zeros_(d.model[-1].bias)
    ctx: dict = {}
    batch = example_batch(model, n=4)
    model.g_step(batch, ctx)
    losses = model.d_step(batch, ctx)
    assert losses["d_a"].item() == losses["d_b"].item() == 0.5
    assert losses["loss"].item() == 1.0 and ctx == {}
    assert int(model.pool_a.count) == int(model.pool_b.count) == 4  # the fakes went in
    vanilla, _ = build("cyclegan", gan_loss="vanilla")
    for d in (vanilla.D_A, vanilla.D_B):
        torch.nn.init.zeros_(d.model[-1].weight)
        torch.nn.init.zeros_(d.model[-1].bias)
    out = vanilla.d_step(example_batch(vanilla, n=4), {})
    assert abs(out["d_a"].item() - float(np.log(2))) < 1e-6  # BCE of logit 0 either way


def test_the_rate_is_constant_then_falls_linearly_to_zero():
    cfg = build_config("cyclegan", "fmnist32")
    assert (cfg.family.lr_decay_start, cfg.family.lr_decay_steps) == (4000, 4000)
    assert cfg.train.steps == 8000  # the decay spans the second half of the run
    model = ganforge.create_model("cyclegan", "fmnist32", unpaired_spec(1, 32))
    for group in ("G", "D"):
        schedule = model.param_groups()[group].schedule
        rates = [schedule.factor(s) for s in (0, 3999, 4000, 5000, 6000, 7999, 8000, 9000)]
        assert rates == pytest.approx([1.0, 1.0, 1.0, 0.75, 0.5, 0.00025, 0.0, 0.0])


def test_the_trainer_applies_the_decay(tmp_path):
    cfg = build_config(
        "cyclegan",
        "tiny",
        overrides=[
            ("lr_decay_start", 2),
            ("lr_decay_steps", 4),
            ("train.steps", 4),
            ("train.progress", False),
            ("train.tensorboard", False),
        ],
    )
    trainer = Trainer(cfg, tmp_path, data=tiny_data("cyclegan"))
    trainer.fit()
    # the last step (index 3) ran at 1 - (3 - 2) / 4 of the base rate
    for group in ("G", "D"):
        assert trainer.optimizers[group].param_groups[0]["lr"] == pytest.approx(1.5e-4)


# ----- translate, preview, evaluation ---------------------------------------------------------
@pytest.mark.parametrize("size", [(13, 19), (3, 5), (16, 16)])
def test_translate_takes_any_size_and_crops_back(size):
    model, _ = build("cyclegan")
    x = torch.rand(2, 1, *size) * 2 - 1
    there = model.translate(x, direction="a2b")
    back = model.translate(there, direction="b2a")
    assert there.shape == back.shape == x.shape
    padded = (max(8, -(-size[0] // 4) * 4), max(8, -(-size[1] // 4) * 4))
    with torch.no_grad():
        direct = model.G_AB(pad_to(x, padded))
    top, left = (padded[0] - size[0]) // 2, (padded[1] - size[1]) // 2
    assert torch.equal(there, direct[..., top : top + size[0], left : left + size[1]])
    assert torch.equal(model.translate(x), there)  # a2b is the default
    assert not torch.equal(model.translate(x, direction="b2a"), there)


def test_translate_refuses_unknown_directions_and_shapes():
    model, _ = build("cyclegan")
    with pytest.raises(UserError, match="unknown direction 'sideways'; use a2b"):
        model.translate(torch.zeros(1, 1, 16, 16), direction="sideways")
    with pytest.raises(UserError, match=r"give \[N, 1, H, W\]"):
        model.translate(torch.zeros(1, 3, 16, 16))
    with pytest.raises(UserError, match="not from noise"):
        model.generate(4)


def test_preview_rows_and_both_ways_of_evaluation():
    model, _ = build("cyclegan")
    batch = example_batch(model, n=4)
    images, nrow = model.preview(12, seed=0, batch=batch)  # 12 // 6 = 2 columns
    assert nrow == 2 and images.shape == (12, 1, 16, 16)
    a, b = batch["image_a"][:2], batch["image_b"][:2]
    ab, ba = model.translate(a), model.translate(b, direction="b2a")
    expected = [a, ab, model.translate(ab, direction="b2a"), b, ba, model.translate(ba)]
    assert torch.equal(images, torch.cat(expected))
    out = model.eval_outputs(batch, seed=0)
    assert set(out) == {"image", "input", "image_ba", "input_b"}
    assert torch.equal(out["image_ba"], model.translate(batch["image_b"], direction="b2a"))
    data = tiny_data("cyclegan", n=10)
    sets = collect(model, data, n=10, seed=0)  # what evaluation reads of these outputs
    assert sets["outputs"].shape == sets["targets"].shape == sets["floor"].shape
    assert len(sets["outputs"]) == 10


def test_check_direction_by_task():
    class Paired:
        task = Task("paired")

    class Noise:
        task = Task("noise")

    check_direction(Paired(), None)
    with pytest.raises(UserError, match="translates one way only, drop --direction"):
        check_direction(Paired(), "a2b")
    with pytest.raises(UserError, match="does not translate images"):
        check_direction(Noise(), None)
    check_direction(build("cyclegan")[0], "b2a")  # the model itself refuses unknown ones


# ----- the commands ---------------------------------------------------------------------------
def write_domains(root, counts: dict[str, int], size: int = 16, rgb: tuple[str, ...] = ()):
    """CycleGAN's layout under ``root``: ``counts`` images per folder (trainA, testB, ...),
    random gray pixels, RGB in the folders named in ``rgb``."""
    rng = np.random.default_rng(0)
    for folder, n in counts.items():
        (root / folder).mkdir(parents=True)
        for i in range(n):
            shape = (size, size, 3) if folder in rgb else (size, size)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{i}.png")


def train_args(data, out, *extra: str) -> list[str]:
    return [
        "train",
        "cyclegan",
        "--preset",
        "tiny",
        "--dataset",
        f"cyclegan:{data}",
        "--out",
        str(out),
        *QUIET,
        *extra,
    ]


@pytest.fixture
def tiny_run(tmp_path):
    data = tmp_path / "shoes"
    write_domains(data, {"trainA": 6, "trainB": 5, "testA": 3, "testB": 3})
    run = tmp_path / "run"
    assert main(train_args(data, run, "--steps", "2")) == 0
    return run


def test_translate_and_sample_commands(tiny_run, tmp_path, capsys):
    photo = tmp_path / "in" / "photo.jpg"
    photo.parent.mkdir()
    Image.fromarray(np.full((13, 19, 3), 200, np.uint8)).save(photo)
    sketch = tmp_path / "in" / "sketch.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(sketch)
    out = tmp_path / "out"
    capsys.readouterr()
    argv = ["translate", str(tiny_run), str(photo), str(sketch), "--direction", "b2a"]
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["photo.png", "sketch.png"]
    assert Image.open(out / "photo.png").size == (19, 13)  # its own size, cropped back
    assert Image.open(out / "photo.png").mode == "L"  # the model's one channel
    assert "is RGB; converted to grayscale" in captured.err
    assert "padded to 20x16 for the network" in captured.err
    assert "wrote 2 translated images (b2a)" in captured.out
    grid = tmp_path / "grid.png"
    assert main(["sample", str(tiny_run), "--n", "12", "--out", str(grid)]) == 0
    # 6 rows of 2 columns of 16 px with 2 px borders, enlarged 4x
    assert Image.open(grid).size == ((2 * 18 + 2) * 4, (6 * 18 + 2) * 4)


def test_translate_mistakes_get_one_line_and_exit_2(tiny_run, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    cases = [
        (["--direction", "sideways"], "unknown direction 'sideways'; use a2b"),
        (["--out", str(tmp_path)], "would overwrite it"),
        ([str(tmp_path / "missing.png")], "does not exist"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["translate", str(tiny_run), str(image), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    noise_run = tmp_path / "noise"
    dcgan = ["train", "dcgan", "--preset", "tiny", "--dataset", "digits", "--steps", "1"]
    assert main([*dcgan, "--out", str(noise_run), *QUIET]) == 0
    capsys.readouterr()
    assert main(["translate", str(noise_run), str(image)]) == 2
    assert "does not translate images" in capsys.readouterr().err


def test_bad_folders_are_refused_in_one_line(tmp_path, capsys):
    missing = tmp_path / "missing"
    write_domains(missing, {"trainA": 4, "testA": 2, "testB": 2})
    assert main(train_args(missing, tmp_path / "r1", "--steps", "1")) == 2
    err = capsys.readouterr().err
    assert "has no trainB/ subfolder" in err and err.count("\n") == 1
    few = tmp_path / "few"
    write_domains(few, {"trainA": 6, "trainB": 3, "testA": 2, "testB": 2})
    assert main(train_args(few, tmp_path / "r2", "--steps", "1")) == 2  # batch 4 > 3 B images
    err = capsys.readouterr().err
    assert "train.batch_size=4 is larger than domain B" in err and "(3 images)" in err
    assert err.count("\n") == 1


def test_domains_of_different_channels_are_converted_with_a_note(tmp_path):
    mixed = tmp_path / "mixed"
    write_domains(mixed, {"trainA": 2, "trainB": 2}, rgb=("trainB",))
    with pytest.warns(UserWarning, match="domain A of .* is grayscale and domain B is not"):
        data = load_dataset(f"cyclegan:{mixed}", resolution=16)
    assert data.spec.channels == 3
    a = data.batch(torch.arange(2))["image_a"]
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 0], a[:, 2])  # gray repeated
