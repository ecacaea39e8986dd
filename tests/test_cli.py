"""End-to-end: the ``ganforge`` command as a user runs it, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ganforge.cli import main

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ganforge", *args],
        capture_output=True,
        text=True,
        env={
            "GANFORGE_OFFLINE": "1",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
        },
    )


def test_train_resume_sample_end_to_end(tmp_path):
    out = tmp_path / "run"
    base = [
        "train",
        "cgan",
        "--preset",
        "tiny",
        "--dataset",
        "digits",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--set",
        "train.checkpoint_every=2",
        *QUIET,
    ]
    first = cli(*base, "--steps", "2")
    assert first.returncode == 0, first.stderr
    assert "steps: 2 at batch 16" in first.stdout
    assert (out / "summary.md").exists() and (out / "config.yaml").exists()
    again = cli(*base, "--steps", "4")
    assert again.returncode == 2
    assert "already holds a run" in again.stderr and "Traceback" not in again.stderr
    resumed = cli(*base, "--steps", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "from step-000002" in resumed.stderr
    meta = json.loads((out / "checkpoints/step-000004/meta.json").read_text())
    assert meta["step"] == 4 and meta["data_spec"]["name"] == "digits"
    grid = tmp_path / "grid.png"
    sampled = cli(
        "sample", str(out), "--n", "20", "--class", "7", "--seed", "1", "--out", str(grid)
    )
    assert sampled.returncode == 0, sampled.stderr
    img = Image.open(grid)
    # 20 tiles of 28px enlarged 2x with 2px borders (5 per row, 4 rows): (5*30+2)*2 x (4*30+2)*2
    assert img.size == ((5 * 30 + 2) * 2, (4 * 30 + 2) * 2)


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "dcgn"], "unknown model 'dcgn' (did you mean: dcgan"),
        (
            ["train", "dcgan", "--preset", "clasic32"],
            "unknown preset 'clasic32' for model 'dcgan' (did you mean: classic32?)",
        ),
        (["train", "dcgan", "--dataset", "fmnst"], "unknown dataset 'fmnst' (did you mean: fmnist"),
        (
            ["train", "dcgan", "--set", "lr_q=1"],
            "unknown config key 'lr_q' for model 'dcgan' (did you mean: lr_g, lr_d?)",
        ),
        (["train", "dcgan", "--set", "train.batch_sise=3"], "did you mean: train.batch_size"),
        (["train", "dcgan", "--batch-size", "0"], "invalid value 0 for train.batch_size"),
        (["train", "dcgan", "--set", "lr_g=-1e-4"], "invalid value -0.0001 for lr_g"),
        (
            ["train", "dcgan", "--set", "z_dim=abc"],
            "invalid value 'abc' for z_dim: expected an integer",
        ),
        (["train", "dcgan", "--set", "z_dim"], "--set expects key=value"),
        (
            ["train", "dcgan", "--config", "/nonexistent.yaml"],
            "config file '/nonexistent.yaml' does not exist",
        ),
        (["sample", "/nonexistent-run"], "run folder '/nonexistent-run' does not exist"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_code_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_data_says_how_to_get_it(tmp_path, capsys):
    assert main(["train", "dcgan", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--data-dir" in err and str(tmp_path) in err


def test_corrupt_data_file_is_named(tmp_path, capsys):
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 10)  # truncated header
    assert main(["train", "dcgan", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and err.count("\n") == 1


def test_sample_from_a_folder_without_checkpoints(tmp_path, capsys):
    assert main(["sample", str(tmp_path)]) == 2
    assert "no checkpoints" in capsys.readouterr().err


def test_config_file_and_overrides_in_order(tmp_path):
    from ganforge.api import resolve_run

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model: dcgan\npreset: tiny\nz_dim: 12\ntrain:\n  batch_size: 8\n")
    cfg, _ = resolve_run(
        "dcgan", config=cfg_file, out=tmp_path / "r", overrides=[("train.batch_size", "4")]
    )
    assert cfg.preset == "tiny" and cfg.family.z_dim == 12 and cfg.train.batch_size == 4
    assert cfg.family.g_channels == (16, 8, 8)  # from the tiny preset


def test_help_lists_every_train_option():
    text = cli("train", "--help").stdout
    for option in (
        "--preset",
        "--dataset",
        "--steps",
        "--batch-size",
        "--out",
        "--seed",
        "--config",
        "--set",
        "--resume",
        "--device",
        "--data-dir",
    ):
        assert option in text
    text = cli("sample", "--help").stdout
    for option in ("--n", "--class", "--seed", "--out"):
        assert option in text


def test_list_and_summary():
    listed = cli("list")
    assert listed.returncode == 0
    for name in ("gan", "dcgan", "cgan"):
        assert f"\n{name} " in "\n" + listed.stdout
    assert "folder:PATH" in cli("list", "datasets").stdout
    summary = cli("summary", "dcgan", "--preset", "classic32")
    assert "Total params: 1,049,985" in summary.stdout and "[-1, 128, 8, 8]" in summary.stdout
