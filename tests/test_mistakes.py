"""User mistakes: each is one line naming the value and what to do, exit code 2 on the CLI."""

from __future__ import annotations

import pytest
import torch

import ganforge
from ganforge.api import evaluate_run
from ganforge.cli import main
from ganforge.errors import UserError

QUIET = {"train.progress": False, "train.tensorboard": False, "train.checkpoint_every": 1}
TRAIN = ["train", "dcgan", "--preset", "tiny", "--dataset", "digits", "--steps", "1"]
TRAIN += ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for family in ("dcgan", "cgan"):
        out = root / family
        ganforge.train(family, preset="tiny", dataset="digits", steps=1, batch_size=8, out=out,
                       overrides=QUIET)  # fmt: skip
        made[family] = out
    return made


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


def test_cli_mistakes_are_one_line_each(tmp_path, runs, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    folder = tmp_path / "folder"
    folder.mkdir()
    binary = tmp_path / "settings.yaml"
    binary.write_bytes(bytes(range(128, 256)))
    cases = [
        ([*TRAIN, "--out", str(afile)], "is a file, not a folder"),
        ([*TRAIN, "--out", str(afile / "run")], "afile/run"),
        ([*TRAIN, "--set", "betas=[0.5, 1.5]", "--out", str(tmp_path / "b")], "[0.5, 1.5]"),
        ([*TRAIN, "--set", "betas=[0.5,", "--out", str(tmp_path / "y")], "not a well-formed list"),
        ([*TRAIN, "--set", "d_dropout=1.5", "--out", str(tmp_path / "d")], "1.5 for d_dropout"),
        (["summary", "cgan", "--classes", "-3"], "--classes -3"),
        ([*TRAIN, "--config", str(folder), "--out", str(tmp_path / "f")], "is a folder"),
        ([*TRAIN, "--config", str(binary), "--out", str(tmp_path / "t")], "is not text"),
        (["sample", str(runs["dcgan"]), "--n", "4", "--out", str(folder)], "is a folder"),
        (["sample", str(runs["dcgan"]), "--out", str(afile / "x.png")], "which is a file"),
    ]
    for argv, said in cases:
        assert said in _refused(argv, capsys), argv
    assert list(folder.iterdir()) == [] and afile.read_text() == "mine"  # nothing written


def test_a_seed_beyond_64_bits_is_refused_by_the_parser_and_the_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        main([*TRAIN, "--seed", str(2**64 + 1), "--out", str(tmp_path / "s")])
    assert refused.value.code == 2
    assert f"use a seed from 0 to 2^32 - 1, got {2**64 + 1}" in capsys.readouterr().err
    with pytest.raises(UserError, match="for train.seed"):
        ganforge.train("dcgan", preset="tiny", dataset="digits", seed=2**64, out=tmp_path / "p")
    with pytest.raises(UserError, match=f"--seed {2**32}: use a seed from 0 to 2"):
        evaluate_run(fake=str(tmp_path / "none.npz"), dataset="digits", seed=2**32)


@pytest.mark.parametrize(
    ("family", "kwargs", "said"),
    [
        ("dcgan", {"n": "8"}, "n must be a whole number of images, got '8'"),
        ("dcgan", {"n": 2.5}, "got 2.5"),
        ("dcgan", {"n": True}, "got True"),
        ("cgan", {"n": 4, "labels": "3"}, "got '3'"),
        ("cgan", {"n": 4, "labels": True}, "got True"),
        ("cgan", {"n": 2, "labels": [1.0, 2.5]}, "got [1.0, 2.5]"),
        ("cgan", {"n": 2, "labels": torch.tensor([1.5, 2.0])}, "got torch.float32 values"),
        ("dcgan", {"z": torch.full((2, 16), float("nan"))}, "NaN or infinite"),
        ("dcgan", {"n": 2, "noise_mode": "foo"}, "unknown noise mode 'foo'"),
    ],
)
def test_generate_refuses_arguments_of_the_wrong_kind(runs, family, kwargs, said):
    model = ganforge.load(runs[family])
    with pytest.raises(UserError) as refused:
        model.generate(**kwargs)
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_generate_still_takes_the_right_kinds(runs):
    model = ganforge.load(runs["cgan"])
    for labels in (3, [1, 2, 3], torch.tensor([1, 2, 3]), None):
        assert model.generate(3, labels=labels, seed=0).shape == (3, 1, 28, 28)
    # tiny dcgan draws 16-dimensional z
    assert ganforge.load(runs["dcgan"]).generate(z=torch.zeros(2, 16)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("family", ["gan", "dcgan", "stylegan2", "srgan", "pix2pix"])
def test_networks_larger_than_memory_are_refused_before_anything_is_allocated(family, monkeypatch):
    """The weights are counted on the meta device against MemAvailable: with 1 KiB free even
    the tiny preset does not fit, and the refusal names its size; with the real memory, the
    same call builds (so the check counts, it does not always refuse)."""
    from ganforge.models import base

    assert ganforge.create_model(family, "tiny") is not None
    monkeypatch.setattr(base, "_available_memory", lambda: 1024)
    with pytest.raises(UserError, match=r"GiB of weights with this config, more than the 0\.0"):
        ganforge.create_model(family, "tiny")


def test_a_z_dim_of_a_billion_is_one_line(capsys):
    argv = ["train", "gan", "--preset", "tiny", "--dataset", "digits", "--set", "z_dim=1e9"]
    assert main([*argv, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "GiB of weights" in err and "lower z_dim" in err and err.count("\n") == 1


@pytest.mark.parametrize("where", ["under-a-file/grid.png", "no-such-root"])
def test_save_grid_to_an_impossible_path_is_a_user_error(tmp_path, where):
    blocker = tmp_path / "under-a-file"
    blocker.write_text("a file, not a folder")
    path = tmp_path / where if where != "no-such-root" else "/proc/no-such-folder/grid.png"
    with pytest.raises(UserError, match="cannot write image"):
        ganforge.save_grid(torch.zeros(4, 1, 8, 8), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["under-a-file"]  # no temp left


def test_a_folder_with_a_symlink_loop_or_no_images_is_no_class(tmp_path):
    import numpy as np
    from PIL import Image

    from ganforge.data import load_dataset

    for name in ("boots", "shirts"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "again").symlink_to(tmp_path / "loop", target_is_directory=True)
    (tmp_path / "empty").mkdir()
    data = load_dataset(f"folder:{tmp_path}", resolution=8)
    assert data.spec.class_names == ("boots", "shirts")
    assert data.labels.tolist() == [0, 0, 1, 1]


def test_a_path_the_file_system_refuses_is_one_line(tmp_path, capsys):
    too_long = tmp_path / ("x" * 300)  # a name over the 255 bytes file systems allow
    argv = ["train", "gan", "--preset", "tiny", "--dataset", "digits", "--steps", "1"]
    assert main([*argv, "--out", str(too_long)]) == 2
    err = capsys.readouterr().err
    assert "File name too long" in err and err.count("\n") == 1


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS"])
def test_a_full_disk_or_read_only_folder_stops_in_one_line_and_keeps_older_checkpoints(
    tmp_path, capsys, monkeypatch, code
):
    import errno
    import os

    from ganforge.engine import checkpoint

    run = tmp_path / "run"
    argv = ["train", "gan", "--preset", "tiny", "--dataset", "digits", "--out", str(run)]
    quiet = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]
    assert main([*argv, "--steps", "2", *quiet]) == 0
    before = checkpoint.read_checkpoint(run / "checkpoints" / "step-000002").weights

    def refuse(path, data):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(path))

    monkeypatch.setattr(checkpoint, "_write_bytes", refuse)
    capsys.readouterr()
    resume = ["train", "gan", "--resume", "--out", str(run), "--steps", "4", *quiet]
    assert main(resume) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ganforge: error:")]
    assert len(errors) == 1 and "Traceback" not in err  # the start lines, then one error
    assert "cannot write checkpoint" in errors[0] and os.strerror(getattr(errno, code)) in errors[0]
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["step-000002"]  # the older checkpoint, and no temporary folder
    after = checkpoint.read_checkpoint(run / "checkpoints" / "step-000002").weights
    assert all(torch.equal(before[k], after[k]) for k in before)
