"""StyleGAN2: the layers' equations, the networks against outputs of the reference code, the
import command, and the training pieces (lazy regularization, path length, EMA half-life)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import ganforge
from ganforge.cli import main
from ganforge.config import build_config
from ganforge.data import DataSpec
from ganforge.errors import UserError
from ganforge.models import get_family
from ganforge.nn.style import (
    FullyConnectedLayer,
    MappingNetwork,
    MinibatchStdLayer,
    SynthesisLayer,
    bias_act,
    demodulation_coefficients,
    modulated_conv2d,
)
from ganforge.nn.upfirdn import conv2d_resample, downsample2d, setup_filter, upfirdn2d, upsample2d

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2"
CASES = ["uncond_rgb_skip", "cond_gray_clamp", "uncond_orig", "uncond_resnet"]


def tiny(spec: DataSpec | None = None, **overrides):
    spec = spec or DataSpec(channels=1, resolution=16, num_classes=10, name="t")
    cfg = build_config("stylegan2", "tiny", overrides=[(k, str(v)) for k, v in overrides.items()])
    torch.manual_seed(0)
    return get_family("stylegan2")(cfg.family, spec)


# ----- resampling -----------------------------------------------------------------------------
def test_filter_is_the_normalised_outer_product():
    f = setup_filter((1, 3, 3, 1))
    expected = torch.tensor([1.0, 3, 3, 1])
    assert torch.allclose(f, torch.outer(expected, expected) / 64)


def test_upsample_keeps_constants_and_doubles_size():
    f = setup_filter()
    x = torch.full((1, 2, 5, 5), 3.0)
    y = upsample2d(x, f)
    assert y.shape == (1, 2, 10, 10)
    # away from the zero-padded border a constant stays that constant (gain up^2)
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.full_like(y[..., 2:-2, 2:-2], 3.0))


def test_downsample_of_an_upsampled_constant_and_a_hand_computed_value():
    f = setup_filter()
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 1] = 64.0
    y = downsample2d(x, f)
    # padding 1 each side, then output (i, j) sums f over the 4x4 window at (2i, 2j) of the
    # padded image; the impulse at padded (2, 2) meets tap (2, 2) of window (0, 0): 3*3/64
    assert y.shape == (1, 1, 2, 2)
    assert y[0, 0, 0, 0].item() == pytest.approx(9.0)
    assert y[0, 0, 1, 1].item() == pytest.approx(1.0)  # tap (0, 0) of window (1, 1)


def test_upfirdn_with_negative_padding_crops():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = upfirdn2d(x, None, padding=[-1, 0, 0, -2])
    assert torch.equal(y, x[:, :, 0:2, 1:4])


def upfirdn_by_definition(x, f, up, down, pad):
    """Zero insertion, F.pad (negative entries crop), the flipped filter, subsampling: the
    definition, step by step, to hold upfirdn2d's shortcuts to."""
    n, c, h, w = x.shape
    u = x.new_zeros(n, c, h * up, w * up)
    u[:, :, ::up, ::up] = x
    u = F.pad(u, pad)
    y = F.conv2d(u, f.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)
    return y[:, :, ::down, ::down]


@pytest.mark.parametrize(
    "up,down,pad",
    [
        (2, 1, [2, 1, 2, 1]),  # upsample2d: one transposed convolution
        (2, 1, [3, 2, 3, 2]),  # conv2d_resample's up padding: the same, with a wider border
        (1, 1, [1, 1, 1, 1]),  # symmetric: padded by the convolution
        (1, 2, [2, 2, 2, 2]),  # the down path's symmetric padding, then subsampling
        (1, 2, [1, 1, 1, 1]),  # downsample2d
        (2, 1, [1, 2, 0, 1]),  # asymmetric: the explicit pad
        (1, 1, [-1, 2, 0, -1]),  # cropping
    ],
)
@pytest.mark.parametrize("channels,layout", [(1, "nchw"), (3, "nchw"), (3, "cl")])
def test_upfirdn_shortcuts_equal_the_definition(up, down, pad, channels, layout):
    """Values, gradients and (for R1) second derivatives of every path upfirdn2d takes, with
    an asymmetric filter so that a wrong flip shows."""
    torch.manual_seed(0)
    x = torch.randn(2, channels, 6, 7, dtype=torch.float64)
    if layout == "cl":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    f = torch.rand(4, 4, dtype=torch.float64)
    got = upfirdn2d(x, f, up=up, down=down, padding=pad, gain=up * up)
    want = upfirdn_by_definition(x, f * up * up, up, down, pad)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-12)
    g = torch.randn_like(want, requires_grad=True)
    (ga,) = torch.autograd.grad(got, x, g, create_graph=True)
    (gb,) = torch.autograd.grad(want, x, g, create_graph=True)
    assert torch.allclose(ga, gb, atol=1e-12)
    # the backward is linear in g; differentiating <backward(g), p> by g gives the forward of
    # p, so the double backward R1 relies on is checked against the forward itself
    p = torch.randn_like(x)
    (again,) = torch.autograd.grad((ga * p).sum(), g)
    assert torch.allclose(again, upfirdn_by_definition(p, f * up * up, up, down, pad), atol=1e-12)


@pytest.mark.parametrize(
    "up,pad",
    [
        (2, [0, 0, 0, 0]),
        (2, [3, 2, 1, 4]),
        (2, [-1, -2, 3, -3]),
        (4, [-5, 2, 6, -7]),
        (3, [1, -4, -2, 0]),
    ],
)
def test_channels_last_zero_insertion_equals_the_definition(up, pad):
    """StyleGAN3's upsampling without a filter (zero insertion, then padding that may crop),
    on a channels-last input: the definition's values and gradients, and the layout kept."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    got = upfirdn2d(x, None, up=up, padding=pad)
    want = upfirdn_by_definition(x, torch.ones(1, 1, dtype=torch.float64), up, 1, pad)
    assert got.shape == want.shape
    assert torch.equal(got, want)
    assert got.is_contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(want)
    (ga,) = torch.autograd.grad(got, x, g)
    (gb,) = torch.autograd.grad(want, x, g)
    assert torch.equal(ga, gb)


def test_pointwise_conv_of_one_channel_equals_the_convolution():
    """A grey image's 1x1 fromRGB is a matrix product on CPU: the convolution's values,
    gradients and double backward (R1 differentiates through it)."""
    torch.manual_seed(0)
    x = torch.randn(3, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    for bias in (b, None):
        got, want = conv2d_resample(x, w, bias=bias), F.conv2d(x, w, bias)
        assert torch.allclose(got, want, atol=1e-12)
        g = torch.randn_like(want)
        inputs = (x, w) if bias is None else (x, w, b)
        grads_a = torch.autograd.grad(got, inputs, g, create_graph=True)
        grads_b = torch.autograd.grad(want, inputs, g, create_graph=True)
        for a, c in zip(grads_a, grads_b, strict=True):
            assert torch.allclose(a, c, atol=1e-12)
        # R1's path: the gradient by the input, differentiated by the weights
        (ra,) = torch.autograd.grad(grads_a[0].square().sum(), w)
        (rb,) = torch.autograd.grad(grads_b[0].square().sum(), w)
        assert torch.allclose(ra, rb, atol=1e-12)


@pytest.mark.parametrize("flip", [True, False])
def test_conv2d_resample_up_equals_upsample_then_conv(flip):
    """The transposed-conv path equals zero insertion, the filter (padded by the filter's and
    the kernel's reach: 3 before, 2 after) and a valid convolution, done in that order."""
    torch.manual_seed(0)
    x, w, f = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3), setup_filter()
    fast = conv2d_resample(x, w, f, up=2, padding=1, flip_weight=flip)
    slow = upfirdn2d(x, f, up=2, padding=[3, 2, 3, 2], gain=4)
    slow = F.conv2d(slow, w if flip else w.flip([2, 3]))
    assert fast.shape == slow.shape == (2, 4, 10, 10)
    assert torch.allclose(fast, slow, atol=1e-5)


# ----- layers ---------------------------------------------------------------------------------
def test_equalized_lr_gains():
    torch.manual_seed(0)
    fc = FullyConnectedLayer(64, 8, lr_multiplier=0.01, bias_init=1)
    # stored weights are N(0, 1) / lr, used as w * lr / sqrt(fan_in); the bias is scaled by lr
    assert fc.weight.std().item() == pytest.approx(100, rel=0.1)
    x = torch.randn(5, 64)
    expected = x @ (fc.weight * 0.01 / 8).t() + fc.bias * 0.01
    assert torch.allclose(fc(x), expected, atol=1e-6)


def test_bias_act_gain_and_clamp():
    x = torch.tensor([[-2.0, 0.5, 3.0]]).reshape(1, 3, 1, 1)
    y = bias_act(x, torch.tensor([0.0, 0.5, 0.0]), act="lrelu", clamp=2.0).flatten()
    s = math.sqrt(2)
    assert torch.allclose(y, torch.tensor([-0.4 * s, 1.0 * s, 2.0]))


def test_demodulation_gives_unit_output_scale():
    """Demodulated outputs have the variance of a unit-variance input whatever the styles."""
    torch.manual_seed(0)
    x = torch.randn(3, 32, 16, 16)
    w = torch.randn(8, 32, 3, 3)
    styles = torch.rand(3, 32) * 10
    y = modulated_conv2d(x, w, styles, padding=1)
    assert y[:, :, 1:-1, 1:-1].std().item() == pytest.approx(1.0, rel=0.1)
    # and scaling a sample's styles leaves its output unchanged
    y2 = modulated_conv2d(x, w, styles * torch.tensor([[1.0], [5.0], [0.1]]), padding=1)
    assert torch.allclose(y, y2, atol=1e-4)


@pytest.mark.parametrize("up", [1, 2])
def test_fused_and_unfused_modulated_conv_agree(up):
    torch.manual_seed(0)
    x, w, s = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    noise = torch.randn(3, 1, 6 * up, 6 * up)
    kw = dict(noise=noise, up=up, padding=1, resample_filter=setup_filter(), flip_weight=up == 1)
    a = modulated_conv2d(x, w, s, fused=True, **kw)
    b = modulated_conv2d(x, w, s, fused=False, **kw)
    assert torch.allclose(a, b, atol=1e-5)


def test_demodulation_coefficients_equal_the_modulated_weights_norm():
    """The [N, I] x [I, O] form equals the norm of the [N, O, I, k, k] modulated weights."""
    torch.manual_seed(0)
    w, s = torch.randn(5, 4, 3, 3, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    modulated = w.unsqueeze(0) * s.reshape(3, 1, 4, 1, 1)
    expected = (modulated.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    assert torch.allclose(demodulation_coefficients(w, s), expected, rtol=1e-12)


@pytest.mark.parametrize("up, clamp", [(1, None), (2, None), (2, 0.5)])
def test_a_synthesis_layer_trains_the_function_it_samples(up, clamp):
    """Training's unfused path (one multiply-add before the activation) computes what the
    fused inference path does: values and the gradients of the weights, styles and noise."""
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 5, 8, 6 * up, up=up, conv_clamp=clamp)
    with torch.no_grad():
        layer.bias.normal_(), layer.noise_strength.fill_(0.3)
    x, w = torch.randn(3, 4, 6, 6), torch.randn(3, 8)
    outs = []
    for fused in (True, False):
        layer.zero_grad()
        y = layer(x, w, noise_mode="const", fused=fused, gain=math.sqrt(0.5))
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        grads = [layer.weight.grad, layer.affine.weight.grad, layer.noise_strength.grad]
        outs.append((y.detach(), [g.clone() for g in grads]))
    (a, ga), (b, gb) = outs
    assert torch.allclose(a, b, atol=1e-5)
    for g1, g2 in zip(ga, gb, strict=True):
        assert torch.allclose(g1, g2, atol=1e-4, rtol=1e-4)


def test_minibatch_stddev_groups_are_strided():
    x = torch.zeros(4, 1, 1, 1)
    x[:, 0, 0, 0] = torch.tensor([0.0, 10.0, 2.0, 10.0])  # groups {0, 2} and {1, 3}
    y = MinibatchStdLayer(group_size=2)(x)
    assert y.shape == (4, 2, 1, 1)
    assert torch.allclose(y[:, 1].flatten(), torch.tensor([1.0, 0.0, 1.0, 0.0]), atol=1e-3)


def test_mapping_tracks_w_avg_and_truncates_towards_it():
    torch.manual_seed(0)
    m = MappingNetwork(8, 0, 8, num_ws=3, num_layers=2, w_avg_beta=0.5)
    z = torch.randn(6, 8)
    w = m(z, None)  # training mode: w_avg <- lerp(mean w, w_avg, 0.5) = mean / 2
    assert torch.allclose(m.w_avg, w[:, 0].mean(0) / 2, atol=1e-6)
    m.eval()
    t = m(z, None, truncation_psi=0.25, truncation_cutoff=2)
    assert torch.allclose(t[:, :2], m.w_avg + 0.25 * (w[:, :2] - m.w_avg), atol=1e-6)
    assert torch.allclose(t[:, 2], w[:, 2])


# ----- the reference code's outputs -----------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_imported_networks_reproduce_the_reference_outputs(case, tmp_path):
    """Fixtures made with NVlabs/stylegan2-ada-pytorch (see fixtures/stylegan2/README.md):
    G_ema, G and D, through `ganforge import` and `ganforge.load`, match to 1e-4."""
    ref = load_file(str(FIXTURES / f"{case}_ref.safetensors"))
    run = tmp_path / "run"
    assert main(["import", "stylegan2", str(FIXTURES / f"{case}.pkl"), "--out", str(run)]) == 0
    g = ganforge.load(run)
    model = g.model
    z, c = ref["z"], ref.get("c")
    labels = c.argmax(1) if c is not None else None
    tol = dict(atol=1e-4, rtol=0)
    with torch.no_grad():
        out = {
            "img_psi07_const": model.G_ema(z, labels, truncation=0.7, noise_mode="const"),
            "img_psi1_const": model.G_ema(z, labels, noise_mode="const"),
            "img_none": model.G_ema(z, labels, noise_mode="none"),
            "ws": model.G_ema.mapping(z, c, truncation_psi=0.7),
            "g_img_psi1_const": model.G(z, labels, noise_mode="const"),
            "d_logits": model.D(ref["img_psi1_const"], labels),
        }
    for name, value in out.items():
        expected = ref[name].reshape(value.shape)
        assert torch.allclose(value, expected, **tol), (name, (value - expected).abs().max())
    # the public API: explicit latents and labels, truncation, const noise (clamped to [-1, 1])
    images = g.generate(z=z, labels=labels, truncation=0.7, noise_mode="const")
    assert torch.allclose(images, ref["img_psi07_const"].clamp(-1, 1), **tol)
    assert model.task.labels == (c is not None)


def test_import_refuses_to_overwrite_and_reports_bad_files(tmp_path, capsys):
    run = tmp_path / "run"
    pkl = str(FIXTURES / "uncond_orig.pkl")
    assert main(["import", "stylegan2", pkl, "--out", str(run)]) == 0
    before = sorted(p.name for p in run.rglob("*"))
    assert main(["import", "stylegan2", pkl, "--out", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert sorted(p.name for p in run.rglob("*")) == before
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(Path(pkl).read_bytes()[:5000])
    # -q: without it the "reading the networks in ..." progress line comes first
    assert main(["-q", "import", "stylegan2", str(cut), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()
    with pytest.raises(UserError, match="imported networks"):
        ganforge.train("stylegan2", out=run, resume=True, dataset="digits")
    # its training images are unknown: evaluation asks for real ones instead of guessing
    assert main(["eval", str(run), "--n", "10"]) == 2
    assert "give --real" in capsys.readouterr().err


# ----- training -------------------------------------------------------------------------------
def test_phases_and_lazy_optimizer_settings():
    model = tiny()
    phases = {p.name: p for p in model.phases()}
    assert [p.name for p in model.phases()] == ["G", "G_reg", "D", "D_reg"]
    assert (phases["G_reg"].every, phases["D_reg"].every) == (4, 16)
    groups = model.param_groups()
    # Adam corrected for lazy regularization: lr * k/(k+1), beta ** (k/(k+1))
    assert groups["D"].lr == pytest.approx(0.0025 * 16 / 17)
    assert groups["D"].betas[1] == pytest.approx(0.99 ** (16 / 17))
    assert groups["G"].lr == pytest.approx(0.0025 * 4 / 5)


def test_ema_half_life_is_counted_in_images():
    model = tiny()
    c = model.cfg
    batch, images = 32, int(c.ema_kimg * 1000)
    beta = model.ema_beta(10**9, batch)  # past the ramp-up
    assert beta ** (images / batch) == pytest.approx(0.5)
    # early on the half-life is ema_rampup of the images seen
    early = model.ema_beta(3200, batch)
    assert early ** (3200 * c.ema_rampup / batch) == pytest.approx(0.5)


def test_path_length_step_tracks_the_mean_and_has_gradients():
    model = tiny(DataSpec(channels=1, resolution=16, name="t"))
    model.train()
    batch = {"image": torch.zeros(8, 1, 16, 16)}
    losses = model.pl_step(batch, {})
    assert model.pl_mean.item() == pytest.approx(0.01 * losses["pl_length"].item(), rel=1e-5)
    losses["loss"].backward()
    assert model.G.mapping.fc0.weight.grad.abs().sum() > 0
    assert losses["loss"].item() == pytest.approx(4 * losses["pl_penalty"].item())


def test_cpu_inference_computes_the_fused_form():
    """On CPU the synthesis network runs inference in training's (unfused) form, which is
    faster there; its images are the reference's fused grouped convolution's."""
    model = tiny(DataSpec(channels=1, resolution=16, name="t"))
    S = model.G.synthesis.eval()
    ws = model.G.map(torch.randn(3, 16))
    with torch.no_grad():
        plain = S(ws, noise_mode="const")
        unfused = S(ws, noise_mode="const", fused=False)
        fused = S(ws, noise_mode="const", fused=True)
    assert plain.shape == fused.shape == (3, 1, 16, 16)
    assert torch.equal(plain, unfused)  # the default on CPU
    assert torch.allclose(plain, fused, atol=1e-5)
    assert (plain - fused).abs().max() > 0  # the two forms really ran


def test_style_mixing_only_in_training():
    model = tiny(DataSpec(channels=1, resolution=16, name="t"), style_mixing=1.0)
    z = torch.randn(4, 16)
    model.G.train()
    torch.manual_seed(1)
    mixed = model.G.map(z)
    model.G.eval()
    plain = model.G.map(z)
    differs = (mixed - plain).abs().amax(dim=(0, 2)) > 0
    # some suffix of layers comes from another z, the layers before it do not
    assert differs.any() and not differs[0]
    assert torch.equal(differs, differs.cummax(0).values)


def test_conditional_variant_needs_labels(tmp_path):
    model = tiny(conditional="true")
    assert model.task.labels and model.G.c_dim == 10 and hasattr(model.D, "mapping")
    images = model.generate(4, labels=[1, 2, 3, 4], seed=0)
    assert images.shape == (4, 1, 16, 16)
    with pytest.raises(UserError):
        tiny(DataSpec(channels=1, resolution=16, name="t"), conditional="true")
