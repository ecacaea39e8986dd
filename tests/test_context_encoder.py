"""context-encoder: the reference's networks and their sizes, the L2 weight matrix, the hole's
mean-pixel fill (and the spec field that carries it), inpaint keeping known pixels exactly at
any size, the random masks, the one-line mask errors, the L2-only ablation, and a short
training run loaded back."""

from __future__ import annotations

import pytest
import torch
from _families import build, example_batch, tiny_spec
from conftest import make_dataset

import ganforge
from ganforge.data import DataSpec, TaskOptions, batch_key, load_dataset
from ganforge.data.tasks import MaskedDataset, make_masks, mean_pixel
from ganforge.errors import UserError
from ganforge.features.domain import _spec_key
from ganforge.models.context_encoder import ContextGenerator, RegionDiscriminator, l2_weights


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def masked_spec(channels: int = 3, resolution: int = 128, mean=None) -> DataSpec:
    return DataSpec(
        channels=channels,
        resolution=resolution,
        name="synthetic",
        task="masked",
        cond_channels=channels,
        cond_resolution=resolution,
        mean_pixel=mean,
    )


def centre_masks(n: int, r: int) -> torch.Tensor:
    return make_masks("center", torch.arange(n), r, None)


# ----- the networks -------------------------------------------------------------------------
def test_parameter_counts_match_a_hand_count_of_the_reference():
    """train_random.lua's netG at 128 px, nBottleneck 4000, nef = ngf = 64, RGB: 4x4 kernels,
    encoder 3-64-64-128-256-512 then 512 -> 4000, decoder 4000 -> 512-256-128-64-64-3, so the
    convolutions hold 16 * (3*64 + 64*64 + 64*128 + 128*256 + 256*512 + 512*4000) = 35,589,120
    weights each way, and the BatchNorms 2 * (64+128+256+512+4000 + 512+256+128+64+64) =
    11,968; the reference's convolution biases (zeroed before every step) are not parameters
    here.  train.lua's netD on a 64 px region: 16 * (3*64 + 64*128 + 128*256 + 256*512 + 512)
    + 2 * (128+256+512) = 2,765,568."""
    with torch.device("meta"):
        model = ganforge.create_model("context-encoder", "pathak", masked_spec())
    assert count(model.G) == 2 * 35_589_120 + 11_968 == 71_190_208
    assert count(model.D) == 2_765_568
    assert set(model.networks()) == {"G", "D"}
    stride2 = [
        m for m in model.D.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)
    ]
    assert [m.out_channels for m in stride2] == [64, 128, 256, 512]


def test_shapes_at_the_trained_size_and_fully_convolutional_beyond():
    g = ContextGenerator(1, 32, 8, 8, 16)
    with torch.no_grad():
        assert g(torch.zeros(2, 1, 32, 32)).shape == (2, 1, 32, 32)  # a 1x1 code
        assert g(torch.zeros(2, 1, 40, 48)).shape == (2, 1, 40, 48)  # multiples of 8: 2x3 code
        assert g.model[:9](torch.zeros(2, 1, 32, 32)).shape == (2, 16, 1, 1)  # the code
        assert g.model[:9](torch.zeros(2, 1, 40, 48)).shape == (2, 16, 2, 3)
    d = RegionDiscriminator(3, 64, 4)
    with torch.no_grad():
        assert d(torch.zeros(2, 3, 72, 72)).shape == (2,)  # the pathak region: one score
        assert d.model[:-1](torch.zeros(2, 3, 72, 72)).shape[-1] == 4


# ----- the loss -----------------------------------------------------------------------------
def test_the_l2_weights_put_ten_times_on_the_overlap_ring():
    """pathak: the 64 px centre hole of a 128 px image weighs 0.999 a pixel, the 4 px ring
    around it (72^2 - 64^2 = 1,088 px) 9.99, everything else 0."""
    w = l2_weights(centre_masks(1, 128), 4, 0.999, 10.0)[0, 0]
    assert torch.allclose(w[32:96, 32:96], torch.tensor(0.999))
    assert torch.allclose(w[28:32, 28:100], torch.tensor(9.99))  # the ring's top band
    assert torch.allclose(w[28:100, 96:100], torch.tensor(9.99))  # its right band
    assert w[:28].abs().sum() == 0 and w[:, 100:].abs().sum() == 0
    assert (w > 5).sum() == 72**2 - 64**2 == 1_088
    assert w.sum().item() == pytest.approx(0.999 * 64**2 + 9.99 * 1_088)
    assert torch.equal(l2_weights(centre_masks(1, 16), 0, 1.0, 10.0), centre_masks(1, 16))


def test_g_loss_is_the_weighted_l2_plus_a_thousandth_of_the_adversarial():
    model, _ = build("context-encoder")
    batch = example_batch(model)
    torch.manual_seed(0)
    losses = model.g_step(batch, {})
    assert losses["loss"].item() == pytest.approx(
        losses["l2"].item() + 0.001 * losses["adv"].item(), rel=1e-6
    )
    # the l2 term by hand: weights over the 10 x 10 region of the tiny (16 px, 8 px hole) image
    torch.manual_seed(0)
    fake = model.G(model.context(batch["cond_image"], batch["mask"]))
    w = l2_weights(batch["mask"], 1, 0.999, 10.0)
    expected = (w * (fake - batch["image"]) ** 2).sum() / (len(fake) * 10 * 10)
    assert losses["l2"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert model.param_groups()["G"].lr == 10 * model.param_groups()["D"].lr == 2e-3


def test_adversarial_weight_zero_is_the_l2_only_ablation():
    model, _ = build("context-encoder", adv_weight=0)
    assert set(model.networks()) == {"G"} and set(model.param_groups()) == {"G"}
    assert [p.name for p in model.phases()] == ["G"]
    losses = model.g_step(example_batch(model), {})
    assert set(losses) == {"loss", "l2"} and torch.equal(losses["loss"], losses["l2"])
    full, _ = build("context-encoder")
    assert count(model.G) == count(full.G)  # the same generator
    assert [p.name for p in full.phases()] == ["G", "D"]


def test_a_centre_d_refuses_holes_outside_the_centre():
    model, _ = build("context-encoder")
    batch = example_batch(model)
    batch["mask"] = torch.zeros_like(batch["mask"])
    batch["mask"][..., :3, :3] = 1
    with pytest.raises(UserError, match="use --set adv_input=image"):
        model.g_step(batch, {})
    whole, _ = build("context-encoder", adv_input="image")
    losses = whole.g_step(batch, {})
    assert torch.isfinite(losses["loss"])
    assert whole.d_step(batch, {})["loss"] > 0


# ----- the mean pixel ---------------------------------------------------------------------
def test_the_hole_is_filled_with_the_datas_mean_pixel():
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    images[:, 0], images[:, 1], images[:, 2] = 255, 51, 0
    images[1, 2] = 102  # channel 2: mean 51 over both images
    assert mean_pixel(images) == (1.0, -0.6, -0.6)
    data = MaskedDataset(make_dataset(n=4, resolution=16, channels=1), "center", "masked:x")
    expected = data.images.double().mean().item() * 2 / 255 - 1
    assert data.spec.mean_pixel == (pytest.approx(expected, abs=1e-6),)
    model = ganforge.create_model("context-encoder", "tiny", masked_spec(3, 16, (0.25, -0.5, 0.75)))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    masks = centre_masks(2, 16)
    context = model.context(x, masks)
    assert torch.equal(context[..., 4:12, 4:12][:, 1], torch.full((2, 8, 8), -0.5))
    assert torch.equal(context[..., :4, :], x[..., :4, :])
    bare = ganforge.create_model("context-encoder", "tiny", masked_spec(3, 16))
    assert bare.context(x, masks)[..., 4:12, 4:12].abs().sum() == 0  # no mean: 0


def test_the_mean_pixel_travels_with_the_spec_and_old_specs_still_load():
    spec = masked_spec(3, 16, (0.1, 0.2, 0.3))
    assert DataSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in masked_spec(1, 16).to_dict().items() if k != "mean_pixel"}
    assert DataSpec.from_dict(old).mean_pixel is None
    plain = DataSpec(1, 28, name="fmnist")
    assert set(_spec_key(plain)) == {"channels", "resolution", "num_classes", "class_names", "name"}
    with pytest.raises(ValueError, match="mean_pixel must be 3 values"):
        masked_spec(3, 16, (0.0,))


# ----- inpaint ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(16, 16), (20, 24), (8, 12)])
def test_inpaint_keeps_known_pixels_exactly_and_fills_only_the_hole(size):
    model, _ = build("context-encoder")
    h, w = size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, h, w, generator=gen) * 2 - 1
    masks = torch.zeros(3, 1, h, w)
    masks[:, :, h // 4 : h // 2, w // 4 : 3 * w // 4] = 1
    out = model.inpaint(x, masks)
    assert out.shape == x.shape and out.abs().max() <= 1
    hole = masks.expand_as(x).bool()
    assert torch.equal(out[~hole], x[~hole])
    assert (out[hole] != x[hole]).float().mean() > 0.9
    # what was under the hole is never seen
    assert torch.equal(model.inpaint(torch.where(hole, -x, x), masks), out)
    # tiny G: two halvings, so multiples of 4, and at least its 16 px
    assert (
        model.valid_size(h, w) == {(16, 16): (16, 16), (20, 24): (20, 24), (8, 12): (16, 16)}[size]
    )


def test_inpaint_refuses_bad_masks_in_one_line():
    model, _ = build("context-encoder")
    x = torch.zeros(2, 1, 16, 16)
    masks = centre_masks(2, 16)
    cases = [
        (x, masks[..., :8], r"masks have shape \[2, 1, 16, 8\] for images \[2, 1, 16, 16\]"),
        (x, masks[:1], "one mask per image"),
        (x, masks.expand(2, 3, 16, 16), r"\[2, 1, 16, 16\], 1 = hole"),
        (x, masks * 0.5, "only 0 .known. and 1 .hole."),
        (x, torch.cat([masks[:1], torch.zeros(1, 1, 16, 16)]), "mask 1 has no hole"),
        (x, torch.ones(2, 1, 16, 16), "mask 0 covers the whole image"),
        (torch.zeros(2, 3, 16, 16), masks, r"give \[N, 1, H, W\]"),
        (x.clone().fill_(float("nan")), masks, "NaN"),
    ]
    for images, bad, message in cases:
        with pytest.raises(UserError, match=message) as err:
            model.inpaint(images, bad)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="use inpaint"):
        model.generate(2)


# ----- masks --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["center", "boxes", "strokes", "random"])
def test_every_mask_kind_is_a_pure_function_of_key_and_item_and_never_empty(kind):
    index = torch.arange(6)
    first = make_masks(kind, index, 32, batch_key(0, 1))
    assert torch.equal(first, make_masks(kind, index, 32, batch_key(0, 1)))
    assert torch.equal(first[4], make_masks(kind, torch.tensor([4]), 32, batch_key(0, 1))[0])
    covered = first.mean((1, 2, 3))
    assert (covered > 0).all() and (covered < 1).all()
    if kind != "center":
        assert not torch.equal(first, make_masks(kind, index, 32, batch_key(0, 2)))


def test_random_regions_cover_a_fifth_to_a_third_like_the_reference():
    masks = make_masks("random", torch.arange(32), 64, batch_key(3, 0))
    covered = masks.mean((1, 2, 3))
    assert (covered > 0.2).all() and (covered < 0.3).all()
    data = load_dataset("masked:digits", resolution=32, options=TaskOptions(mask="random"))
    batch = data.batch(torch.arange(4), key=batch_key(0, 0))
    assert torch.equal(
        batch["cond_image"][batch["mask"].bool()], torch.zeros(int(batch["mask"].sum()))
    )


# ----- training -----------------------------------------------------------------------------
def test_a_short_run_trains_saves_and_inpaints(tmp_path):
    run = ganforge.train(
        "context-encoder",
        preset="tiny",
        dataset="masked:digits",
        steps=3,
        out=tmp_path / "run",
        overrides={"train.progress": False, "train.tensorboard": False, "train.log_every": 1},
    )
    g = ganforge.load(run)
    spec = g.spec
    assert spec.task == "masked" and spec.mean_pixel is not None
    assert torch.equal(g.model.fill.flatten(), torch.tensor(spec.mean_pixel))
    data = load_dataset("masked:digits", split="test", resolution=16)
    batch = data.batch(torch.arange(4))
    out = g.model.inpaint(batch["cond_image"], batch["mask"])
    known = ~batch["mask"].bool()
    assert torch.equal(out[known], batch["cond_image"][known])
    assert tiny_spec("context-encoder").task == "masked"


def test_a_batch_of_one_is_refused_in_one_line():
    model, _ = build("context-encoder")
    batch = {k: v[:1] for k, v in example_batch(model).items()}
    with pytest.raises(UserError, match="2 or more images per batch"):
        model.g_step(batch, {})
