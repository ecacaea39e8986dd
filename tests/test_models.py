"""Tests every registered family gets for free, from its ``tiny`` preset: interface tests
(phases train only their group, seeded determinism, state round trip, exact resume, the declared
networks are what ``summary`` counts, the build order) and capability tests per task (output
shape and range, the output depends on z)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _families import build, example_batch, tiny_data
from torch import nn

import ganforge
from ganforge.config import build_config
from ganforge.data import DataSpec
from ganforge.engine.trainer import Trainer, zero_missing_gradients
from ganforge.errors import UserError
from ganforge.models import get_family
from ganforge.models.base import GANModel, Task, set_requires_grad
from ganforge.tools.summary import summary_text

FAMILIES = ganforge.list_models()
NOISE = [
    n for n in FAMILIES if get_family(n).task_for(build_config(n, "tiny").family).kind == "noise"
]


# ----- interface: every family -----------------------------------------------------------------
def test_every_family_has_the_required_presets():
    for name in FAMILIES:
        family = get_family(name)
        assert "tiny" in family.PRESETS, name
        assert family.DEFAULT_PRESET in family.PRESETS, name


@pytest.mark.parametrize("name", FAMILIES)
def test_the_task_is_declared_once(name):
    model, cfg = build(name)
    assert isinstance(model.task, Task)
    assert model.task == get_family(name).task_for(cfg.family)
    # the old booleans are gone: one answer, read from one place
    assert not hasattr(model, "conditional") and not hasattr(model, "style_based")
    assert model.spec.task == model.task.data


@pytest.mark.parametrize("name", FAMILIES)
def test_declared_networks_and_their_ema_copies_are_the_whole_model(name):
    model, _ = build(name)
    networks, averages = model.networks(), model.ema_networks()
    assert set(averages) <= set(networks)
    for source_name, average in averages.items():
        source = networks[source_name]
        assert average is not source
        assert not any(p.requires_grad for p in average.parameters())
        assert all(
            torch.equal(a, b)
            for a, b in zip(
                average.state_dict().values(), source.state_dict().values(), strict=True
            )
        )
    owners = set(networks) | {f"{n}_ema" for n in averages}
    # every parameter belongs to a declared network or its average
    assert {k.split(".")[0] for k, _ in model.named_parameters()} == owners
    first = next(iter(networks))  # the generator is the first network a family builds
    assert model.generator(ema=False) is networks[first]
    assert model.generator() is averages.get(first, networks[first])


@pytest.mark.parametrize("name", FAMILIES)
def test_summary_counts_the_declared_networks(name):
    model, _ = build(name)
    text = summary_text(model)
    for net_name, net in model.networks().items():
        count = sum(p.numel() for p in net.parameters())
        assert f"{net_name}: {type(net).__name__}" in text
        assert f"Total params: {count:,}" in text
    assert text.count("Total params:") == len(model.networks())


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
    batch = example_batch(model)
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
        zero_missing_gradients(params[phase.group])  # as the engine does
        assert sum(p.grad.abs().sum().item() for p in params[phase.group]) > 0, phase.name
        optimizers[phase.group].step()
        for group, ps in params.items():
            moved = any(not torch.equal(p, q) for p, q in zip(ps, before[group], strict=True))
            assert moved == (group == phase.group), (phase.name, group)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_network_receives_gradients_from_some_phase(name):
    model, _ = build(name)
    names = {p: n for n, p in model.named_parameters()}
    batch = example_batch(model)
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
    assert set(model.networks()) <= seen


def _outputs(model, ema: bool = True) -> torch.Tensor:
    """What a model makes from fixed inputs: seeded images (noise families) or the outputs of
    a fixed batch (image families, whose `eval_outputs` use the generator images come from)."""
    if model.task.kind == "noise":
        return model.generate(4, seed=0, ema=ema)
    return model.eval_outputs(example_batch(model, n=4), seed=0)["image"]


@pytest.mark.parametrize("name", FAMILIES)
def test_state_dict_round_trip_gives_identical_outputs(name):
    model, cfg = build(name, seed=1)
    model.train()
    for average in model.ema_networks().values():  # make the averages differ, as after training
        for p in average.parameters():
            p.data.add_(0.01)
    other, _ = build(name, seed=2)
    assert not torch.equal(_outputs(model), _outputs(other))
    other.load_state_dict(model.state_dict())
    assert torch.equal(_outputs(model), _outputs(other))
    if model.ema_networks():
        assert not torch.equal(_outputs(model), _outputs(model, ema=False))


@pytest.mark.parametrize("name", FAMILIES)
def test_resume_is_bitwise_identical_for_every_family(tmp_path, name):
    cfg = build_config(name, "tiny")
    data = tiny_data(name)
    settings = [
        ("train.steps", 4),
        ("train.checkpoint_every", 2),
        ("train.sample_every", 100),
        ("train.log_every", 2),
        ("train.progress", False),
        ("train.tensorboard", False),
    ]

    def run(folder, steps, resume=False):
        cfg = build_config(name, "tiny", overrides=[*settings, ("train.steps", steps)])
        (tmp_path / folder).mkdir(exist_ok=True)
        trainer = Trainer(cfg, tmp_path / folder, resume=resume, data=data)
        trainer.fit()
        return trainer.model.state_dict()

    straight = run("a", 4)
    run("b", 2)
    resumed = run("b", 4, resume=True)
    assert cfg.model == name
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), name


def test_the_base_class_builds_in_a_fixed_order():
    """Networks, then layer options (spectral norm), then initialisation, then EMA copies: the
    spectrally normalised D is initialised as DCGAN's N(0, 0.02), and G's average
    is a copy of the initialised G."""
    model, _ = build("dcgan", spectral_norm=True)
    convs = [m for m in model.D.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    original = torch.cat([m.parametrizations.weight.original.flatten() for m in convs])
    assert abs(original.std().item() - 0.02) < 0.004
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.G.parameters(), model.G_ema.parameters(), strict=True)
    )


# ----- capability: noise families -------------------------------------------------------------
@pytest.mark.parametrize("name", NOISE)
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


@pytest.mark.parametrize("name", NOISE)
def test_fresh_generator_output_depends_on_the_latent(name):
    """At initialisation, different latents give visibly different images (train mode)."""
    model, _ = build(name)
    model.train()  # as in training: BatchNorm uses batch statistics
    gen = torch.Generator().manual_seed(0)
    labels = torch.zeros(32, dtype=torch.long)  # one class: the spread must come from z
    with torch.no_grad():
        images = model.generator(ema=False)(*model.generator_inputs(32, labels, gen))
    spread = images.std(dim=0).mean().item()  # per-pixel spread across samples
    assert spread > 0.05, spread


@pytest.mark.parametrize("name", NOISE)
def test_preview_and_eval_outputs_of_noise_families(name):
    model, _ = build(name)
    images, nrow = model.preview(20, seed=3)
    assert torch.equal(images, model.generate(20, seed=3))
    assert nrow == (10 if model.task.labels else None)
    out = model.eval_outputs({"index": torch.arange(10, 16)}, seed=4)
    assert out["image"].shape == (6, *images.shape[1:])
    if model.task.labels:  # classes cycle by position in the evaluation set
        assert out["label"].tolist() == [0, 1, 2, 3, 4, 5]
    else:
        assert "label" not in out
    again = model.eval_outputs({"index": torch.arange(10, 16)}, seed=4)
    assert torch.equal(out["image"], again["image"])


# ----- capability: image families (a stand-in until the first one lands) -----------------------
class _Translator(GANModel):
    """The smallest image-to-image family: a 1x1 conv, for the base class's image paths."""

    Config = dataclasses.make_dataclass("Config", [("resolution", int, 8)])
    TASK = Task("paired")
    EMA = ()

    def build(self):
        return {"G": nn.Conv2d(self.spec.channels, self.spec.channels, 1)}

    def initialize(self):
        nn.init.ones_(self.G.weight)  # the identity on one channel
        nn.init.zeros_(self.G.bias)

    def translate(self, images, *, direction=None):
        return self.G(images).clamp(-1, 1)


def test_image_families_preview_input_output_and_target_rows():
    spec = DataSpec(
        channels=1,
        resolution=8,
        name="synthetic",
        task="paired",
        cond_channels=1,
        cond_resolution=8,
    )
    model = _Translator(_Translator.Config(), spec)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    y = torch.rand(3, 1, 8, 8) * 2 - 1
    images, nrow = model.preview(3, seed=0, batch={"image": y, "cond_image": x})
    assert nrow == 3 and images.shape == (9, 1, 8, 8)
    assert torch.allclose(images[:3], x) and torch.allclose(images[3:6], x)  # identity
    assert torch.equal(images[6:], y)
    out = model.eval_outputs({"image": y, "cond_image": x}, seed=0)
    assert set(out) == {"image", "input", "target"}
    assert torch.equal(out["target"], y)
    with pytest.raises(UserError, match="does not inpaint"):
        model.inpaint(x, torch.ones(3, 1, 8, 8))


# ----- family specifics ------------------------------------------------------------------------
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


def test_cgan_multiply_conditioning_keeps_the_scale_of_z():
    """G's input z * E(y) must vary as much as z itself.  With a DCGAN-style N(0, 0.02)
    embedding it shrank 50x, and cgan collapsed to one image on Fashion-MNIST within 2,000 steps
    (D loss -> 0.02)."""
    model = ganforge.create_model("cgan", "book28")
    z = torch.randn(4096, model.cfg.z_dim, generator=torch.Generator().manual_seed(0))
    y = torch.arange(4096) % 10
    g_input = z * model.G.embed(y)
    assert 0.5 < g_input.std().item() < 2.0
