"""The engine: exact resume, checkpoints, run folders, data sharding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import make_dataset
from safetensors.torch import load_file

from ganforge.api import resolve_run
from ganforge.engine.checkpoint import latest_good_checkpoint, list_checkpoints
from ganforge.engine.trainer import BatchStream, Trainer
from ganforge.errors import UserError

QUIET = [("train.progress", False), ("train.tensorboard", False), ("train.log_every", 2)]


def run(tmp: Path, steps: int, *, resume: bool = False, model: str = "dcgan", extra=()):
    overrides = [
        ("train.steps", steps),
        ("train.checkpoint_every", 3),
        ("train.sample_every", 3),
        *QUIET,
        *extra,
    ]
    cfg, run_dir = resolve_run(model, preset="tiny", overrides=overrides, out=tmp, resume=resume)
    trainer = Trainer(cfg, run_dir, resume=resume, data=make_dataset())
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    trainer.fit()
    return trainer


@pytest.mark.parametrize("model", ["dcgan", "cgan", "gan"])
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, model):
    straight = run(tmp_path / "straight", 6, model=model)
    run(tmp_path / "split", 3, model=model)
    resumed = run(tmp_path / "split", 6, resume=True, model=model)
    assert resumed.step == 6
    a = load_file(str(tmp_path / "straight/checkpoints/step-000006/model.safetensors"))
    b = load_file(str(tmp_path / "split/checkpoints/step-000006/model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for name, opt in straight.optimizers.items():
        sa, sb = opt.state_dict()["state"], resumed.optimizers[name].state_dict()["state"]
        for i in sa:
            for k in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k]))
    assert straight.batches_drawn == resumed.batches_drawn == 6


def test_run_folder_layout_and_logs(tmp_path):
    run(tmp_path / "r", 6)
    r = tmp_path / "r"
    assert [s for s, _ in list_checkpoints(r)] == [3, 6]
    files = sorted(p.name for p in (r / "checkpoints/step-000006").iterdir())
    assert files == ["meta.json", "model.safetensors", "state.pt"]
    meta = json.loads((r / "checkpoints/step-000006/meta.json").read_text())
    assert meta["family"] == "dcgan" and meta["step"] == 6 and meta["config"]["train"]["steps"] == 6
    assert sorted(p.name for p in (r / "samples").iterdir()) == [
        "step-000003.png",
        "step-000006.png",
    ]
    records = [json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in records] == [2, 4, 6]
    assert {"G/loss", "D/loss", "D/real", "D/fake", "images_per_s"} <= set(records[-1])
    # state.pt holds only tensors and plain data: it loads with weights_only
    state = torch.load(r / "checkpoints/step-000006/state.pt", weights_only=True)
    assert state["step"] == 6 and set(state["optimizers"]) == {"G", "D"}
    assert not list((r / "checkpoints").glob(".*")), "temporary folders left behind"


def test_only_the_newest_k_checkpoints_are_kept(tmp_path):
    run(tmp_path / "r", 12, extra=[("train.keep_checkpoints", 2)])
    assert [s for s, _ in list_checkpoints(tmp_path / "r")] == [9, 12]


def test_damaged_newest_checkpoint_falls_back_and_deletes_nothing(tmp_path, capsys):
    run(tmp_path / "r", 6)
    newest = tmp_path / "r/checkpoints/step-000006"
    blob = (newest / "model.safetensors").read_bytes()
    (newest / "model.safetensors").write_bytes(blob[: len(blob) // 2])  # truncated
    ckpt = latest_good_checkpoint(tmp_path / "r")
    assert ckpt.step == 3
    assert "step-000006 is damaged" in capsys.readouterr().out
    trainer = run(tmp_path / "r", 9, resume=True)
    assert trainer.step == 9
    names = sorted(p.name for p in (tmp_path / "r/checkpoints").iterdir())
    # the damaged step 6 was set aside, not deleted, when step 6 was written again
    assert [n for n in names if n.startswith("step-000006.damaged")]
    assert "step-000006" in names and "step-000009" in names


def test_refuses_to_train_into_an_existing_run(tmp_path):
    run(tmp_path / "r", 3)
    with pytest.raises(UserError, match="already holds a run; pass --resume"):
        resolve_run("dcgan", preset="tiny", out=tmp_path / "r")


def test_resume_refuses_to_change_the_model_settings(tmp_path):
    run(tmp_path / "r", 3)
    with pytest.raises(UserError, match="cannot change 'lr_g' when resuming"):
        resolve_run("dcgan", out=tmp_path / "r", resume=True, overrides=[("lr_g", 0.1)])
    with pytest.raises(UserError, match="is a 'dcgan' run, not 'gan'"):
        resolve_run("gan", out=tmp_path / "r", resume=True)
    with pytest.raises(UserError, match="nothing to resume"):
        resolve_run("dcgan", out=tmp_path / "empty", resume=True)


def test_batches_are_sharded_across_processes_without_overlap():
    data = make_dataset(n=40, classes=40)  # label == index
    whole = BatchStream(data, 8, seed=3, device=torch.device("cpu"), rank=0, world=1)
    shards = [
        BatchStream(data, 8, seed=3, device=torch.device("cpu"), rank=r, world=2) for r in range(2)
    ]
    for k in range(12):  # crosses epoch boundaries (5 batches per epoch)
        full = whole.get(k)["image"]
        parts = [s.get(k)["image"] for s in shards]
        assert all(p.shape[0] == 4 for p in parts)
        assert torch.equal(torch.cat(parts), full)
    # each epoch visits every image exactly once, and the next epoch reshuffles
    first = torch.cat([whole.get(k)["label"] for k in range(5)])
    second = torch.cat([whole.get(k)["label"] for k in range(5, 10)])
    assert sorted(first.tolist()) == list(range(40)) == sorted(second.tolist())
    assert not torch.equal(first, second)


def test_batch_size_errors():
    data = make_dataset(n=40)
    with pytest.raises(UserError, match="larger than the data set"):
        BatchStream(data, 64, seed=0, device=torch.device("cpu"), rank=0, world=1)
    with pytest.raises(UserError, match="does not split over 3 processes"):
        BatchStream(data, 8, seed=0, device=torch.device("cpu"), rank=0, world=3)


def test_time_budget_stops_early_with_samples_and_a_checkpoint(tmp_path):
    trainer = run(tmp_path / "r", 10_000, extra=[("train.time_budget", 1e-9)])
    assert trainer.step == 1  # the budget is checked after each step
    assert [s for s, _ in list_checkpoints(tmp_path / "r")] == [1]
    assert (tmp_path / "r/samples/step-000001.png").exists()
