"""Two CPU processes under torchrun (Gloo): data sharded, replicas in sync, one writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def test_torchrun_two_processes_train_in_sync(tmp_path):
    out = tmp_path / "run"
    env = {
        **os.environ,
        "GANFORGE_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "ganforge",
        "train",
        "dcgan",
        "--preset",
        "tiny",
        "--dataset",
        "digits",
        "--steps",
        "4",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--set",
        "train.checkpoint_every=2",
        "--set",
        "train.progress=false",
        "--set",
        "train.tensorboard=false",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    why = f"exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-4000:]}"
    assert done.returncode == 0, why
    assert done.stdout.count("# run") == 1, "only rank 0 writes the summary\n" + why
    meta = json.loads((out / "checkpoints/step-000004/meta.json").read_text())
    assert meta["world_size"] == 2
    sums = meta["rank_param_sums"]
    assert len(sums) == 2 and sums[0] == sums[1], sums  # bitwise-equal replicas
    assert len((out / "metrics.jsonl").read_text().splitlines()) >= 1
    assert not list(out.glob("**/*.tmp-*"))
    weights = load_file(str(out / "checkpoints/step-000004/model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_shutdown_leaves_the_group_and_is_a_no_op_after(tmp_path):
    """`shutdown` is safe to call always: outside a group, in one, and again after leaving."""
    import torch.distributed as dist

    from ganforge.engine import distributed

    distributed.shutdown()  # no group yet: nothing to do
    store = f"file://{tmp_path / 'store'}"
    dist.init_process_group("gloo", init_method=store, rank=0, world_size=1)
    assert dist.is_initialized()
    distributed.shutdown()
    assert not dist.is_initialized()
    distributed.shutdown()
    assert distributed.world() == (0, 1)
