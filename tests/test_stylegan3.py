"""StyleGAN3 (alias-free) networks imported from the official release's pickles.

The fixtures (tests/fixtures/stylegan3/README.md) were made with the unmodified NVlabs/stylegan3
code on CPU; their ``*_ref.safetensors`` hold its outputs for fixed inputs, which an imported run
must reproduce to 1e-4 (max abs).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import scipy.special
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import ganforge
from ganforge.config import build_config
from ganforge.errors import UserError
from ganforge.models import get_family
from ganforge.models.stylegan3 import input_transform
from ganforge.nn.alias_free import (
    design_lowpass_filter,
    filtered_lrelu,
    fir_filter,
    jinc_lowpass,
    kaiser_lowpass,
    modulated_conv2d,
    upsample_separable,
)
from ganforge.nn.upfirdn import upfirdn2d
from ganforge.tools.stylegan2_pickle import _Bad, _load
from ganforge.tools.stylegan3_pickle import (
    _import,
    check_geometry,
    import_stylegan3,
    read_stylegan3_pickle,
)

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan3"
CASES = ["t_rgb16", "r_rgb16_transform", "t_cond_gray32"]
TOL = 1e-4


def reference(case: str) -> tuple[dict[str, torch.Tensor], dict]:
    path = FIXTURES / f"{case}_ref.safetensors"
    with safe_open(path, "pt") as f:
        meta = {
            k: json.loads(v) if k not in ("reference", "case", "config") else v
            for k, v in (f.metadata() or {}).items()
        }
    return load_file(path), meta


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, ganforge.api.LoadedModel]:
    """Each fixture imported once into a run folder, then loaded like any run."""
    out = {}
    for case in CASES:
        run = import_stylegan3(FIXTURES / f"{case}.pkl", tmp_path_factory.mktemp(case) / "run")
        out[case] = ganforge.load(run)
    return out


def labels_of(ref: dict) -> torch.Tensor | None:
    return ref["c"].argmax(dim=1) if "c" in ref else None


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


# ----- parity with the official code ------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_imported_networks_reproduce_the_reference_outputs(imported, case):
    ref, _ = reference(case)
    model, z, labels = imported[case].model, ref["z"], labels_of(ref)
    G, G_ema = model.G.eval(), model.G_ema
    with torch.no_grad():
        assert gap(G_ema.map(z, labels, truncation=0.7), ref["ws"]) < TOL
        assert gap(G_ema.map(z, labels), ref["ws_psi1"]) < TOL
        cut = G_ema.map(z, labels, truncation=0.7, truncation_cutoff=3)
        assert gap(cut, ref["ws_psi07_cutoff3"]) < TOL
        assert gap(G_ema(z, labels, truncation=0.7), ref["img_psi07"]) < TOL
        assert gap(G_ema(z, labels), ref["img_psi1"]) < TOL
        assert gap(G(z, labels), ref["g_img_psi1"]) < TOL
        assert gap(model.D(ref["img_psi1"], labels), ref["d_logits"].flatten()) < TOL
    # the outputs compared differ from each other by far more than the tolerance
    assert gap(ref["img_psi07"], ref["img_psi1"]) > 0.1
    assert gap(ref["img_psi1"], ref["g_img_psi1"]) > 0.01


@pytest.mark.parametrize("case", CASES)
def test_generate_of_an_imported_run_gives_the_reference_images(imported, case):
    ref, _ = reference(case)
    run = imported[case]
    images = run.generate(z=ref["z"], labels=labels_of(ref), truncation=0.7)
    assert gap(images, ref["img_psi07"].clamp(-1, 1)) < TOL
    images = run.generate(z=ref["z"], labels=labels_of(ref))
    assert gap(images, ref["img_psi1"].clamp(-1, 1)) < TOL
    # StyleGAN3 has no noise inputs: every noise mode gives the same images
    again = run.generate(z=ref["z"], labels=labels_of(ref), noise_mode="random")
    assert torch.equal(images, again)


@pytest.mark.parametrize("case", CASES)
def test_training_mode_tracks_w_avg_and_magnitudes_as_the_reference(imported, case):
    """One train-mode forward of G updates the mean w and every layer's input magnitude (the
    release's ``update_emas=True``) and uses the updated magnitudes at once."""
    ref, _ = reference(case)
    G = copy.deepcopy(imported[case].model.G).train()
    before = G.mapping.w_avg.clone()
    with torch.no_grad():
        image = G(ref["z"], labels_of(ref))
    assert gap(image, ref["img_update_emas"]) < TOL
    assert gap(G.mapping.w_avg, ref["w_avg_after"]) < 1e-6
    assert gap(G.mapping.w_avg, before) > 1e-4
    names = G.synthesis.layer_names
    magnitudes = torch.stack([getattr(G.synthesis, n).magnitude_ema for n in names])
    assert gap(magnitudes, ref["magnitude_ema_after"]) < 1e-6


def test_the_stored_transform_is_imported_and_honoured(imported):
    ref, meta = reference("r_rgb16_transform")
    model = imported["r_rgb16_transform"].model
    assert meta["stored_transform"] == [[0.125, -0.25], 30.0]
    stored = model.G_ema.synthesis.input.transform
    assert gap(stored, ref["stored_transform"]) == 0
    assert gap(stored, torch.from_numpy(input_transform((0.125, -0.25), 30.0)).float()) < 1e-7
    assert torch.equal(model.G.synthesis.input.transform, torch.eye(3))  # only G_ema had one
    z = ref["z"]
    with torch.no_grad():
        assert gap(model.G_ema(z, truncation=0.7), ref["img_psi07"]) < TOL
        plain = model.G_ema.synthesis.input.transform.clone()
        model.G_ema.synthesis.input.transform.copy_(torch.eye(3))
        try:
            assert gap(model.G_ema(z, truncation=0.7), ref["img_psi07"]) > 0.1  # it matters
        finally:
            model.G_ema.synthesis.input.transform.copy_(plain)


@pytest.mark.parametrize("case", CASES)
def test_set_input_transform_matches_gen_images_translate_and_rotate(imported, case):
    ref, meta = reference(case)
    model = copy.deepcopy(imported[case].model)
    model.set_input_transform(translate=tuple(meta["user_translate"]), rotate=meta["user_rotate"])
    assert meta["user_translate"] == [0.3, -0.2] and meta["user_rotate"] == 25.0
    for net in (model.G, model.G_ema):
        assert gap(net.synthesis.input.transform, ref["user_transform"]) < 1e-7
    images = model.generate(z=ref["z"], labels=labels_of(ref), truncation=0.7)
    assert gap(images, ref["img_user_psi07"].clamp(-1, 1)) < TOL
    assert gap(ref["img_user_psi07"], ref["img_psi07"]) > 0.1
    # the transform is model state: it travels with the state dict into a checkpoint
    again = get_family("stylegan3")(model.cfg, model.spec)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.G_ema.synthesis.input.transform, model.G_ema.synthesis.input.transform)
    model.set_input_transform()  # back to the identity
    assert gap(model.G_ema.synthesis.input.transform, torch.eye(3)) < 1e-7


def test_input_transform_is_the_inverse_of_gen_images_make_transform():
    """gen_images.py: m = [[c, s, tx], [-s, c, ty], [0, 0, 1]] for the angle in degrees, then
    inverted; at 90 degrees and a translation of (1, 0) that inverse is easy to write down."""
    m = input_transform((1.0, 0.0), 90.0)
    assert np.allclose(m, [[0, -1, 0], [1, 0, -1], [0, 0, 1]], atol=1e-12)
    assert np.allclose(input_transform((0.5, -2.0), 0.0), [[1, 0, -0.5], [0, 1, 2], [0, 0, 1]])


# ----- the rebuilt architecture -----------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_a_fresh_build_of_the_imported_config_designs_the_release_filters(imported, case):
    """The config names the same layers, and our filter design (no scipy) gives the filters the
    release designed with scipy.signal.firwin and scipy.special.j1."""
    nets = read_stylegan3_pickle(FIXTURES / f"{case}.pkl")
    model = imported[case].model
    fresh = get_family("stylegan3")(model.cfg, model.spec).G.state_dict()
    assert set(fresh) == set(nets.G_ema)
    filters = [k for k in nets.G_ema if k.endswith("_filter")]
    assert filters
    for key in filters:
        assert gap(fresh[key], nets.G_ema[key]) < 1e-7, key
    radial = [k for k in filters if nets.G_ema[k].ndim == 2]
    assert bool(radial) == (case.startswith("r_"))


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_per_sample_weights(demodulate):
    """The CPU form (styles on the activations, one shared convolution) against the
    definition: each sample convolved with its own modulated, demodulated, input-gained
    weights."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 4, dtype=torch.float64)
    gain = torch.tensor(0.7, dtype=torch.float64)
    got = modulated_conv2d(x, weight, styles, demodulate=demodulate, padding=1, input_gain=gain)
    wn, sn = weight, styles
    if demodulate:
        wn = weight / weight.square().mean(dim=[1, 2, 3], keepdim=True).sqrt()
        sn = styles / styles.square().mean().sqrt()
    for i in range(3):
        w = wn * sn[i].reshape(1, 4, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        want = torch.nn.functional.conv2d(x[i : i + 1], w * gain, padding=1)
        assert torch.allclose(got[i : i + 1], want, atol=1e-10)


def test_filtered_lrelu_equals_its_steps_in_order():
    """Bias, upsampling, filter, leaky ReLU, gain, clamp, filter and decimation done one by
    one, with the clamp active: the fused form (the gain inside the down filter, the clamp's
    bounds divided by it) computes the same."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64) * 3
    bias = torch.randn(3, dtype=torch.float64)
    up_f, down_f = torch.rand(6, dtype=torch.float64), torch.rand(6, dtype=torch.float64)
    pad = [5, 4, 5, 4]
    got = filtered_lrelu(x, up_f, down_f, bias, up=2, down=2, padding=pad, clamp=1.5)
    y = x + bias.reshape(1, -1, 1, 1)
    y = fir_filter(upfirdn2d(y, None, up=2, padding=pad), up_f, gain=4)
    y = (torch.nn.functional.leaky_relu(y, 0.2) * math.sqrt(2)).clamp(-1.5, 1.5)
    want = fir_filter(y, down_f, down=2)
    assert (y.abs() == 1.5).any()  # the clamp bites
    assert torch.allclose(got, want, atol=1e-12)


@pytest.mark.parametrize(
    "up,k,padding",
    [
        (2, 12, [9, 9, 10, 9]),  # cropped inside the convolution (output_padding 1 along W)
        (2, 12, [10, 9, 10, 9]),  # a symmetric crop inside the convolution
        (2, 6, [8, 1, 0, 7]),  # zero-padded beyond the filter's reach, cropped more after
        (4, 8, [3, 6, 7, 2]),
        (2, 4, [0, 0, 0, 0]),
    ],
)
@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_separable_upsampling_equals_zero_insertion_then_filter(up, k, padding, layout):
    """The transposed-convolution upsampling of the filtered leaky ReLU: the zero-inserted
    form's values and gradients, with an asymmetric filter (a wrong flip fails)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    if layout == "cl":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    f = torch.rand(k, dtype=torch.float64)
    got = upsample_separable(x, f, up, padding)
    want = fir_filter(upfirdn2d(x, None, up=up, padding=padding), f, gain=up * up)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-12)
    g = torch.randn_like(want)
    (ga,) = torch.autograd.grad(got, x, g)
    (gb,) = torch.autograd.grad(want, x, g)
    assert torch.allclose(ga, gb, atol=1e-12)


@pytest.mark.parametrize(
    "numtaps, cutoff, width, fs",
    [(12, 2.0, 4.57, 32), (24, 5.04, 3.0, 64), (8, 1.5, 0.2, 16), (7, 3.0, 2.0, 16)],
)
def test_kaiser_lowpass_is_scipy_firwin_with_a_width(numtaps, cutoff, width, fs):
    """Attenuations above 50 dB, between 21 and 50, below 21 (beta 0), and an odd length."""
    ours = kaiser_lowpass(numtaps, cutoff, width, fs)
    theirs = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    assert np.abs(ours - theirs).max() < 1e-12
    assert ours.sum() == pytest.approx(1.0)


def test_jinc_lowpass_matches_the_radial_design_with_scipy():
    numtaps, cutoff, width, fs = 12, 5.0, 6.0, 32
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    theirs = scipy.special.j1(2 * cutoff * np.pi * r) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    theirs = theirs * np.outer(np.kaiser(numtaps, beta), np.kaiser(numtaps, beta))
    theirs /= theirs.sum()
    ours = jinc_lowpass(numtaps, cutoff, width, fs)
    assert np.abs(ours - theirs).max() < 1e-8  # torch's J1 is good to ~1e-9
    assert np.allclose(ours, ours.T) and design_lowpass_filter(1, 1.0, 1.0, 4) is None


# ----- what the importer reads and refuses ----------------------------------------------------
def test_the_config_holds_the_release_defaults_and_the_options_set(imported):
    t = imported["t_rgb16"].model.cfg
    assert (t.num_layers, t.num_critical, t.margin_size, t.conv_kernel) == (14, 2, 10, 3)
    assert t.first_stopband == 2**2.1 and t.last_stopband_rel == 2**0.3
    assert t.conv_clamp == 256 and t.d_conv_clamp == 256  # the release's default in G and D
    assert t.magnitude_ema_beta == 0.5 ** (32 / 20e3) and t.w_avg_beta == 0.998
    r = imported["r_rgb16_transform"].model.cfg
    assert (r.conv_kernel, r.use_radial_filters, r.channel_base, r.d_channel_base) == (
        1,
        True,
        256,
        128,
    )
    c = imported["t_cond_gray32"]
    assert (c.model.cfg.num_layers, c.model.cfg.margin_size, c.model.cfg.filter_size) == (8, 6, 4)
    assert c.model.cfg.conv_clamp == 8 and c.model.cfg.d_conv_clamp == 8
    assert c.model.cfg.mapping_layers == 3 and c.model.task.labels and c.spec.num_classes == 10
    assert imported["r_rgb16_transform"].config.preset == "stylegan3-r"


def test_the_run_records_where_it_came_from(imported):
    meta = json.loads((imported["t_rgb16"].path / "meta.json").read_text())
    assert meta["family"] == "stylegan3"
    info = meta["imported"]
    assert info["format"] == "stylegan3" and info["has_G"] and info["has_D"]
    assert info["num_fp16_res"] == 4 and info["from"] == "t_rgb16.pkl"
    assert info["training_set_kwargs"]["path"].endswith("t_rgb16.zip")


def test_numpy_1_pickles_read_the_same(tmp_path):
    """NVIDIA's snapshots name numpy 1.x's module; the protocol-3 fixture spells globals as text
    lines, so renaming them gives such a file."""
    raw = (FIXTURES / "t_cond_gray32.pkl").read_bytes()
    assert b"cnumpy._core.multiarray\n" in raw
    old = tmp_path / "numpy1.pkl"
    old.write_bytes(raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    a, b = read_stylegan3_pickle(old), read_stylegan3_pickle(FIXTURES / "t_cond_gray32.pkl")
    assert a.config == b.config and all(torch.equal(a.G_ema[k], b.G_ema[k]) for k in a.G_ema)


def test_a_stylegan2_pickle_says_to_use_import_stylegan2(tmp_path):
    pkl = Path(__file__).parent / "fixtures" / "stylegan2" / "uncond_orig.pkl"
    with pytest.raises(
        UserError, match="this is a StyleGAN2 network; use ganforge import stylegan2"
    ):
        import_stylegan3(pkl, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _edited(case: str, edit) -> dict:
    data = _load(FIXTURES / f"{case}.pkl")
    edit(data)
    return data


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["G_ema"].state["_init_kwargs"].update(fancy=1), r"option\(s\) \['fancy'\]"),
        (
            lambda d: d["G_ema"].state["_init_kwargs"].pop("conv_clamp"),
            "conv_clamp=256.0 but its layers 8.0",
        ),
        (lambda d: d["G_ema"].state["_init_kwargs"].update(z_dim=8), "z_dim=8 but its tensors 16"),
        (
            lambda d: d["G"].state["_init_kwargs"].update(first_stopband=4.3),
            "G and G_ema differ",
        ),
        (lambda d: d["G_ema"].state.pop("_init_kwargs"), "holds no init kwargs"),
        (lambda d: d.pop("G_ema"), "no G_ema Generator"),
    ],
    ids=["unknown option", "wrong default", "tensors", "G vs G_ema", "no kwargs", "no G_ema"],
)
def test_inconsistent_or_foreign_networks_are_refused(edit, message):
    with pytest.raises(_Bad, match=message):
        _import(_edited("t_cond_gray32", edit), "x.pkl")


def test_a_layer_sampled_elsewhere_than_ours_is_refused(imported):
    nets = read_stylegan3_pickle(FIXTURES / "t_rgb16.pkl")
    G = imported["t_rgb16"].model.G_ema
    check_geometry(G, nets.geometry, "x.pkl")  # the fixture's own layers agree
    assert nets.geometry["L0_36_16"] == {
        "padding": [9, 8, 9, 8],
        "up_factor": 2,
        "down_factor": 2,
    }
    nets.geometry["L0_36_16"]["padding"] = [10, 11, 10, 11]
    with pytest.raises(UserError, match=r"layer L0_36_16 has padding=\[10, 11, 10, 11\]"):
        check_geometry(G, nets.geometry, "x.pkl")


def test_user_mistakes_are_one_line_errors(tmp_path, imported):
    with pytest.raises(UserError, match="does not exist"):
        import_stylegan3(tmp_path / "nope.pkl", tmp_path / "run")
    run = import_stylegan3(FIXTURES / "t_rgb16.pkl", tmp_path / "run")
    with pytest.raises(UserError, match="already holds a run"):
        import_stylegan3(FIXTURES / "t_cond_gray32.pkl", run)
    half = tmp_path / "half.pkl"
    raw = (FIXTURES / "t_rgb16.pkl").read_bytes()
    half.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="truncated or not a pickle"):
        read_stylegan3_pickle(half)
    model = imported["t_rgb16"].model
    with pytest.raises(UserError, match="two finite numbers"):
        model.set_input_transform(translate=(0.1, math.nan))
    with pytest.raises(UserError, match="two finite numbers"):
        model.set_input_transform(translate=(0.1, 0.2, 0.3))
    with pytest.raises(UserError, match="truncation 2.0 is out of range"):
        model.generate(2, truncation=2.0)


def test_config_checks_are_one_line_errors():
    with pytest.raises(UserError, match="num_critical"):
        build_config("stylegan3", "tiny", overrides=[("num_critical", 4)])
    with pytest.raises(UserError, match="first_cutoff"):
        build_config("stylegan3", "tiny", overrides=[("first_cutoff", 8)])


def test_import_and_sample_commands_with_translate_and_rotate(tmp_path, capsys):
    from ganforge.cli import main

    ref, meta = reference("t_rgb16")
    run = tmp_path / "sg3"
    assert main(["import", "stylegan3", str(FIXTURES / "t_rgb16.pkl"), "--out", str(run)]) == 0
    tx, ty = meta["user_translate"]
    moves = [f"--translate={tx},{ty}", "--rotate", str(meta["user_rotate"])]
    argv = ["sample", str(run), "--seeds", "1", "--outdir", str(tmp_path / "moved"), *moves]
    argv += ["--format", "npz"]
    assert main(argv) == 0
    moved = np.load(tmp_path / "moved" / "images.npz")["images"]
    g = ganforge.load(run)
    g.set_input_transform(translate=(tx, ty), rotate=meta["user_rotate"])
    expected = ((g.generate(1, seed=1) + 1) * 127.5).round().clamp(0, 255)
    got = torch.from_numpy(moved).permute(0, 3, 1, 2).float()
    assert (got - expected).abs().max() <= 1  # the same images, up to 8-bit rounding
    capsys.readouterr()
    argv = ["sample", str(run), "--n", "2", "--translate", "x", "--out", str(tmp_path / "a.png")]
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    # the stylegan2 importer points StyleGAN3 pickles here, and the reverse
    wrong = ["import", "stylegan2", str(FIXTURES / "t_rgb16.pkl"), "--out", str(tmp_path / "r")]
    assert main(wrong) == 2
    assert "use ganforge import stylegan3" in capsys.readouterr().err
