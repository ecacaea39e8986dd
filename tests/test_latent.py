"""Latent tools (slerp, interpolate, style mixing, projection), their commands, and the ppl
metric, on the small imported StyleGAN2-ADA fixture (16x16 RGB, 6 ws of 32) and a dcgan run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ganforge
from ganforge.api import evaluate_run
from ganforge.cli import main
from ganforge.errors import UserError
from ganforge.features.domain import DomainClassifier, DomainSettings
from ganforge.metrics.ppl import perceptual_path_length
from ganforge.tools.latent import (
    interpolate,
    parse_int_list,
    path_positions,
    project,
    slerp,
    style_mix,
)

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2"
QUIET = {"train.progress": False, "train.tensorboard": False}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # an empty feature cache: no domain network from this machine leaks into the tests
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def sg_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sg2"
    assert main(["import", "stylegan2", str(FIXTURES / "uncond_orig.pkl"), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def sg(sg_run):
    return ganforge.load(sg_run)


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dcgan"
    return ganforge.train(
        "dcgan", preset="tiny", dataset="digits", steps=2, batch_size=16, out=out, overrides=QUIET
    )


def seed_z(seed: int, z_dim: int) -> torch.Tensor:
    return torch.randn(1, z_dim, generator=torch.Generator().manual_seed(seed))


def one_line_error(capsys, argv: list[str], *fragments: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# ----- slerp and the path -----------------------------------------------------------------------
def test_slerp_hits_its_endpoints_and_keeps_unit_vectors_on_the_sphere():
    torch.manual_seed(0)
    a, b = torch.randn(4, 16), torch.randn(4, 16)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    ua, ub = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((ua * ub).sum(1))
    for t in (0.1, 0.25, 0.5, 0.9):
        mid = slerp(ua, ub, t)
        assert torch.allclose(mid.norm(dim=1), torch.ones(4), atol=1e-6)
        # constant angular speed: t of the way along the great circle
        assert torch.allclose(torch.acos((ua * mid).sum(1).clamp(-1, 1)), t * omega, atol=1e-4)
    # the length moves linearly between the two norms (a Gaussian z stays on its shell)
    half = slerp(a, b, 0.5).norm(dim=1)
    assert torch.allclose(half, (a.norm(dim=1) + b.norm(dim=1)) / 2, atol=1e-5)
    # parallel vectors: no angle to turn through, a straight line
    assert torch.allclose(slerp(a[:1], 3 * a[:1], 0.5), 2 * a[:1], atol=1e-5)


def test_the_path_puts_every_seed_on_a_frame():
    starts, ts = path_positions(3, 7)  # seeds on frames 0, 3, 6
    assert starts == [0, 0, 0, 1, 1, 1, 1] and ts[3] == 0 and ts[6] == 1
    assert ts[:3] == [0, 1 / 3, 2 / 3]
    starts, ts = path_positions(2, 6, loop=True)  # there and back, without repeating frame 0
    assert starts == [0, 0, 0, 1, 1, 1] and ts[3] == 0 and ts[-1] == pytest.approx(2 / 3)


@pytest.mark.parametrize("text", ["1,,x", "a", "3-1", "", "1;2"])
def test_bad_seed_lists_are_one_line_errors(text, sg_run, capsys):
    with pytest.raises(UserError):
        parse_int_list(text, "--seeds")
    one_line_error(capsys, ["interpolate", str(sg_run), "--seeds", text], "--seeds")


def test_seed_lists_and_ranges():
    assert parse_int_list("1,2,5", "x") == [1, 2, 5]
    assert parse_int_list("0-3", "x") == [0, 1, 2, 3]
    assert parse_int_list("0-1, 7", "x") == [0, 1, 7]


# ----- interpolation ----------------------------------------------------------------------------
def test_interpolate_starts_and_ends_on_the_seeds_images(sg):
    frames = interpolate(sg, [1, 2, 3], 7)
    assert frames.shape == (7, 3, 16, 16)
    z_dim = sg.model.G_ema.z_dim
    assert torch.allclose(frames[0], sg.generate(z=seed_z(1, z_dim))[0], atol=1e-4)
    assert torch.allclose(frames[3], sg.generate(1, seed=2)[0], atol=1e-4)
    assert torch.allclose(frames[6], sg.generate(1, seed=3)[0], atol=1e-4)
    assert not torch.allclose(frames[1], frames[0], atol=1e-3)
    # in z the endpoints are the same images; the frames between differ from the w walk
    in_z = interpolate(sg, [1, 2, 3], 7, space="z")
    assert torch.allclose(in_z[0], frames[0], atol=1e-4)
    assert not torch.allclose(in_z[1], frames[1], atol=1e-4)


def test_interpolate_command_writes_an_enlarged_gif(sg_run, tmp_path, capsys):
    out = tmp_path / "walk.gif"
    argv = ["interpolate", str(sg_run), "--seeds", "1,2,3", "--frames", "8", "--out", str(out)]
    assert main([*argv, "--fps", "10", "--truncation", "0.7"]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 8 and gif.size == (64, 64)  # 16 px enlarged 4x like samples
        assert gif.info["duration"] == 100 and gif.info["loop"] == 0
    assert "wrote 8 frames" in capsys.readouterr().out


def test_interpolate_mistakes(sg_run, capsys):
    run = str(sg_run)
    one_line_error(capsys, ["interpolate", run, "--seeds", "4"], "at least 2 seeds")
    one_line_error(capsys, ["interpolate", run, "--seeds", "1,2", "--frames", "1"], "--frames 1")
    one_line_error(capsys, ["interpolate", run, "--seeds", "0-4", "--frames", "3"], "5 seeds")
    one_line_error(capsys, ["interpolate", run, "--seeds", "1,2", "--class", "3"], "unconditional")


def test_non_style_models_walk_in_z_and_refuse_w(dcgan_run, capsys):
    g = ganforge.load(dcgan_run)
    frames = interpolate(g, "5,6", 4)
    assert frames.shape == (4, 1, 28, 28)
    assert torch.allclose(frames[0], g.generate(1, seed=5)[0], atol=1e-5)
    assert torch.allclose(frames[3], g.generate(1, seed=6)[0], atol=1e-5)
    argv = ["interpolate", str(dcgan_run), "--seeds", "1,2", "--space", "w"]
    one_line_error(capsys, argv, "style-based", "dcgan")


# ----- style mixing -----------------------------------------------------------------------------
def test_mix_cells_are_the_row_seeds_ws_with_the_column_seeds_layers(sg):
    G = sg.model.G_ema
    cells = style_mix(sg, [1, 2], [3, 4, 5], "0-2", truncation=0.7)
    assert cells.shape == (3 * 4, 3, 16, 16)
    assert torch.all(cells[0] == -1)  # blank corner
    assert torch.allclose(cells[1], sg.generate(1, seed=3, truncation=0.7)[0], atol=1e-4)
    assert torch.allclose(cells[4], sg.generate(1, seed=1, truncation=0.7)[0], atol=1e-4)
    with torch.no_grad():
        w_row = G.map(seed_z(2, G.z_dim), truncation=0.7)
        w_col = G.map(seed_z(4, G.z_dim), truncation=0.7)
        spliced = torch.cat([w_col[:, :3], w_row[:, 3:]], dim=1)
        expected = G.synthesis(spliced, noise_mode="const")[0].clamp(-1, 1)
    assert torch.allclose(cells[2 * 4 + 2], expected, atol=1e-4)  # row seed 2, column seed 4


def test_mix_command_and_its_layer_range(sg_run, tmp_path, capsys):
    out = tmp_path / "mix.png"
    argv = ["mix", str(sg_run), "--rows", "1,2", "--cols", "3,4,5", "--out", str(out)]
    assert main([*argv, "--layers", "0,1,5"]) == 0
    with Image.open(out) as png:
        assert png.size == ((4 * 18 + 2) * 4, (3 * 18 + 2) * 4)  # 16 px cells, 2 px borders, x4
    capsys.readouterr()
    one_line_error(capsys, [*argv, "--layers", "0-9"], "--layers 0-9: layer 6", "0-5")
    one_line_error(capsys, [*argv, "--layers", "2-x"], "--layers")


# ----- projection -------------------------------------------------------------------------------
def test_project_reconstructs_an_image_of_the_network(sg):
    target = sg.generate(1, seed=5)[0]
    result = project(sg, target, steps=30, seed=1)
    assert result.w.shape == (1, 6, 32) and result.image.shape == (1, 3, 16, 16)
    assert torch.allclose(result.w, result.w[:, :1].expand(-1, 6, -1))  # one w for all layers
    assert len(result.history) == 30 and result.noise_buffers == {}
    first = result.history[0]["psnr"]
    assert result.psnr > first + 5, (first, result.psnr)  # far closer than the mean w's image
    assert result.distance.startswith("pixel MSE only")  # no cached domain network here
    ws = result.w
    with torch.no_grad():
        again = sg.model.G_ema.synthesis(ws, noise_mode="const").clamp(-1, 1)
    assert result.psnr == pytest.approx(10 * math.log10(1 / ((again - target) / 2).square().mean()))


def test_project_with_noise_keeps_the_maps_unit_gaussian(sg):
    result = project(sg, sg.generate(1, seed=5)[0], steps=5, noise=True)
    assert len(result.noise_buffers) == 5  # b4 conv1, b8 and b16 conv0 and conv1
    for buf in result.noise_buffers.values():
        assert abs(buf.mean().item()) < 1e-5 and buf.square().mean().item() == pytest.approx(1)


def test_project_command_converts_a_wrong_size_target_and_says_so(sg_run, tmp_path, capsys):
    picture = tmp_path / "photo.png"
    gray = np.random.default_rng(0).integers(0, 255, (24, 40), dtype=np.uint8)
    Image.fromarray(gray).save(picture)
    out = tmp_path / "proj"
    assert main(["project", str(sg_run), str(picture), "--steps", "3", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "note:" in captured.err and "40x24 gray; converted to 16x16 RGB" in captured.err
    assert "PSNR" in captured.out
    with Image.open(out / "target.png") as used:
        assert used.size == (16, 16) and used.mode == "RGB"
    with Image.open(out / "reconstruction.png") as rec:
        assert rec.size == (16, 16)
    assert load_file(str(out / "latent.safetensors"))["w"].shape == (1, 6, 32)


def test_project_mistakes(sg_run, dcgan_run, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    one_line_error(capsys, ["project", str(sg_run), str(text)], "cannot read target image")
    one_line_error(capsys, ["project", str(sg_run), str(tmp_path / "none.png")], "does not exist")
    one_line_error(capsys, ["project", str(dcgan_run), str(text)], "style-based", "dcgan")


# ----- sample with truncation -------------------------------------------------------------------
def test_sample_truncates_style_models_around_the_mean_w(sg, sg_run, tmp_path):
    assert main(["sample", str(sg_run), "--n", "2", "--truncation", "0.7"]) == 0
    assert main(["sample", str(sg_run), "--n", "2", "--truncation", "1.2"]) == 0
    G = sg.model.G_ema
    at_mean = sg.generate(1, seed=0, truncation=0.0)
    with torch.no_grad():
        ws = G.mapping.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)
        assert torch.allclose(at_mean, G.synthesis(ws, noise_mode="const").clamp(-1, 1))


# ----- ppl --------------------------------------------------------------------------------------
def small_features(channels: int = 3, resolution: int = 16) -> DomainClassifier:
    torch.manual_seed(0)
    return DomainClassifier(channels, resolution, 10, DomainSettings(width=8, features=16)).eval()


def test_ppl_is_finite_positive_and_repeatable(sg):
    first = perceptual_path_length(sg, small_features(), n=40, seed=3)
    assert math.isfinite(first["ppl"]) and first["ppl"] > 0
    assert first["n"] == 40 and first["epsilon"] == 1e-4
    assert perceptual_path_length(sg, small_features(), n=40, seed=3)["ppl"] == pytest.approx(
        first["ppl"], rel=1e-3
    )


def test_eval_ppl_on_a_style_run_and_refused_for_dcgan(sg_run, dcgan_run, monkeypatch, capsys):
    from ganforge.metrics import evaluate as evaluation

    record = {"hash": "0" * 16, "dataset": "digits", "test_accuracy": 0.5, "features": 16}
    monkeypatch.setattr(  # a small untrained network in place of training the real one
        evaluation, "build_domain_network", lambda *a, **k: (small_features(1, 8), record)
    )
    argv = ["eval", str(sg_run), "--metrics", "ppl", "--dataset", "digits", "--n", "20"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ppl: 20 pairs" in out and "\nppl " in out
    report = evaluate_run(sg_run, metrics="ppl", dataset="digits", n=20)
    assert report["metrics"]["ppl"] > 0 and report["ppl"]["space"] == "w"
    argv = ["eval", str(dcgan_run), "--metrics", "ppl", "--dataset", "digits"]
    one_line_error(capsys, argv, "ppl needs a style-based generator", "dcgan")


def test_eval_truncation_draws_the_generated_set_at_that_psi(sg_run, sg, monkeypatch, tmp_path):
    from ganforge.metrics import evaluate as evaluation

    record = {"hash": "1" * 16, "dataset": "digits", "test_accuracy": 0.5, "features": 16}
    monkeypatch.setattr(
        evaluation, "build_domain_network", lambda *a, **k: (small_features(3, 16), record)
    )

    def as_npz(name: str, images: torch.Tensor) -> Path:
        path = tmp_path / name
        np.savez(path, images=((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy())
        return path

    real = as_npz("real.npz", sg.generate(60, seed=7))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)  # evaluate's seed 0: latents from seed 0, noise from seed 1
        images = sg.generate(60, seed=0, truncation=0.5, noise_mode="random")
    truncated = as_npz("psi.npz", images)
    common = {"real": real, "dataset": "digits", "metrics": "fid", "n": 60}
    drawn = evaluate_run(sg_run, truncation=0.5, out=tmp_path / "a.json", **common)
    assert drawn["generated"]["noise_mode"] == "random"
    given = evaluation.evaluate(fake=truncated, out=tmp_path / "b.json", **common)
    plain = evaluate_run(sg_run, out=tmp_path / "c.json", **common)
    assert drawn["metrics"]["fid"] == pytest.approx(given["metrics"]["fid"], rel=1e-6)
    assert plain["metrics"]["fid"] != pytest.approx(drawn["metrics"]["fid"], rel=0.05)
    assert drawn["truncation"] == 0.5 and "psi 0.5" in evaluation.format_report(drawn)
    with pytest.raises(UserError, match="--truncation 0.5 needs a run"):
        evaluation.evaluate(fake=truncated, truncation=0.5, **common)
