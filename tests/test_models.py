"""Tests every registered family gets for free, from its ``tiny`` preset."""

from __future__ import annotations

import pytest
import torch

import ganforge
from ganforge.config import build_config
from ganforge.data import DataSpec
from ganforge.errors import UserError
from ganforge.models import get_family
from ganforge.models.base import set_requires_grad
from ganforge.tools.summary import summary_text

FAMILIES = ganforge.list_models()


def build(name: str, seed: int = 0):
    cfg = build_config(name, "tiny")
    spec = DataSpec(
        channels=1,
        resolution=cfg.family.resolution,
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        name="synthetic",
    )
    torch.manual_seed(seed)
    return get_family(name)(cfg.family, spec), cfg


def real_batch(model, n: int = 8) -> dict[str, torch.Tensor]:
    r = model.resolution
    gen = torch.Generator().manual_seed(1)
    return {"image": torch.rand(n, 1, r, r, generator=gen) * 2 - 1, "label": torch.arange(n) % 10}


def test_every_family_has_the_required_presets():
    for name in FAMILIES:
        family = get_family(name)
        assert "tiny" in family.PRESETS, name
        assert family.DEFAULT_PRESET in family.PRESETS, name


@pytest.mark.parametrize("name", FAMILIES)
def test_generate_shape_range_and_seeded_determinism(name):
    model, cfg = build(name)
    r = cfg.family.resolution
    images = model.generate(6, seed=3)
    assert images.shape == (6, 1, r, r)
    assert images.dtype == torch.float32
    assert torch.isfinite(images).all()
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, model.generate(6, seed=3))
    assert not torch.equal(images, model.generate(6, seed=4))
    # a seeded call leaves the global RNG alone
    state = torch.get_rng_state()
    model.generate(2, seed=5)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("name", FAMILIES)
def test_same_seed_builds_the_same_weights(name):
    a, _ = build(name, seed=7)
    b, _ = build(name, seed=7)
    c, _ = build(name, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


@pytest.mark.parametrize("name", FAMILIES)
def test_every_phase_gives_finite_losses_and_trains_only_its_group(name):
    model, _ = build(name)
    model.train()
    groups = model.param_groups()
    optimizers = {k: spec.build() for k, spec in groups.items()}
    params = {k: list(optimizers[k].param_groups[0]["params"]) for k in groups}
    ctx: dict = {}
    batch = real_batch(model)
    for phase in model.phases():
        set_requires_grad(model, False)
        for p in params[phase.group]:
            p.requires_grad_(True)
        before = {k: [p.detach().clone() for p in ps] for k, ps in params.items()}
        optimizers[phase.group].zero_grad(set_to_none=True)
        losses = phase.step(batch, ctx)
        assert "loss" in losses
        for key, value in losses.items():
            assert value.ndim == 0 and torch.isfinite(value), (phase.name, key)
        losses["loss"].backward()
        grads = [p.grad for p in params[phase.group]]
        assert all(g is not None for g in grads), phase.name
        assert sum(g.abs().sum().item() for g in grads) > 0, phase.name
        optimizers[phase.group].step()
        for group, ps in params.items():
            moved = any(not torch.equal(p, q) for p, q in zip(ps, before[group], strict=True))
            assert moved == (group == phase.group), (phase.name, group)


@pytest.mark.parametrize("name", FAMILIES)
def test_G_and_D_both_receive_gradients_from_the_adversarial_loss(name):
    model, _ = build(name)
    names = {p: n for n, p in model.named_parameters()}
    batch = real_batch(model)
    seen = set()
    for phase in model.phases():
        model.zero_grad(set_to_none=True)
        set_requires_grad(model, True)
        phase.step(batch, {})["loss"].backward()
        seen |= {
            names[p].split(".")[0]
            for p in model.parameters()
            if p.grad is not None and p.grad.abs().sum() > 0
        }
    assert {"G", "D"} <= seen


@pytest.mark.parametrize("name", FAMILIES)
def test_state_dict_round_trip_gives_identical_images(name):
    model, cfg = build(name, seed=1)
    model.train()
    for p in model.G_ema.parameters():  # make G_ema differ from G, as after training
        p.data.add_(0.01)
    other, _ = build(name, seed=2)
    other.load_state_dict(model.state_dict())
    assert torch.equal(model.generate(4, seed=0), other.generate(4, seed=0))
    assert not torch.equal(model.generate(4, seed=0), model.generate(4, seed=0, ema=False))


@pytest.mark.parametrize("name", FAMILIES)
def test_summary_counts_every_parameter(name):
    model, _ = build(name)
    text = summary_text(model)
    g = sum(p.numel() for p in model.G.parameters())
    d = sum(p.numel() for p in model.D.parameters())
    assert f"Total params: {g:,}" in text
    assert f"Total params: {d:,}" in text


def test_conditional_generation_by_class():
    model, _ = build("cgan")
    a = model.generate(4, labels=3, seed=0)
    b = model.generate(4, labels=[3, 3, 3, 3], seed=0)
    c = model.generate(4, labels=5, seed=0)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    with pytest.raises(UserError, match="class 10 is out of range"):
        model.generate(2, labels=10)


def test_unconditional_family_refuses_labels():
    model, _ = build("dcgan")
    with pytest.raises(UserError, match="unconditional"):
        model.generate(2, labels=1)


def test_conditional_family_refuses_unlabeled_data():
    cfg = build_config("cgan", "tiny")
    spec = DataSpec(channels=1, resolution=28, num_classes=0, name="folder")
    with pytest.raises(UserError, match="no labels"):
        get_family("cgan")(cfg.family, spec)


@pytest.mark.parametrize("preset,res", [("book28", 28), ("classic32", 32), ("radford", 64)])
def test_dcgan_presets_build_at_their_resolution(preset, res):
    model = ganforge.create_model("dcgan", preset)
    assert model.generate(2, seed=0).shape == (2, 1, res, res)
    assert model.D(torch.zeros(2, 1, res, res)).shape == (2,)


def test_classic32_matches_the_reference_layout():
    """Parameter shapes of the single-file reference DCGAN (G: Linear -> 128x8x8, two
    upsample-conv blocks 128 and 64; D: 16/32/64/128 stride-2 blocks, Linear 512 -> 1)."""
    model = ganforge.create_model("dcgan", "classic32")
    g = [tuple(p.shape) for p in model.G.parameters()]
    d = [tuple(p.shape) for p in model.D.parameters()]
    assert g == [
        (8192, 100),
        (8192,),
        (128,),
        (128,),
        (128, 128, 3, 3),
        (128,),
        (128,),
        (128,),
        (64, 128, 3, 3),
        (64,),
        (64,),
        (64,),
        (1, 64, 3, 3),
        (1,),
    ]
    assert d == [
        (16, 1, 3, 3),
        (16,),
        (32, 16, 3, 3),
        (32,),
        (32,),
        (32,),
        (64, 32, 3, 3),
        (64,),
        (64,),
        (64,),
        (128, 64, 3, 3),
        (128,),
        (128,),
        (128,),
        (1, 512),
        (1,),
    ]
    assert sum(p.numel() for p in model.G.parameters()) == 1_049_985
    assert sum(p.numel() for p in model.D.parameters()) == 98_113


@pytest.mark.parametrize("name", FAMILIES)
def test_fresh_generator_output_depends_on_the_latent(name):
    """At initialisation, different latents give visibly different images (train mode)."""
    model, _ = build(name)
    model.train()  # as in training: BatchNorm uses batch statistics
    gen = torch.Generator().manual_seed(0)
    labels = torch.zeros(32, dtype=torch.long)  # one class: the spread must come from z
    with torch.no_grad():
        images = model.G(*model.generator_inputs(32, labels, gen))
    spread = images.std(dim=0).mean().item()  # per-pixel spread across samples
    assert spread > 0.05, spread


def test_cgan_multiply_conditioning_keeps_the_scale_of_z():
    """G's input z * E(y) must vary as much as z itself.  With a DCGAN-style N(0, 0.02)
    embedding it shrank 50x, and cgan collapsed to one image on Fashion-MNIST within 2,000 steps
    (D loss -> 0.02)."""
    model = ganforge.create_model("cgan", "book28")
    z = torch.randn(4096, model.cfg.z_dim, generator=torch.Generator().manual_seed(0))
    y = torch.arange(4096) % 10
    g_input = z * model.G.embed(y)
    assert 0.5 < g_input.std().item() < 2.0
