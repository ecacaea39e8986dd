"""Runs you can leave alone: one writer per run folder, verified checkpoints, divergence caught,
and no run folder that can be neither resumed nor restarted."""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from conftest import make_dataset
from safetensors.torch import load_file, save_file

import ganforge
from ganforge.api import resolve_run
from ganforge.cli import main
from ganforge.engine import checkpoint as ckpt_mod
from ganforge.engine.checkpoint import (
    latest_good_checkpoint,
    list_checkpoints,
    remove_leftovers,
    save_checkpoint,
)
from ganforge.engine.runlock import LOCK_FILE, acquire_run_lock
from ganforge.engine.trainer import Trainer, TrainingDiverged
from ganforge.errors import UserError

SRC = str(Path(__file__).parents[1] / "src")
QUIET = [("train.progress", False), ("train.tensorboard", False), ("train.log_every", 1)]
CLI = ["--preset", "tiny", "--dataset", "digits", "--batch-size", "8"]
CLI += ["--set", "train.progress=false", "--set", "train.tensorboard=false"]
CLI += ["--set", "train.checkpoint_every=2", "--set", "train.log_every=1"]


def run(tmp: Path, steps: int, *, resume: bool = False, extra=()) -> Trainer:
    """A tiny dcgan run on in-memory data, checkpointed every 3 steps."""
    overrides = [("train.steps", steps), ("train.checkpoint_every", 3), *QUIET, *extra]
    cfg, run_dir = resolve_run("dcgan", preset="tiny", overrides=overrides, out=tmp, resume=resume)
    trainer = Trainer(cfg, run_dir, resume=resume, data=make_dataset())
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    trainer.fit()
    return trainer


def strict_json(line: str):
    """json.loads that refuses NaN and Infinity, as strict JSON readers (jq, JavaScript) do."""
    return json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))


# ----- one writer per run folder ----------------------------------------------------------------
def test_a_second_training_refuses_while_another_process_holds_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from ganforge.engine.runlock import acquire_run_lock\n"
            f"lock = acquire_run_lock({str(out)!r}); print('held', flush=True)\n"
            "sys.stdin.read()",  # holds the lock until the test closes stdin or kills it
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["train", "dcgan", *CLI, "--steps", "2", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2
        assert f"is being written by another training (pid {holder.pid})" in err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not (out / "config.yaml").exists()  # the refused training wrote nothing
        # kill -9: the kernel drops the lock, nothing stale is left to block the next start
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        acquire_run_lock(out).release()
    finally:
        holder.kill()
        holder.wait()
    assert (out / LOCK_FILE).exists()


def test_a_checkpoint_pruned_while_it_is_read_is_not_damage(tmp_path, monkeypatch, capsys):
    """keep_checkpoints=1: a reader lists step 3, the training writes step 6 and prunes step 3
    before the reader opens its weights; the reader lists again and gets step 6."""
    meta = {"family": "dcgan", "config": {}, "data_spec": {}}
    weights = {"w": torch.arange(4.0)}
    state = {"step": 3, "batches_drawn": 3, "optimizers": {}, "rng": []}
    save_checkpoint(tmp_path, 3, weights, state, meta, keep=1)
    real = ckpt_mod._verified_bytes
    calls = []

    def prune_under_the_reader(folder, file, meta_read):
        if not calls:  # the first read: the training's next checkpoint lands now
            save_checkpoint(tmp_path, 6, {"w": torch.ones(4)}, {**state, "step": 6}, meta, keep=1)
        calls.append(folder.name)
        return real(folder, file, meta_read)

    monkeypatch.setattr(ckpt_mod, "_verified_bytes", prune_under_the_reader)
    ckpt = latest_good_checkpoint(tmp_path)
    assert ckpt.step == 6 and torch.equal(ckpt.weights["w"], torch.ones(4))
    assert calls[0] == "step-000003" and "step-000006" in calls
    assert "damaged" not in capsys.readouterr().out
    assert [s for s, _ in list_checkpoints(tmp_path)] == [6]


# ----- checkpoints are verified -----------------------------------------------------------------
def flip_byte(path: Path) -> None:
    """Flip one byte in the middle of the file: tensor data, past any header."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("file", ["model.safetensors", "state.pt"])
def test_a_flipped_byte_falls_back_to_the_previous_checkpoint(tmp_path, file, capsys):
    run(tmp_path / "r", 6)
    newest = tmp_path / "r/checkpoints/step-000006"
    meta = json.loads((newest / "meta.json").read_text())
    assert set(meta["files"]) == {"model.safetensors", "state.pt"}
    assert all(len(h) == 64 for h in meta["files"].values())
    flip_byte(newest / file)
    assert ganforge.load(tmp_path / "r").step == 3
    err = capsys.readouterr().err
    assert f"{file} does not match the SHA-256 recorded" in err and "nothing is deleted" in err
    trainer = run(tmp_path / "r", 6, resume=True)
    assert trainer.step == 6
    names = sorted(p.name for p in (tmp_path / "r/checkpoints").iterdir())
    assert [n for n in names if n.startswith("step-000006.damaged")]  # set aside, not deleted


def rewrite_weights(folder: Path, change) -> None:
    """Change the tensors of a checkpoint and record their new hash, so that only the
    content (not the bytes) is wrong."""
    weights = load_file(str(folder / "model.safetensors"))
    change(weights)
    save_file(weights, str(folder / "model.safetensors"))
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"]["model.safetensors"] = ckpt_mod._sha256(
        (folder / "model.safetensors").read_bytes()
    )
    (folder / "meta.json").write_text(json.dumps(meta))


def first_key(weights: dict) -> str:
    return next(k for k in sorted(weights) if weights[k].ndim >= 2)


WRONG_CONTENT = {
    "meta []": (lambda f: (f / "meta.json").write_text("[]"), "JSON list, not an object"),
    "meta {}": (lambda f: (f / "meta.json").write_text("{}"), "no str 'family'"),
    "missing tensor": (
        lambda f: rewrite_weights(f, lambda w: w.pop(first_key(w))),
        "lacks tensor",
    ),
    "reshaped tensor": (
        lambda f: rewrite_weights(f, lambda w: w.update({first_key(w): torch.zeros(2, 2)})),
        "has shape [2, 2]",
    ),
}


@pytest.mark.parametrize("case", list(WRONG_CONTENT))
def test_a_checkpoint_with_the_wrong_content_falls_back(tmp_path, case, capsys):
    damage, message = WRONG_CONTENT[case]
    run(tmp_path / "r", 6)
    damage(tmp_path / "r/checkpoints/step-000006")
    assert ganforge.load(tmp_path / "r").step == 3
    assert message in capsys.readouterr().err
    assert run(tmp_path / "r", 6, resume=True).step == 6  # resume falls back the same way


def test_a_state_without_optimizers_falls_back_on_resume(tmp_path, capsys):
    run(tmp_path / "r", 6)
    newest = tmp_path / "r/checkpoints/step-000006"
    state = torch.load(newest / "state.pt", weights_only=True)
    del state["optimizers"]
    torch.save(state, newest / "state.pt")
    meta = json.loads((newest / "meta.json").read_text())
    del meta["files"]  # as an old checkpoint, written before hashes were recorded
    (newest / "meta.json").write_text(json.dumps(meta))
    assert ganforge.load(tmp_path / "r").step == 6  # sampling needs no optimizer state
    trainer = run(tmp_path / "r", 9, resume=True)
    err = capsys.readouterr().err
    assert "state.pt has no dict 'optimizers'" in err and "from step-000003 (step 3)" in err
    assert trainer.step == 9


def test_checkpoint_files_share_one_mode_and_leftovers_are_removed(tmp_path):
    run(tmp_path / "r", 3)
    folder = tmp_path / "r/checkpoints/step-000003"
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert len(set(modes.values())) == 1, modes
    root = tmp_path / "r/checkpoints"
    for name in (".step-000006.tmp-4242", ".best.old-17", ".trash-step-000001-99"):
        (root / name).mkdir()
        (root / name / "model.safetensors").write_bytes(b"half")
    (root / "step-000002.damaged-1700000000").mkdir()  # set aside for the user: kept
    assert remove_leftovers(tmp_path / "r") == [
        ".best.old-17",
        ".step-000006.tmp-4242",
        ".trash-step-000001-99",
    ]
    assert sorted(p.name for p in root.iterdir()) == [
        "step-000002.damaged-1700000000",
        "step-000003",
    ]


def test_a_killed_write_is_cleaned_up_when_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "dcgan", *CLI, "--steps", "2", "--out", str(out)]) == 0
    leftover = out / "checkpoints" / ".step-000004.tmp-999999"
    leftover.mkdir()
    assert main(["train", "dcgan", *CLI, "--steps", "4", "--out", str(out), "--resume"]) == 0
    assert not leftover.exists()
    assert [s for s, _ in list_checkpoints(out)] == [2, 4]


# ----- divergence -------------------------------------------------------------------------------
def test_an_infinite_learning_rate_stops_with_exit_2_and_valid_json(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "dcgan", *CLI, "--steps", "6", "--out", str(out), "--set", "lr_g=inf"])
    err = capsys.readouterr().err
    assert code == 2
    line = next(x for x in err.splitlines() if x.startswith("ganforge: error:"))
    assert "training diverged at step" in line and "lower the learning rates" in line
    rows = [strict_json(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and any(v is None for v in rows[-1].values())  # the diverged row, as null
    for _, path in list_checkpoints(out):  # no checkpoint holds non-finite weights
        weights = load_file(str(path / "model.safetensors"))
        assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    assert not (out / "summary.md").exists()


def test_divergence_keeps_the_last_finite_checkpoint(tmp_path):
    run(tmp_path / "r", 3, extra=[("train.keep_checkpoints", 1)])
    cfg, run_dir = resolve_run(
        "dcgan",
        out=tmp_path / "r",
        resume=True,
        overrides=[("train.steps", 9), ("train.keep_checkpoints", 1), *QUIET],
    )
    trainer = Trainer(cfg, run_dir, resume=True, data=make_dataset())
    with torch.no_grad():  # weights that went non-finite after the last checkpoint
        next(trainer.model.networks()["G"].parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="the last finite checkpoint, step-000003, is kept"):
        trainer.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "r")] == [3]
    assert ganforge.load(tmp_path / "r").step == 3


def test_a_loss_that_explodes_is_warned_about_once(tmp_path, capsys):
    cfg, run_dir = resolve_run("dcgan", preset="tiny", overrides=QUIET, out=tmp_path / "r")
    trainer = Trainer(cfg, run_dir, data=make_dataset())
    trainer._watch_losses({"G/loss": 0.7, "D/real": 0.5})  # first sizes: 1 (the floor)
    trainer._watch_losses({"G/loss": 900.0, "D/real": 5e6})  # under 1000x; D/real not a loss
    assert "warning" not in capsys.readouterr().err
    trainer._watch_losses({"G/loss": 2500.0, "D/real": 0.5})
    trainer._watch_losses({"G/loss": 9e9, "D/real": 0.5})
    warnings = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning")]
    assert len(warnings) == 1 and "G/loss is 2.5e+03" in warnings[0]
    with pytest.raises(TrainingDiverged, match="G/loss is nan"):
        trainer._watch_losses({"G/loss": float("nan")})


# ----- no dead ends -----------------------------------------------------------------------------
def test_a_run_killed_before_its_first_checkpoint_can_be_started_again(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text("12345\n")  # what a killed training leaves behind
    (out / "config.yaml").write_text("model: dcgan\n")
    (out / "metrics.jsonl").write_text('{"step": 1, "G/loss": 0.5}\n{"step": 2, "G/lo')
    code = main(["train", "dcgan", *CLI, "--steps", "2", "--out", str(out), "--resume"])
    assert code == 2 and "holds no checkpoint yet" in capsys.readouterr().err
    assert main(["train", "dcgan", *CLI, "--steps", "2", "--out", str(out)]) == 0
    rows = [strict_json(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["G/loss"] != 0.5
    assert [s for s, _ in list_checkpoints(out)] == [2]


def test_a_folder_of_the_users_own_files_is_refused_and_untouched(tmp_path, capsys):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "summary.md").write_text("my notes\n")
    code = main(["train", "dcgan", *CLI, "--steps", "2", "--out", str(own)])
    assert code == 2
    assert "holds files that are not a GANForge run (summary.md)" in capsys.readouterr().err
    assert sorted(p.name for p in own.iterdir()) == ["summary.md"]
    assert (own / "summary.md").read_text() == "my notes\n"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["train", "dcgan", *CLI, "--out", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_resume_refuses_what_it_cannot_do_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "dcgan", *CLI, "--out", str(out)]
    assert main([*base, "--steps", "4"]) == 0
    saved = (out / "config.yaml").read_text()
    capsys.readouterr()

    assert main([*base, "--steps", "2", "--resume"]) == 2
    assert "--steps 2 is below the step 4" in capsys.readouterr().err
    assert main([*base, "--steps", "4", "--resume"]) == 0
    assert "already at step 4 of 4; nothing to train" in capsys.readouterr().err
    argv = ["train", "dcgan", "--preset", "classic32", "--out", str(out), "--resume"]
    assert main(argv) == 2
    assert "cannot change the preset when resuming" in capsys.readouterr().err
    assert (out / "config.yaml").read_text() == saved

    for key, value in (("lr_g", "0.5"), ("z_dim", "7")):
        edited = saved.replace(f"\n{key}: ", f"\n{key}: {value}  # was ", 1)
        assert edited != saved
        (out / "config.yaml").write_text(edited)
        assert main([*base, "--steps", "6", "--resume"]) == 2
        err = capsys.readouterr().err
        assert f"cannot change '{key}' when resuming" in err and "Traceback" not in err
    assert [s for s, _ in list_checkpoints(out)] == [2, 4]


def test_a_config_file_on_resume_is_checked_like_set(tmp_path):
    run(tmp_path / "r", 3)
    other = tmp_path / "other.yaml"
    other.write_text("lr_g: 0.25\ntrain:\n  steps: 9\n")
    with pytest.raises(UserError, match="cannot change 'lr_g' when resuming"):
        resolve_run("dcgan", config=other, out=tmp_path / "r", resume=True)
    other.write_text("train:\n  steps: 9\n")
    cfg, _ = resolve_run("dcgan", config=other, out=tmp_path / "r", resume=True)
    assert cfg.train.steps == 9


# ----- nothing exhausts memory by accident ------------------------------------------------------
def test_grid_and_frame_limits_are_worked_out_up_front():
    from ganforge.images import check_frames_fit, check_grid_fits

    # 28 px images are shown twice as large with a 2 px border: 60 x 60 = 3,600 pixels each;
    # 149 x 149 of them is 79.9 million pixels, under the 80 million one image may hold
    check_grid_fits(22_201, 28, "--n")
    with pytest.raises(UserError, match="about 80 million pixels.*use --n 22,201 or fewer"):
        check_grid_fits(22_202, 28, "--n")  # 150 columns x 149 rows
    # one class per column (10): 80e6 // (10 * 3600) = 2222 rows
    with pytest.raises(UserError, match="use --n 22,220 or fewer"):
        check_grid_fits(10**12, 28, "--n", nrow=10)
    # a gray 28 px frame is held as 56 x 56 = 3,136 bytes while the GIF is encoded
    check_frames_fit(684_784, 1, 28, "--frames")  # 2 GiB // 3,136
    with pytest.raises(UserError, match="about 2,920.6 GiB.*use --frames 684,784 or fewer"):
        check_frames_fit(10**9, 1, 28, "--frames")


def test_huge_requests_are_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "dcgan", *CLI, "--steps", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    for argv in (
        ["sample", str(out), "--n", str(10**12)],
        ["interpolate", str(out), "--seeds", "1,2", "--frames", str(10**9)],
        ["train", "dcgan", *CLI, "--out", str(tmp_path / "b"), "--set", "train.grid_size=1e12"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "or fewer" in err and err.count("\n") == 1, err
    assert not (tmp_path / "b" / "checkpoints").exists()


def idx_header(*shape: int) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def test_a_gzip_bomb_stops_one_byte_past_what_its_header_promises(tmp_path):
    from ganforge.data import parse_idx

    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(idx_header(10) + bytes(64 * 2**20)))  # 64 MiB of zeros
    assert bomb.stat().st_size < 2**20
    real = zlib.decompressobj

    class Counting:  # records how much the reader decompresses
        def __init__(self, *args):
            self.inner, self.out = real(*args), 0

        def decompress(self, data, max_length=0):
            chunk = self.inner.decompress(data, max_length)
            self.out += len(chunk)
            return chunk

        def __getattr__(self, name):
            return getattr(self.inner, name)

    made = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zlib, "decompressobj", lambda *a: made.append(Counting(*a)) or made[-1])
        with pytest.raises(UserError, match="bytes after the data its header describes"):
            parse_idx(bomb)
    assert made[0].out == 8 + 10 + 1  # header, the promised 10 bytes, and one more
    liar = tmp_path / "liar.gz"
    liar.write_bytes(gzip.compress(idx_header(10**6, 10**6) + bytes(100)))
    with pytest.raises(UserError, match=r"promises 1,000,000,000,000 bytes .*\(at most about"):
        parse_idx(liar)
    cut = gzip.compress(idx_header(4) + bytes(4))
    with pytest.raises(UserError, match="corrupt gzip file"):
        parse_idx(cut[:-12])  # the stream stops before its end


def test_gif_frames_stream_in_chunks_and_match_the_whole_walk(tmp_path):
    from ganforge.tools.latent import interpolate, interpolate_chunks, save_gif

    run(tmp_path / "r", 3)
    g = ganforge.load(tmp_path / "r")
    with pytest.raises(UserError, match="fewer than the 3 seeds"):
        interpolate_chunks(g, [1, 2, 3], 2)  # checked when called, before any frame
    sizes = []

    def watched(chunks):
        for chunk in chunks:
            sizes.append(len(chunk))
            yield chunk

    save_gif(watched(interpolate_chunks(g, [1, 2, 3], 70)), tmp_path / "a.gif")
    assert sizes == [32, 32, 6]  # made one chunk at a time, as the GIF encoder asked
    save_gif(interpolate(g, [1, 2, 3], 70), tmp_path / "b.gif")
    assert (tmp_path / "a.gif").read_bytes() == (tmp_path / "b.gif").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "b.gif", "r"]  # no temp
