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
    datasets = cli("list", "datasets").stdout.splitlines()
    # every source and task as typed on the command line, and the task its batches follow
    usage = {line.split()[0]: line for line in datasets}
    for typed in ("folder:PATH", "pix2pix:PATH", "masked:SOURCE", "lowres:SOURCE"):
        assert typed in usage, typed
    for name, task in [("fmnist-edges", "paired"), ("fmnist-shoes", "unpaired")]:
        assert usage[name].split()[1] == f"{task}:", usage[name]
    assert usage["fmnist-captions"].split()[1] == "captioned:"
    summary = cli("summary", "dcgan", "--preset", "classic32")
    assert "Total params: 1,049,985" in summary.stdout and "[-1, 128, 8, 8]" in summary.stdout


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["list", "--bogus"]])
def test_the_parser_answers_without_torch_or_the_families(argv):
    """argparse runs before anything heavy is imported: --help and usage errors load neither
    torch nor a family (the timings are benchmarks/cli_startup.py's)."""
    code = (
        "import sys, ganforge.cli\n"
        "try:\n"
        f"    ganforge.cli.main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('ganforge.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = eval(done.stdout.strip().splitlines()[-1])
    assert loaded == ["ganforge._version", "ganforge.cli", "ganforge.errors"]


def test_import_ganforge_alone_loads_no_torch():
    code = "import sys, ganforge; print('torch' in sys.modules, ganforge.__version__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "0.1.0"], done.stderr


def test_public_names_load_on_first_use():
    import ganforge

    assert set(ganforge.__all__) <= set(dir(ganforge))
    assert all(getattr(ganforge, name) is not None for name in ganforge.__all__)
    from ganforge.errors import UserError

    assert ganforge.UserError is UserError
    assert callable(ganforge.train) and callable(ganforge.style_mix)
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        ganforge.trian  # noqa: B018


def _epilog_commands() -> list[list[str]]:
    import shlex

    from ganforge.cli import EPILOG

    lines = [line for line in EPILOG.splitlines() if line.strip().startswith("ganforge ")]
    return [shlex.split(line, comments=True)[1:] for line in lines]


def test_the_help_examples_work_in_order():
    """Each example of `ganforge --help` parses, trains into a folder no earlier example used,
    resumes a folder with the model that made it, and reads only folders made above it."""
    from ganforge.cli import build_parser

    made: dict[str, str] = {}  # run folder -> the model it was made with
    commands = _epilog_commands()
    assert len(commands) >= 8
    for argv in commands:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            folder = args.out or f"runs/{args.model}-{args.dataset or 'fmnist'}"
            if args.resume:
                assert made.get(folder) == args.model, (argv, made)
            else:
                assert folder not in made, (argv, made)
                made[folder] = args.model
        elif getattr(args, "run", None) is not None:
            assert args.run in made, (argv, made)
    assert made == {"runs/dcgan-fmnist": "dcgan", "runs/c": "cgan", "runs/sg2": "stylegan2"}


def test_resume_from_an_earlier_checkpoint_keeps_one_row_per_step(tmp_path, capsys):
    """Steps 21-40 of the first session are superseded when the run resumes from step 20."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    argv = ["train", "dcgan", "--preset", "tiny", "--dataset", "digits", "--batch-size", "8"]
    argv += ["--out", str(out), "--steps", "40", "--set", "train.progress=false"]
    argv += ["--set", "train.log_every=10", "--set", "train.checkpoint_every=20"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    first_30 = rows[2]
    for newer in (out / "checkpoints").glob("step-00004*"):
        for f in newer.iterdir():
            f.unlink()
        newer.rmdir()
    assert main([*argv, "--resume"]) == 0
    assert "from step-000020" in capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert rows[2]["time"] > first_30["time"]  # step 30 is the resumed session's row
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    tag = next(t for t in events.Tags()["scalars"] if t.endswith("/loss"))
    assert [e.step for e in events.Scalars(tag)] == [10, 20, 30, 40]
