"""lucidrains' stylegan2_pytorch: its checkpoints imported exactly (the package's own outputs in
tests/fixtures/stylegan2_pytorch, see its README), the seeds' `ModelLoader`, the repeatable
noise and truncation centre, the package's objective, and one-line refusals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import ganforge
from ganforge.cli import main
from ganforge.errors import UserError
from ganforge.models.stylegan2_pytorch import ChannelNorm, Generator
from ganforge.tools.stylegan2_pytorch import (
    ModelLoader,
    import_stylegan2_pytorch,
    read_checkpoint,
)

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2_pytorch"
RUNS = ["rgb16_noconst", "attn32"]  # rgba16 (transparent) is ModelLoader-only
NEWEST = {"rgb16_noconst": "model_10.pt", "attn32": "model_3.pt", "rgba16": "model_3.pt"}


def reference(case: str) -> dict[str, torch.Tensor]:
    with safe_open(FIXTURES / f"{case}_ref.safetensors", "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iter


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    return {case: import_stylegan2_pytorch(FIXTURES / case, root / case) for case in RUNS}


def _close(ours: torch.Tensor, theirs: torch.Tensor, atol: float = 1e-4) -> float:
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    err = (ours - theirs).abs().max().item()
    assert err <= atol, err
    return err


def _package_range(images: torch.Tensor) -> torch.Tensor:
    return (images + 1) / 2


# ----- the package's outputs ------------------------------------------------------------------
@pytest.mark.parametrize("case", RUNS)
def test_imported_networks_reproduce_the_package(imported, case):
    ref, m = reference(case), ganforge.load(imported[case]).model
    G_ema, G = m.generator(), m.generator(ema=False)
    with torch.no_grad():
        _close(_package_range(G_ema(ref["z"], noise=ref["noise"])), ref["img_ema"])
        _close(_package_range(G(ref["z"], noise=ref["noise"])), ref["img_g"])
        # per-block styles through map/synthesis: block 0 from z, the rest from z2
        ws = torch.cat([G_ema.map(ref["z"])[:, :1], G_ema.map(ref["z2"])[:, 1:]], dim=1)
        _close(_package_range(G_ema.synthesis(ws, noise=ref["noise"])), ref["img_mixed"])
        # D reads [-1, 1] and scores realness: the package's logit of the [0, 1] image, negated
        _close(-m.D(ref["d_in"] * 2 - 1), ref["d_logits"])
    # the public generate: the package's clamped [0, 1] images, mapped to [-1, 1]
    _close(m.generate(z=ref["z"], noise=ref["noise"]), ref["img_ema"].clamp(0, 1) * 2 - 1)
    _close(m.generate(z=ref["z"], noise=ref["noise"], ema=False), ref["img_g"].clamp(0, 1) * 2 - 1)
    assert (ref["img_g"] - ref["img_ema"]).abs().max() > 0.2  # the two generators differ


@pytest.mark.parametrize("case", RUNS)
def test_truncation_around_a_given_mean_w_reproduces_the_package(imported, case):
    ref, m = reference(case), ganforge.load(imported[case]).model
    m.generator().w_avg.copy_(ref["w_mean"][0])
    got = m.generate(z=ref["z"], noise=ref["noise"], truncation=0.75)
    _close(got, ref["img_psi075"] * 2 - 1)
    _close(m.generate(z=ref["z"], noise=ref["noise"], truncation=1.0), ref["img_psi1"] * 2 - 1)
    assert (ref["img_psi075"] - ref["img_psi1"]).abs().max() > 0.1


def test_the_architecture_is_read_from_the_tensors():
    plain = read_checkpoint(FIXTURES / "rgb16_noconst" / "model_10.pt").arch
    # latent size and depth are in no config; D's widths were cut by fmap_max 16, G's were not
    assert (plain["z_dim"], plain["mapping_layers"], plain["no_const"]) == (32, 3, True)
    assert (plain["network_capacity"], plain["d_network_capacity"], plain["d_fmap_max"]) == (
        2,
        2,
        16,
    )
    attn = read_checkpoint(FIXTURES / "attn32" / "model_3.pt").arch
    assert (attn["resolution"], attn["z_dim"], attn["mapping_layers"]) == (32, 24, 2)
    assert (attn["attn_layers"], attn["lr_mlp"], attn["d_fmap_max"]) == ([1], 0.2, 32)
    rgba = read_checkpoint(FIXTURES / "rgba16" / "model_3.pt")
    assert rgba.channels == 4 and rgba.arch["network_capacity"] == 1
    assert rgba.version == "1.9.0"


def test_import_fixes_the_truncation_centre_and_records_the_source(imported, tmp_path):
    m = ganforge.load(imported["rgb16_noconst"]).model
    G, G_ema = m.generator(ema=False), m.generator()
    # each generator's own mean w of 2,000 latents from seed 0, the same on every import
    assert torch.allclose(G_ema.w_avg, G_ema.mean_w(2000, 0), atol=1e-6)
    assert (G.w_avg - G_ema.w_avg).abs().max() > 1e-3
    again = ganforge.load(import_stylegan2_pytorch(FIXTURES / "rgb16_noconst", tmp_path / "b"))
    assert torch.equal(again.model.generator().w_avg, G_ema.w_avg)
    meta = json.loads(
        next((imported["rgb16_noconst"] / "checkpoints").glob("*/meta.json")).read_text()
    )
    record = meta["imported"]
    assert record["format"] == "stylegan2_pytorch" and record["package_version"] == "1.9.0"
    assert record["from"] == "model_10.pt"  # the folder's newest, by number (not model_2)
    assert record["package_config"]["image_size"] == 16


def test_omitted_noise_is_drawn_from_the_seed_after_the_latents(imported):
    m = ganforge.load(imported["attn32"]).model
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(3, m.cfg.z_dim, generator=gen)
    noise = torch.rand(3, 32, 32, 1, generator=gen)
    assert torch.equal(m.generate(3, seed=5), m.generate(z=z, noise=noise))
    assert not torch.equal(m.generate(3, seed=5), m.generate(3, seed=6))
    # same latents, other noise: the noise image matters; "none" is a zero image
    other = m.generate(z=z, noise=torch.rand(3, 32, 32, 1))
    assert (other - m.generate(z=z, noise=noise)).abs().max() > 0.05
    assert torch.equal(
        m.generate(z=z, noise_mode="none"), m.generate(z=z, noise=torch.zeros(3, 32, 32, 1))
    )
    with pytest.raises(UserError, match=r"give \[3, 32, 32, 1\]"):
        m.generate(z=z, noise=torch.rand(3, 1, 32, 32))


# ----- the seeds' ModelLoader -----------------------------------------------------------------
@pytest.mark.parametrize("case", [*RUNS, "rgba16"])
def test_model_loader_gives_the_package_images_in_zero_one(case):
    ref = reference(case)
    loader = ModelLoader(name=case, load_model=True, base_dir=FIXTURES, device="cpu")
    assert loader.checkpoint.name == NEWEST[case]
    images = loader.generate(ref["z"], noise=ref["noise"])
    _close(images, ref["img_ema"].clamp(0, 1))  # RGBA for the transparent network
    assert images.min() >= 0 and images.max() <= 1
    _close(loader.noise_to_styles(ref["z"]), ref["w_ema"])
    _close(loader.styles_to_images(ref["w_ema"], noise=ref["noise"]), images)
    loader.generator.w_avg.copy_(ref["w_mean"][0])
    _close(loader.generate(ref["z"], noise=ref["noise"], truncation=0.75), ref["img_psi075"])


def test_model_loader_runs_the_seeds_code(tmp_path):
    # the package's own layout, base_dir/models/NAME, and numpy latents as a seed may give them
    shutil.copytree(FIXTURES / "rgb16_noconst", tmp_path / "models" / "ffhq")
    model = ModelLoader(name="ffhq", load_model=False, base_dir=tmp_path, device="cpu")
    assert model.checkpoint is None  # read on first use
    latent_vectors = np.random.default_rng(0).standard_normal((5, 32))
    torch.manual_seed(0)
    images = model.generate(latent_vectors)
    assert images.shape == (5, 3, 16, 16) and images.device.type == "cpu"
    torch.manual_seed(0)  # the noise comes from torch's global RNG, as in the package
    assert torch.equal(images, model.generate(latent_vectors))
    assert not torch.equal(images, model.generate(latent_vectors))
    with pytest.raises(UserError, match=r"this network takes \[n, 32\]"):
        model.generate(np.zeros((5, 512)))
    with pytest.raises(UserError, match="no model folder 'celeba'"):
        ModelLoader(name="celeba", base_dir=tmp_path)


# ----- the family: the package's objective ----------------------------------------------------
def test_the_lazy_penalty_is_the_packages_gradient_penalty(imported):
    """R1 with gamma 20 every 4 steps, in [-1, 1] pixels, is the package's
    ``10 |grad_x D(x)|^2`` on [0, 1] images (added every 4th D step)."""
    m = ganforge.load(imported["rgb16_noconst"]).model
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x01 = x.clone().requires_grad_(True)
    package_logits = -m.D(x01 * 2 - 1)
    (grad,) = torch.autograd.grad(package_logits.sum(), x01)
    package_gp = 10 * grad.flatten(1).norm(dim=1).square().mean()
    ours = m.d_reg_step({"image": x * 2 - 1}, {})["r1"]
    assert torch.allclose(ours, package_gp, rtol=1e-4), (ours, package_gp)
    assert (m.cfg.loss, m.cfg.reg.r1, m.cfg.reg.r2, m.cfg.reg.every) == ("hinge", 20.0, 20.0, 4)


def test_attention_norm_by_hand():
    """Channels (1, 3) at one pixel: mean 2, variance 1; 1.8.8+ divides by sqrt(var + eps),
    1.8.0-1.8.7 by std + eps."""
    x = torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1)
    new, old = ChannelNorm(2)(x).flatten(), ChannelNorm(2, legacy=True)(x).flatten()
    assert torch.allclose(new, torch.tensor([-1.0, 1.0]) / (1 + 1e-5) ** 0.5, atol=0, rtol=1e-7)
    assert torch.allclose(old, torch.tensor([-1.0, 1.0]) / (1 + 1e-5), atol=0, rtol=1e-7)


def test_mean_w_is_the_mean_of_the_mapped_latents():
    m = ganforge.create_model("stylegan2-pytorch", "tiny")
    G: Generator = m.generator()
    z = torch.randn(300, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(G.mean_w(300, 3, batch=128), G.mapping(z).mean(0), atol=1e-6)


def test_commands_on_an_imported_run(imported, tmp_path, capsys):
    run = str(imported["attn32"])
    out = tmp_path / "grid.png"
    assert main(["sample", run, "--n", "4", "--truncation", "0.7", "--out", str(out)]) == 0
    assert np.asarray(Image.open(out)).shape[0] > 2 * 32  # a 2 x 2 grid
    gif = tmp_path / "walk.gif"
    assert main(["interpolate", run, "--seeds", "1,2", "--frames", "3", "--out", str(gif)]) == 0
    assert Image.open(gif).n_frames == 3
    mix = tmp_path / "mix.png"
    assert main(["mix", run, "--rows", "1", "--cols", "2", "--layers", "0", "--out", str(mix)]) == 0
    capsys.readouterr()


# ----- refusals: one line, nothing written ----------------------------------------------------
def _copy(case: str, tmp_path: Path) -> Path:
    folder = tmp_path / case
    shutil.copytree(FIXTURES / case, folder)
    return folder


def _rewrite(path: Path, **changes) -> None:
    data = torch.load(path, weights_only=True)
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    torch.save(data, path)


def _refused(path: Path, out: Path, message: str) -> None:
    with pytest.raises(UserError) as info:
        import_stylegan2_pytorch(path, out)
    text = str(info.value)
    assert message in text and "\n" not in text, text
    assert not out.exists()


def test_bad_checkpoints_are_refused_in_one_line(tmp_path):
    out = tmp_path / "run"
    folder = _copy("attn32", tmp_path)
    config = json.loads((folder / ".config.json").read_text())
    (folder / ".config.json").unlink()
    _refused(folder / "model_3.pt", out, f"'{folder / '.config.json'}' is missing")
    (folder / ".config.json").write_text(json.dumps({**config, "fq_layers": [1]}))
    _refused(folder, out, "vector quantization in D (fq_layers [1]) is not supported")
    (folder / ".config.json").write_text(json.dumps({**config, "image_size": 64}))
    _refused(folder, out, "says image_size 64")
    (folder / ".config.json").write_text(json.dumps(config))
    _rewrite(folder / "model_3.pt", version="2.0.0")
    _refused(folder, out, "written by stylegan2_pytorch 2.0.0; supported versions: 1.2.5 to")
    _rewrite(folder / "model_3.pt", version="1.8.3")  # instance-norm attention
    _refused(folder, out, "supported versions with attn_layers: 1.8.0 to 1.8.2 and 1.8.5")
    _rewrite(folder / "model_3.pt", version=None)
    _refused(folder, out, "records no package version (written before 1.2.5)")
    _refused(_copy("rgba16", tmp_path), out, "transparent (RGBA) networks cannot become a run")


def test_an_older_supported_version_uses_its_attention_norm(tmp_path):
    folder = _copy("attn32", tmp_path)
    _rewrite(folder / "model_3.pt", version="1.8.7")
    assert read_checkpoint(folder).arch["attn_norm_legacy"] is True
    assert read_checkpoint(FIXTURES / "attn32").arch["attn_norm_legacy"] is False


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = _copy("rgba16", tmp_path)
    torch.save({"GAN": {"S.net.0.weight": Payload()}, "version": "1.9.0"}, folder / "model_4.pt")
    _refused(folder, tmp_path / "run", "not a checkpoint torch can read without executing code")
    assert not marker.exists()


def test_an_existing_run_is_never_overwritten(imported):
    with pytest.raises(UserError, match="already holds a run"):
        import_stylegan2_pytorch(FIXTURES / "attn32", imported["attn32"])


def test_the_import_command_and_a_checkpoint_without_its_config(tmp_path, capsys):
    argv = ["import", "stylegan2-pytorch", str(FIXTURES / "attn32"), "--out", str(tmp_path / "ok")]
    assert main(argv) == 0
    assert ganforge.load(tmp_path / "ok").generate(2, seed=0).shape[0] == 2
    folder = tmp_path / "x"
    shutil.copytree(FIXTURES / "attn32", folder)
    (folder / ".config.json").unlink()
    argv = ["import", "stylegan2-pytorch", str(folder / "model_3.pt"), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert ".config.json' is missing" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "r").exists()
