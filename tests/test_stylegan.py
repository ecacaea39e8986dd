"""StyleGAN (v1): AdaIN, noise inputs, truncation with a layer cutoff, style mixing, the blur,
the paper's settings, and an exact resume through the engine."""

from __future__ import annotations

import pytest
import torch
from conftest import make_dataset
from safetensors.torch import load_file

from ganforge.api import resolve_run
from ganforge.config import build_config
from ganforge.data import DataSpec
from ganforge.engine.trainer import Trainer
from ganforge.errors import UserError
from ganforge.models import get_family
from ganforge.models.stylegan2 import Discriminator
from ganforge.nn.adain import AdaIN, adaptive_instance_norm, instance_norm
from ganforge.nn.upfirdn import setup_filter, upfirdn2d


def tiny(preset: str = "tiny", **overrides):
    cfg = build_config("stylegan", preset, overrides=[(k, str(v)) for k, v in overrides.items()])
    spec = DataSpec(channels=1, resolution=cfg.family.resolution, name="t")
    torch.manual_seed(0)
    return get_family("stylegan")(cfg.family, spec)


def noisy(model):
    """Give every layer's noise a visible strength (it starts at zero)."""
    with torch.no_grad():
        for net in (model.G, model.G_ema):
            for name, p in net.named_parameters():
                if name.endswith("noise_strength"):
                    p.fill_(0.5)
    return model


# ----- AdaIN ----------------------------------------------------------------------------------
def test_adain_gives_each_channel_the_style_mean_and_std():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8) * 5 + 7
    scale = torch.tensor([[2.0, 0.5, 1.0], [3.0, 1.0, 0.25]])
    bias = torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, 4.0]])
    y = adaptive_instance_norm(x, scale, bias)
    assert torch.allclose(y.mean(dim=(2, 3)), bias, atol=1e-5)
    assert torch.allclose(y.std(dim=(2, 3), unbiased=False), scale, atol=1e-4)
    z = instance_norm(x)
    assert torch.allclose(z.mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-5)


def test_adain_style_is_one_plus_an_affine_map_of_w():
    layer = AdaIN(channels=2, w_dim=4)
    with torch.no_grad():  # no dependence on w: the style is the affine map's bias
        layer.affine.weight.zero_()
        layer.affine.bias.copy_(torch.tensor([1.0, -0.5, 3.0, -1.0]))  # y_s = (1, -0.5), y_b
    torch.manual_seed(0)
    y = layer(torch.randn(5, 2, 6, 6), torch.randn(5, 4))
    # channel 0: scale 1 + 1 = 2, mean 3; channel 1: scale 1 - 0.5 = 0.5, mean -1
    assert torch.allclose(y.std(dim=(2, 3), unbiased=False), torch.tensor([2.0, 0.5]).expand(5, 2))
    assert torch.allclose(y.mean(dim=(2, 3)), torch.tensor([3.0, -1.0]).expand(5, 2), atol=1e-5)


# ----- the synthesis network ------------------------------------------------------------------
def test_blur_keeps_a_constant_image_in_the_interior():
    f = setup_filter((1, 2, 1))
    assert torch.allclose(f, torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    y = upfirdn2d(torch.full((1, 1, 6, 6), 8.0), f, padding=1)
    assert y.shape == (1, 1, 6, 6)
    assert torch.allclose(y[..., 1:-1, 1:-1], torch.full((1, 1, 4, 4), 8.0))
    # the zero padding takes the outer taps' weight: an edge keeps 12/16, a corner 9/16
    assert y[0, 0, 0, 3].item() == pytest.approx(8 * 12 / 16)
    assert y[0, 0, 0, 0].item() == pytest.approx(8 * 9 / 16)
    model = tiny()
    assert torch.equal(model.G.synthesis.b8.blur_filter, f)


def test_generator_shapes_and_the_v1_layout():
    model = tiny()
    g = model.G
    assert (g.num_ws, g.z_dim, g.w_dim, g.c_dim) == (6, 16, 16, 0)  # 2 layers x 4, 8, 16
    images = g(torch.randn(4, 16))
    assert images.shape == (4, 1, 16, 16) and torch.isfinite(images).all()
    ws = g.map(torch.randn(3, 16))
    assert ws.shape == (3, 6, 16)
    assert g.synthesis(ws, noise_mode="none").shape == (3, 1, 16, 16)
    out = model.generate(4, seed=0)
    assert out.min() >= -1 and out.max() <= 1
    b4 = g.synthesis.b4
    assert torch.equal(b4.const, torch.ones(16, 4, 4))  # the reference's constant starts at 1
    assert torch.equal(b4.style0.noise_strength, torch.zeros(16))  # per channel, off at first
    assert b4.style0.noise_const.shape == (4, 4)  # one map per layer, shared by the channels
    assert isinstance(model.D, Discriminator) and model.D.b16.architecture == "orig"
    assert model.D(images.detach()).shape == (4,)
    with pytest.raises(UserError, match="ws has shape"):
        g.synthesis(ws[:, :5])
    with pytest.raises(UserError, match="unconditional"):
        g.map(torch.randn(3, 16), torch.zeros(3, dtype=torch.long))


def test_noise_modes():
    model = tiny()
    g = model.G.eval()
    z = torch.randn(2, 16)
    # strengths start at zero: all three modes give the same images
    assert torch.equal(g(z, noise_mode="const"), g(z, noise_mode="none"))
    noisy(model)
    const, none = g(z, noise_mode="const"), g(z, noise_mode="none")
    assert torch.equal(const, g(z, noise_mode="const"))
    assert not torch.equal(const, none)
    torch.manual_seed(1)
    a = g(z, noise_mode="random")
    torch.manual_seed(2)
    b = g(z, noise_mode="random")
    assert not torch.equal(a, b) and not torch.equal(a, const)
    with pytest.raises(UserError, match="unknown noise mode"):
        g(z, noise_mode="fixed")


# ----- mapping, truncation, mixing ------------------------------------------------------------
def test_mapping_is_the_papers():
    model = tiny("paper")
    m = model.G.mapping
    assert m.num_layers == 8 and m.w_avg_beta == 0.995 and m.w_avg.shape == (512,)
    assert m.fc0.weight_gain == pytest.approx(0.01 / 512**0.5)  # lr multiplier 0.01
    z = torch.randn(4, 512)
    m.eval()
    assert torch.allclose(m(z * 10, None), m(z, None), atol=1e-5)  # z is normalized first


def test_truncation_moves_only_the_first_cutoff_ws_towards_w_avg():
    model = tiny()
    g = model.G.eval()
    g.mapping.w_avg.copy_(torch.randn(16))
    z = torch.randn(5, 16)
    ws = g.map(z)
    t = g.map(z, truncation=0.5, truncation_cutoff=4)
    assert torch.allclose(t[:, :4], g.mapping.w_avg + 0.5 * (ws[:, :4] - g.mapping.w_avg))
    assert torch.equal(t[:, 4:], ws[:, 4:])
    # psi = 0 sends every z to w_avg on those layers
    zero = g.map(z, truncation=0.0, truncation_cutoff=4)
    assert torch.allclose(zero[:, :4], g.mapping.w_avg.expand(5, 4, 16))
    assert torch.equal(zero[:, 4:], ws[:, 4:])
    # no cutoff: every layer
    assert torch.allclose(g.map(z, truncation=0.0), g.mapping.w_avg.expand(5, 6, 16))


def test_generate_uses_the_configs_cutoff_and_is_repeatable():
    model = noisy(tiny())
    assert model.cfg.truncation_cutoff == 4
    g = model.G_ema
    g.mapping.w_avg.copy_(torch.randn(16))
    z = torch.randn(3, 16)
    a = model.generate(z=z, truncation=0.7)
    assert torch.equal(a, model.generate(z=z, truncation=0.7))  # const noise by default
    ws = g.map(z, truncation=0.7, truncation_cutoff=4)
    expected = g.synthesis(ws, noise_mode="const").clamp(-1, 1)
    assert torch.allclose(a, expected)
    assert not torch.equal(a, model.generate(z=z, truncation=0.7, noise_mode="random"))
    with pytest.raises(UserError, match="truncation"):
        model.generate(z=z, truncation=2.0)


def test_a_null_cutoff_truncates_every_layer():
    model = tiny(truncation_cutoff="null")
    g = model.G_ema
    g.mapping.w_avg.copy_(torch.randn(16))
    images = model.generate(2, seed=0, truncation=0.0)
    mean_image = g.synthesis(g.mapping.w_avg.expand(2, 6, 16), noise_mode="const")
    assert torch.allclose(images, mean_image.clamp(-1, 1))


def test_style_mixing_only_in_training_and_as_a_suffix():
    model = tiny(style_mixing=1.0)
    g = model.G
    z = torch.randn(4, 16)
    g.eval()
    plain = g.map(z)
    g.train()
    cutoffs = set()
    for seed in range(20):
        torch.manual_seed(seed)
        differs = (g.map(z) - plain).abs().amax(dim=(0, 2)) > 1e-6
        # the layers from a random cutoff on (never the first) come from another z
        assert differs.any() and not differs[0]
        assert torch.equal(differs, differs.cummax(0).values)
        cutoffs.add(int(differs.int().argmax()))
    assert len(cutoffs) > 2
    g.eval()
    assert torch.equal(g.map(z), plain)


def test_style_mixing_probability_and_w_avg_update():
    model = tiny()
    g = model.G
    assert g.style_mixing == 0.9
    z = torch.randn(8, 16)
    g.eval()
    plain = g.map(z)
    w_avg = g.mapping.w_avg.clone()
    g.train()
    torch.manual_seed(0)
    first = g.map(z)
    # w_avg follows the batch's mean w (of the first z only) with decay 0.995
    assert torch.allclose(g.mapping.w_avg, plain[:, 0].mean(0).lerp(w_avg, 0.995), atol=1e-6)
    mixed = [not torch.allclose(first, plain, atol=1e-6)]
    mixed += [not torch.allclose(g.map(z), plain, atol=1e-6) for _ in range(299)]
    assert 0.85 < sum(mixed) / 300 < 0.95


# ----- training settings ----------------------------------------------------------------------
def test_the_papers_objective_and_optimizer():
    model = tiny("paper")
    c = model.cfg
    assert (c.loss, c.reg.r1, c.reg.every, tuple(c.betas)) == ("logistic", 10.0, 1, (0.0, 0.99))
    assert c.style_mixing == 0.9 and c.truncation_cutoff == 8
    assert [p.name for p in model.phases()] == ["G", "D"]  # R1 in every D step, not lazy
    groups = model.param_groups()
    assert groups["G"].lr == groups["D"].lr == 0.001
    assert model.G.synthesis.b32.conv0.weight.shape == (512, 512, 3, 3)  # 16384 / 32
    batch = 32
    assert model.ema_beta(10**9, batch) ** (10_000 / batch) == pytest.approx(0.5)


def test_d_step_adds_r1_to_the_unhalved_logistic_loss():
    model = tiny()
    model.train()
    batch = {"image": torch.rand(8, 1, 16, 16) * 2 - 1}
    losses = model.d_step(batch, {})
    total = losses["real"] + losses["fake"] + losses["r1"]
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-6)


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("d_architecture", "big", "d_architecture"),
        ("truncation_cutoff", 0, "truncation_cutoff"),
        ("resolution", 4, "resolution"),
        ("style_mixing", 1.5, "style_mixing"),
    ],
)
def test_bad_settings_are_refused(key, value, match):
    with pytest.raises(UserError, match=match):
        build_config("stylegan", "tiny", overrides=[(key, str(value))])


@pytest.mark.parametrize("family", ["stylegan", "stylegan2"])
@pytest.mark.parametrize("key,value", [("spectral_norm", "true"), ("reg.ortho", "1e-4")])
def test_options_for_plain_layers_are_refused_not_ignored(family, key, value):
    with pytest.raises(UserError, match=f"{family}'s equalized-learning-rate layers"):
        build_config(family, "tiny", overrides=[(key, value)])


def test_resume_is_bitwise_identical(tmp_path):
    """Style mixing and random noise draw from the global RNG and w_avg is a buffer: the
    checkpoint must carry all of them for a split run to equal a straight one."""

    def run(out, steps, resume=False):
        overrides = [
            ("train.steps", steps),
            ("train.checkpoint_every", 2),
            ("train.sample_every", 2),
            ("train.progress", False),
            ("train.tensorboard", False),
        ]
        cfg, run_dir = resolve_run(
            "stylegan", preset="tiny", overrides=overrides, out=out, resume=resume
        )
        trainer = Trainer(cfg, run_dir, resume=resume, data=make_dataset(resolution=16))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        trainer.fit()

    run(tmp_path / "straight", 4)
    run(tmp_path / "split", 2)
    run(tmp_path / "split", 4, resume=True)
    a = load_file(str(tmp_path / "straight/checkpoints/step-000004/model.safetensors"))
    b = load_file(str(tmp_path / "split/checkpoints/step-000004/model.safetensors"))
    assert a.keys() == b.keys() and any("w_avg" in k for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
