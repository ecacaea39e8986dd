"""Does this checkout train exactly as another one did?  Each family's default preset trains a
few steps from the same seed in both trees (each with its own source), and the checkpoints'
tensors are compared bit for bit; prints one JSON document.

    git worktree add /tmp/baseline <commit>
    python benchmarks/same_weights.py --baseline /tmp/baseline [--steps 20] [--families dcgan,cgan]

A refactor that keeps every family bitwise equal has changed no result: FIDs then differ only by
the steps a time budget allowed.  Needs Fashion-MNIST (the default data set).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = "gan,dcgan,cgan,acgan,infogan,wgan,wgan-gp,progan,stylegan,stylegan2"


def train(tree: Path, family: str, steps: int, out: Path) -> Path:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    sets = [
        "train.progress=false",
        f"train.sample_every={steps}",
        f"train.checkpoint_every={steps}",
    ]
    args = [sys.executable, "-m", "ganforge", "train", family, "--steps", str(steps)]
    args += ["--out", str(out), *[a for s in sets for a in ("--set", s)]]
    subprocess.run(args, check=True, cwd=tree, env=env, capture_output=True)
    return out / "checkpoints" / f"step-{steps:06d}" / "model.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a checkout of the commit to compare")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--families", default=FAMILIES)
    args = parser.parse_args()
    trees = {"baseline": Path(args.baseline).resolve(), "current": ROOT}
    report = {"steps": args.steps, "families": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            files = {
                k: train(t, family, args.steps, Path(tmp) / k / family) for k, t in trees.items()
            }
            a, b = (load_file(files[k]) for k in trees)
            differ = sorted(k for k in a.keys() & b.keys() if not torch.equal(a[k], b[k]))
            report["families"][family] = {
                "tensors": len(a),
                "bitwise_equal": not differ and a.keys() == b.keys(),
                "differ": differ[:5],
                "only_in_one": sorted(a.keys() ^ b.keys())[:5],
            }
            print(f"{family}: done", file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
