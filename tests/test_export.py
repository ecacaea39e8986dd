"""`ganforge export`: a run's generator handed on as a folder, and `ganforge.load` of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _families import tiny_data
from PIL import Image
from safetensors.torch import load_file

import ganforge
from ganforge.cli import main
from ganforge.config import build_config
from ganforge.engine.trainer import Trainer
from ganforge.errors import UserError


@pytest.fixture
def dcgan_run(tmp_path):
    cfg = build_config(
        "dcgan",
        "tiny",
        overrides=[
            ("train.steps", 2),
            ("train.progress", False),
            ("train.tensorboard", False),
        ],
    )
    run = tmp_path / "run"
    run.mkdir()
    Trainer(cfg, run, data=tiny_data("dcgan")).fit()
    (run / "eval.json").write_text(json.dumps({"metrics": {"fid": 12.5}, "n": 500, "seed": 3}))
    return run


def test_export_round_trip_is_bitwise_and_holds_the_ema_generator_only(dcgan_run, tmp_path):
    out = ganforge.export(dcgan_run, tmp_path / "handed-on", n=4)
    run = ganforge.load(dcgan_run)
    tensors = load_file(str(out / "model.safetensors"))
    expected = run.model.generator().state_dict()
    assert sorted(tensors) == sorted(expected)  # G_ema's tensors, no D, no optimizer
    assert all(torch.equal(tensors[k], expected[k]) for k in expected)
    info = json.loads((out / "config.json").read_text())
    assert (info["family"], info["step"], info["preset"]) == ("dcgan", 2, "tiny")
    card = (out / "README.md").read_text()
    assert "- fid: 12.5" in card and '"n": 500' in card and "license:" in card
    assert (out / "samples.png").is_file()
    again = ganforge.load(out)
    assert again.step == 2
    assert torch.equal(again.generate(5, seed=7), run.generate(5, seed=7))
    assert sorted(p.name for p in out.parent.iterdir()) == ["handed-on", "run"]  # no temp left


def test_export_refuses_a_non_empty_folder(dcgan_run, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    assert main(["export", str(dcgan_run), str(taken)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is taken
    assert main(["export", str(dcgan_run), str(empty)]) == 0
    assert sorted(p.name for p in empty.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "samples.png",
    ]


def test_an_export_whose_tensors_do_not_fit_is_refused(dcgan_run, tmp_path):
    out = ganforge.export(dcgan_run, tmp_path / "out", n=4)
    info = json.loads((out / "config.json").read_text())
    info["config"]["z_dim"] = 2 * info["config"]["z_dim"]  # G's first layer no longer fits
    (out / "config.json").write_text(json.dumps(info))
    with pytest.raises(ganforge.UserError, match="does not fit a dcgan"):
        ganforge.load(out)


def test_a_cyclegan_export_translates_a_to_b_as_the_run_does(tmp_path):
    cfg = build_config(
        "cyclegan",
        "tiny",
        overrides=[("train.steps", 1), ("train.progress", False), ("train.tensorboard", False)],
    )
    run = tmp_path / "run"
    run.mkdir()
    Trainer(cfg, run, data=tiny_data("cyclegan")).fit()
    out = ganforge.export(run, tmp_path / "out", n=6)
    images = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = ganforge.load(run).translate(images)
    assert torch.equal(ganforge.load(out).translate(images), expected)


def test_sample_seeds_writes_one_image_per_seed_as_generate_draws_it(dcgan_run, tmp_path):
    from ganforge.images import to_uint8

    seed9 = to_uint8(ganforge.load(dcgan_run).generate(1, seed=9))[0]  # [28, 28, 1] uint8
    pngs, npz = tmp_path / "p", tmp_path / "z"
    sample = ["sample", str(dcgan_run), "--seeds"]
    assert main([*sample, "3-5,9", "--outdir", str(pngs)]) == 0
    names = sorted(p.name for p in pngs.iterdir())
    assert names == ["seed0003.png", "seed0004.png", "seed0005.png", "seed0009.png"]
    pixels = np.asarray(Image.open(pngs / "seed0009.png")).reshape(28, 28, 1)
    assert np.array_equal(pixels, seed9)
    assert main([*sample, "4,9", "--outdir", str(npz), "--format", "npz"]) == 0
    stored = np.load(npz / "images.npz")
    assert stored["seeds"].tolist() == [4, 9] and stored["images"].shape == (2, 28, 28, 1)
    assert np.array_equal(stored["images"][1], seed9)
    # the same call again would replace images.npz: refused, and so is --seeds without --outdir
    assert main([*sample, "4", "--outdir", str(npz), "--format", "npz"]) == 2
    assert main([*sample, "4"]) == 2


def test_the_model_card_quotes_the_commands_that_trained_the_run(tmp_path):
    run = tmp_path / "run"
    quiet = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]
    first = ["train", "dcgan", "--preset", "tiny", "--dataset", "digits", "--out", str(run)]
    assert main([*first, "--steps", "1", *quiet]) == 0
    assert main(["train", "dcgan", "--resume", "--out", str(run), "--steps", "2", *quiet]) == 0
    sessions = (run / "commands.txt").read_text().splitlines()
    assert sessions[0] == "step 0: ganforge " + " ".join([*first, "--steps", "1", *quiet])
    assert sessions[1].startswith("step 1: ganforge train dcgan --resume")
    card = (ganforge.export(run, tmp_path / "out", n=4) / "README.md").read_text()
    assert all(f"  - `{line}`" in card for line in sessions)


def _fake_hub(monkeypatch, download):
    """A stand-in ``huggingface_hub`` module whose snapshot_download is ``download``."""
    import sys
    import types

    module = types.ModuleType("huggingface_hub")
    module.snapshot_download = download
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)


def test_load_takes_a_hub_id_of_an_export(dcgan_run, tmp_path, monkeypatch):
    exported = ganforge.export(dcgan_run, tmp_path / "exported", n=4)
    calls = []

    def download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, sorted(allow_patterns)))
        return str(exported)

    _fake_hub(monkeypatch, download)
    monkeypatch.chdir(tmp_path)  # no local folder called someone/dcgan
    g = ganforge.load("someone/dcgan@v1")
    assert calls == [
        ("someone/dcgan", "v1", ["README.md", "config.json", "model.safetensors", "samples.png"])
    ]
    assert torch.equal(g.generate(3, seed=1), ganforge.load(dcgan_run).generate(3, seed=1))


def test_a_hub_id_without_the_package_or_the_network_is_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(UserError, match=r"does not exist \(to load a Hugging Face Hub id"):
        ganforge.load("someone/dcgan")

    def offline(repo_id, revision=None, allow_patterns=None):
        raise ConnectionError("Name or service not known\nmore lines of detail")

    _fake_hub(monkeypatch, offline)
    with pytest.raises(UserError, match="cannot be fetched") as err:
        ganforge.load("someone/dcgan")
    assert "\n" not in str(err.value) and "ConnectionError: Name or service not known" in str(
        err.value
    )
    not_an_export = tmp_path / "plain"
    not_an_export.mkdir()
    _fake_hub(monkeypatch, lambda repo_id, revision=None, allow_patterns=None: not_an_export)
    with pytest.raises(UserError, match="holds no GANForge export"):
        ganforge.load("someone/dcgan")
