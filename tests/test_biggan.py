"""BigGAN: BigGAN-PyTorch's state dicts imported exactly, the truncation trick, standing
statistics, the orthogonal regularization, the architecture's counts, and the commands."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import ganforge
from ganforge.api import import_network
from ganforge.cli import main
from ganforge.config import build_config
from ganforge.data import DataSpec
from ganforge.errors import UserError
from ganforge.models import get_family
from ganforge.models.biggan import orthogonal_penalty, truncated_normal_
from ganforge.nn.spectral import SNConv2d
from ganforge.tools.biggan_state import read_biggan_files
from ganforge.tools.latent import interpolate

FIXTURES = Path(__file__).parent / "fixtures" / "biggan"
CASES = ["i128_shared_hier", "c32_plain", "i64_shared_attn32"]
QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


def reference(case: str) -> dict[str, torch.Tensor]:
    with safe_open(FIXTURES / f"{case}_ref.safetensors", "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iter


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    return {
        case: import_network("biggan", FIXTURES / f"{case}_G.pth", root / case) for case in CASES
    }


def _close(ours: torch.Tensor, theirs: torch.Tensor, atol: float = 1e-4) -> float:
    err = (ours - theirs).abs().max().item()
    assert err <= atol, err
    return err


# ----- the published format -----------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_imported_generator_and_discriminator_reproduce_the_reference(imported, case):
    ref, m = reference(case), ganforge.load(imported[case]).model
    G, D = m.generator(ema=False).eval(), m.D.eval()
    with torch.no_grad():
        _close(G(ref["z"], ref["y"]), ref["img"])
        _close(G(ref["z_trunc"], ref["y"]), ref["img_trunc"])
        logits = D(ref["img"], ref["y"])
    # c32's D reaches 140: 1e-4 of the largest logit, which float32 sums can move by
    scale = max(1.0, ref["d_out"].abs().max().item())
    _close(logits, ref["d_out"].flatten(), 1e-6 * scale + 1e-4)
    if "interp" in ref:
        with torch.no_grad():
            _close(G(ref["interp_z"], ref["interp_y"]), ref["interp"])


def test_the_average_generator_and_batch_statistics_reproduce_the_reference(imported):
    ref = reference("i128_shared_hier")
    g = ganforge.load(imported["i128_shared_hier"])
    # G_ema.pth beside G.pth becomes the run's average; the public generate uses it
    _close(g.generate(z=ref["z"], labels=ref["y"].tolist()), ref["img_ema"].clamp(-1, 1))
    # in training mode BN takes the batch's statistics (and SN updates u), as the reference
    G = copy.deepcopy(g.model.generator(ema=False)).train()
    with torch.no_grad():
        _close(G(ref["z"], ref["y"]), ref["img_train_bn"])


def test_the_architecture_is_read_from_the_tensors(imported):
    arch = read_biggan_files(FIXTURES / "i128_shared_hier_G.pth").arch
    assert arch["resolution"] == 128 and arch["g_ch"] == 4 and arch["d_ch"] == 4
    assert (arch["z_dim"], arch["shared_dim"], arch["hier"]) == (120, 16, True)
    assert arch["g_attn"] == [64] and arch["d_attn"] == [32]
    # 100 = 5 chunks of 20 at 64 px, read from the linear layer and the BN's input size
    assert read_biggan_files(FIXTURES / "i64_shared_attn32_G.pth").arch["z_dim"] == 100
    plain = read_biggan_files(FIXTURES / "c32_plain_G.pth").arch
    assert (plain["shared"], plain["hier"], plain["g_attn"], plain["z_dim"]) == (
        False,
        False,
        [],
        128,
    )
    spec = ganforge.load(imported["i128_shared_hier"]).spec
    assert (spec.channels, spec.resolution, spec.num_classes) == (3, 128, 12)


def test_a_real_state_dict_pth_that_torch_refuses_is_ignored(tmp_path):
    # a genuine train.py state_dict.pth holds nn.ReLU objects and numpy scalars: it is never
    # unpickled for real; the tensors alone give the architecture
    for part in ("G", "D"):
        shutil.copy(FIXTURES / f"i64_shared_attn32_{part}.pth", tmp_path / f"{part}.pth")
    shutil.copy(FIXTURES / "i128_shared_hier_state_dict_full.pth", tmp_path / "state_dict.pth")
    files = read_biggan_files(tmp_path / "G.pth")
    assert files.config is None and files.D is not None and files.G_ema is None
    readable = read_biggan_files(FIXTURES / "i128_shared_hier_G.pth")
    assert readable.config["SN_eps"] == 1e-6 and readable.arch["sn_eps"] == 1e-6


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save(
        {"linear.weight": Payload()}, tmp_path / "G.pth", _use_new_zipfile_serialization=True
    )
    assert main(["import", "biggan", str(tmp_path / "G.pth"), "--out", str(tmp_path / "r")]) == 2
    assert not marker.exists() and not (tmp_path / "r").exists()


def test_import_mistakes_are_one_line(tmp_path, capsys):
    torch.save({"mapping.fc0.weight": torch.zeros(2, 2)}, tmp_path / "G.pth")
    shutil.copy(FIXTURES / "c32_plain_D.pth", tmp_path / "D.pth")
    cases = {
        "G.pth": "expected keys linear.weight, blocks.0.0.conv1.weight",
        "D.pth": "holds a discriminator",
        "gen.pkl": "give BigGAN-PyTorch's G.pth or G_ema.pth",
    }
    (tmp_path / "gen.pkl").write_bytes(b"x")
    for name, message in cases.items():
        assert main(["import", "biggan", str(tmp_path / name), "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress line
        assert err.startswith("ganforge: error:") and message in err, err
    assert not (tmp_path / "r").exists()


# ----- sampling -------------------------------------------------------------------------------
def test_truncation_redraws_only_the_entries_outside_the_threshold():
    z = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    inside = z.abs() <= 0.5
    kept = z.clone()
    truncated_normal_(z, 0.5, torch.Generator().manual_seed(1))
    assert z.abs().max() <= 0.5
    assert torch.equal(z[inside], kept[inside]) and not torch.equal(z, kept)
    # a truncated normal, not a scaled one: its variance at t=1 is 1 - 2 phi(1) / (2 Phi(1) - 1)
    big = truncated_normal_(torch.randn(200_000, generator=torch.Generator().manual_seed(2)), 1.0)
    assert abs(big.var().item() - 0.2911) < 0.005
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(UserError, match="must be positive"):
            truncated_normal_(torch.zeros(2), bad)


def test_generate_with_a_seed_and_truncation_is_repeatable_and_uses_the_truncated_z(imported):
    g = ganforge.load(imported["c32_plain"])
    a = g.generate(4, labels=3, seed=7, truncation=0.5)
    assert torch.equal(a, g.generate(4, labels=3, seed=7, truncation=0.5))
    gen = torch.Generator().manual_seed(7)
    z = truncated_normal_(torch.randn(4, 128, generator=gen), 0.5, gen)
    assert torch.equal(a, g.generate(z=z, labels=3))
    assert not torch.equal(a, g.generate(4, labels=3, seed=7))


def test_standing_statistics_are_the_average_over_batches_of_g(imported):
    g = ganforge.load(imported["i64_shared_attn32"])
    m = g.model
    net = m.generator()
    u_before = {k: v.clone() for k, v in net.state_dict().items() if k.endswith("u0")}
    m.accumulate_standing_stats(batches=2, batch_size=6, truncation=0.8, seed=3)
    # bn1 of the first block normalises linear(z chunk 0): its statistics can be redone by hand
    gen, means, variances = torch.Generator().manual_seed(3), [], []
    for i in range(2):
        labels = (torch.arange(6) + 6 * i) % m.spec.num_classes
        z, _ = m.truncated_inputs(m.generator_inputs(6, labels, gen), 0.8, gen)
        with torch.no_grad():
            h = net.linear(z[:, : net.z_chunk]).view(6, -1, 4, 4)
        means.append(h.mean((0, 2, 3)))
        variances.append(h.var((0, 2, 3)))
    bn = net.blocks[0][0].bn1
    _close(bn.stored_mean, torch.stack(means).mean(0), 1e-5)
    _close(bn.stored_var, torch.stack(variances).mean(0), 1e-4)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in u_before.items())
    assert "standing statistics" in m.training_notes()


def test_walks_blend_the_shared_embedding_between_classes(imported):
    g = ganforge.load(imported["i128_shared_hier"])
    frames = interpolate(g, [1, 1], 5, labels=[0, 3])
    _close(frames[0:1], g.generate(1, labels=0, seed=1), 1e-5)
    _close(frames[4:5], g.generate(1, labels=3, seed=1), 1e-5)
    G = g.model.generator()
    blend = torch.lerp(G.shared(torch.tensor([0])), G.shared(torch.tensor([3])), 0.5)
    with torch.no_grad():
        z = g.model.generator_inputs(1, torch.tensor([0]), torch.Generator().manual_seed(1))[0]
        _close(frames[2:3], G(z, blend).clamp(-1, 1), 1e-5)


# ----- the networks and the objective --------------------------------------------------------
def test_brock128_has_the_published_networks_sizes():
    cfg = build_config("biggan", "brock128")
    spec = DataSpec(channels=3, resolution=128, num_classes=1000, name="imagenet")
    family = get_family("biggan")
    with torch.device("meta"):
        nets = family.build(type("M", (), {"cfg": cfg.family, "spec": spec})())
    G, D = nets["G"], nets["D"]
    # the counts of BigGAN-PyTorch's own ImageNet 128 networks (in the fixtures' README)
    assert sum(p.numel() for p in G.parameters()) == 70_433_988
    assert sum(p.numel() for p in D.parameters()) == 87_982_370


def test_orthogonal_penalty_by_hand():
    w = torch.nn.Parameter(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    # W W^T = [[1, 1], [1, 2]]; off the diagonal: two 1s; 0.5 * beta * 2 = beta
    loss = orthogonal_penalty([w], 0.25)
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    # the reference's fast form: 2 beta ((W W^T) * (1 - I)) W = 0.5 * [[1, 1], [1, 0]]
    assert torch.allclose(w.grad, torch.tensor([[0.5, 0.5], [0.5, 0.0]]))


def test_orthogonal_regularization_skips_the_shared_embedding_and_vectors():
    m = get_family("biggan")(build_config("biggan", "tiny").family, _spec())
    names = {id(p): n for n, p in m.G.named_parameters()}
    from ganforge.models.biggan import _ortho_params

    chosen = {names[id(p)] for p in _ortho_params(m.G)}
    assert "shared.weight" not in chosen and "linear.weight" in chosen
    assert "blocks.0.0.bn1.gain.weight" in chosen
    assert not any(n.endswith(("bias", "gamma", "output_layer.0.gain")) for n in chosen)


def test_spectral_norm_bounds_the_largest_singular_value_by_one():
    conv = SNConv2d(4, 6, 3)
    with torch.no_grad():
        for _ in range(60):  # power iterations converge over training steps
            conv(torch.zeros(1, 4, 3, 3))
        w = conv.normalized_weight().reshape(6, -1)
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=1e-3)
    conv.eval()
    u = conv.u0.clone()
    conv(torch.zeros(1, 4, 3, 3))
    assert torch.equal(u, conv.u0)  # eval mode leaves the stored vector alone


def test_spectral_norm_scope_reaches_g_only_when_asked():
    def normed(cfg_over):
        cfg = build_config("dcgan", "tiny", overrides=cfg_over)
        m = get_family("dcgan")(cfg.family, _spec(classes=0))
        return [
            any(hasattr(mod, "parametrizations") for mod in net.modules()) for net in (m.G, m.D)
        ]

    assert normed([("spectral_norm", "true")]) == [False, True]
    assert normed([("spectral_norm", "true"), ("spectral_norm_scope", "both")]) == [True, True]
    biggan = get_family("biggan")(build_config("biggan", "tiny").family, _spec())
    assert hasattr(biggan.G.linear, "u0") and hasattr(biggan.D.linear, "u0")


def test_ema_copies_until_its_start_and_then_averages():
    m = get_family("biggan")(
        build_config("biggan", "tiny", overrides=[("ema_start", "5")]).family, _spec()
    )
    assert m.ema_beta(5 * 8, 8) == 0.0  # step 4
    assert m.ema_beta(6 * 8, 8) == m.cfg.ema_decay


def test_z_must_split_into_the_chunks():
    with pytest.raises(UserError, match="4 equal chunks"):
        build_config("biggan", "tiny", overrides=[("z_dim", "18")])


def _spec(classes: int = 10) -> DataSpec:
    return DataSpec(channels=1, resolution=32, num_classes=classes, name="synthetic")


# ----- the commands ---------------------------------------------------------------------------
def test_sample_and_interpolate_commands_on_an_imported_run(imported, tmp_path, capsys):
    run = str(imported["c32_plain"])
    out = tmp_path / "grid.png"
    argv = ["sample", run, "--class", "9", "--n", "4", "--truncation", "0.5", "--out", str(out)]
    assert main([*argv, "--standing-stats"]) == 0
    height, width = np.asarray(Image.open(out)).shape[:2]
    assert height == width > 2 * 32  # a 2 x 2 grid
    gif = tmp_path / "walk.gif"
    argv = ["interpolate", run, "--seeds", "1,2", "--class", "2,5", "--frames", "4"]
    assert main([*argv, "--out", str(gif)]) == 0
    assert Image.open(gif).n_frames == 4
    capsys.readouterr()
    bad = {
        "--truncation": (["--truncation", "0"], "must be positive"),
        "--class": (["--class", "10"], "class 10 is out of range"),
        "--translate": (["--translate=0.1,0"], "move StyleGAN3's Fourier features"),
    }
    for extra, message in bad.values():
        assert main(["sample", run, "--n", "2", *extra, "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_standing_stats_is_refused_for_families_without_them(tmp_path, capsys):
    run = tmp_path / "dcgan"
    ganforge.train(
        "dcgan",
        preset="tiny",
        dataset="digits",
        steps=1,
        out=run,
        overrides={"train.progress": False, "train.tensorboard": False},
    )
    assert main(["sample", str(run), "--n", "2", "--standing-stats"]) == 2
    assert "biggan" in capsys.readouterr().err


def test_train_tiny_from_the_command_line(tmp_path):
    run = tmp_path / "b"
    argv = ["train", "biggan", "--preset", "tiny", "--dataset", "digits", "--steps", "3"]
    assert main([*argv, "--out", str(run), *QUIET]) == 0
    g = ganforge.load(run)
    images = g.generate(4, labels=[0, 1, 2, 3], truncation=1.0)
    assert images.shape == (4, 1, 32, 32) and images.abs().max() <= 1
