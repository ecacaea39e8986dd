"""Runs watched without a terminal: plain progress lines, -q/-v, `--resume auto`, and
`ganforge eval --checkpoint/--device`."""

from __future__ import annotations

import json
import logging

import pytest

import ganforge
from ganforge import cli
from ganforge.cli import main
from ganforge.engine import logger as logger_mod
from ganforge.engine.checkpoint import list_checkpoints
from ganforge.engine.logger import RunLogger

CLI = ["--preset", "tiny", "--dataset", "digits", "--batch-size", "8"]
CLI += ["--set", "train.progress=false", "--set", "train.tensorboard=false"]
CLI += ["--set", "train.checkpoint_every=2", "--set", "train.log_every=1"]
LOG = logging.getLogger("ganforge")
TICK = {"D/loss": 1.3863, "G/loss": 0.6931, "images_per_s": 512.4}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # the domain classifier of digits is trained once for the module, in a private cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


def _logger(tmp_path, *, start: int = 0) -> RunLogger:
    return RunLogger(
        tmp_path, total=100, start=start, tensorboard=False, progress=True, enabled=True
    )


def test_progress_line_has_step_rate_losses_and_eta(tmp_path):
    run = _logger(tmp_path)
    # 20 steps in 10 s: the 80 left take 40 s
    line = run.progress_line(20, TICK, elapsed=10.0)
    assert line == "step 20/100 (20%), 512 images/s, D 1.39 G 0.693, ETA 40s"
    resumed = _logger(tmp_path, start=50)  # the rate counts this session's steps only
    assert resumed.progress_line(60, TICK, elapsed=5.0).endswith("ETA 20s")  # 40 left at 2/s
    assert resumed.progress_line(50, TICK, elapsed=0.0).endswith("ETA ?")
    assert run.progress_line(1, TICK, elapsed=100.0).endswith("ETA 2h45m")  # 99 x 100 s
    run.close(), resumed.close()


def test_without_a_terminal_a_line_per_tick_replaces_the_bar(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="ganforge")
    run = _logger(tmp_path)  # pytest's stderr is no terminal
    assert run.bar is None
    run.log(10, TICK)
    run.log(10, {"eval/fid": 3.0})  # an evaluation row is no progress tick
    run.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "ganforge"]
    assert len(lines) == 1 and lines[0].startswith("step 10/100 (10%), 512 images/s, D 1.39")
    monkeypatch.setattr(logger_mod, "_stderr_is_terminal", lambda: True)
    caplog.clear()
    with_terminal = _logger(tmp_path)
    assert with_terminal.bar is not None
    with_terminal.log(10, TICK)
    with_terminal.close()
    assert not [r for r in caplog.records if r.name == "ganforge"]


@pytest.mark.parametrize(
    ("flags", "level"),
    [([], logging.INFO), (["-q"], logging.WARNING), (["-v"], logging.DEBUG)],
)
def test_quiet_and_verbose_set_the_ganforge_level_before_or_after_the_command(
    flags, level, monkeypatch
):
    seen = []
    monkeypatch.setitem(cli.COMMANDS, "list", lambda args: seen.append(LOG.getEffectiveLevel()))
    before = LOG.level
    assert main([*flags, "list"]) == 0 and main(["list", *flags]) == 0
    assert seen == [level, level]
    assert LOG.level == before and not LOG.handlers  # put back for the calling program


def test_cli_training_without_a_terminal_prints_progress_lines(tmp_path, capsys):
    shown = [*CLI, "--set", "train.progress=true", "--steps", "2"]
    assert main(["train", "dcgan", *shown, "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "step 1/2 (50%)" in err and "step 2/2 (100%)" in err and "ETA" in err
    assert main(["-q", "train", "dcgan", *shown, "--out", str(tmp_path / "q")]) == 0
    assert "step 1/2" not in capsys.readouterr().err


def test_resume_auto_starts_then_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "dcgan", *CLI, "--out", str(out), "--resume", "auto"]
    assert main([*base, "--steps", "2"]) == 0  # nothing there: starts
    assert [step for step, _ in list_checkpoints(out)] == [2]
    assert main([*base, "--steps", "4"]) == 0  # a run there: continues it
    assert [step for step, _ in list_checkpoints(out)] == [2, 4]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "images_per_s" in r] == [1, 2, 3, 4]
    # `--resume` alone still refuses a folder without a run
    assert main(["train", "dcgan", *CLI, "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse's refusal of the value
        main([*base[:-1], "sometimes"])
    assert refused.value.code == 2
    assert "expected 'auto' or nothing after --resume, got 'sometimes'" in capsys.readouterr().err


def test_eval_takes_a_checkpoint_and_a_device(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "dcgan", *CLI, "--steps", "4", "--out", str(out)]) == 0
    report = tmp_path / "e.json"
    argv = ["eval", str(out), "--metrics", "kid", "--n", "40", "--out", str(report)]
    assert main([*argv, "--checkpoint", "step-000002", "--device", "cpu"]) == 0
    assert "(step 2)" in json.dumps(json.loads(report.read_text()))
    assert main(argv) == 0  # the newest by default
    assert "(step 4)" in json.dumps(json.loads(report.read_text()))
    capsys.readouterr()
    assert main([*argv, "--checkpoint", "step-000003"]) == 2
    assert "step-000003" in capsys.readouterr().err


def test_training_draws_its_loss_curves_one_panel_per_phase(tmp_path, monkeypatch):
    import builtins

    from PIL import Image

    from ganforge.engine.logger import write_loss_curve

    pytest.importorskip("matplotlib")
    run = ganforge.train(
        "gan",
        preset="tiny",
        dataset="digits",
        steps=6,
        out=tmp_path / "run",
        overrides={"train.progress": False, "train.tensorboard": False, "train.log_every": 2},
    )
    curve = run / "losses.png"
    assert f"- loss curves: {curve}" in (run / "summary.md").read_text()
    phases = {
        k.split("/")[0]
        for line in (run / "metrics.jsonl").read_text().splitlines()
        for k in json.loads(line)
        if "/" in k
    }
    assert phases == {"G", "D"}
    assert Image.open(curve).size == (420 * len(phases), 300)  # 4.2 x 3.0 in at 100 dpi
    real_import = builtins.__import__

    def without_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_matplotlib)
    curve.unlink()
    assert write_loss_curve(run) is None and not curve.exists()
