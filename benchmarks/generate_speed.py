"""How fast a family's freshly built generator makes images (``model.generate``, the call
``ganforge sample`` and the studio make), at several batch sizes, without training it.

    python benchmarks/generate_speed.py stylegan3 --set resolution=32 --set channel_max=128 \\
        --set channel_base=8192 --batch-sizes 1,8 [--repeats 5] [--out FILE.json]
    python benchmarks/generate_speed.py stylegan2 --preset fmnist32 --batch-sizes 1,32

Prints one JSON document: per batch size the median images/s over ``--repeats`` samples (each
as many calls as last about half a second, after one untimed call) and every sample.  Run it
from two checkouts alternately to compare before and after a change: the script uses the
``src`` beside it.  The weights are random (the speed does not depend on them); inference runs
on CPU, float32, EMA generator, no truncation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from throughput import report_json  # noqa: E402


def build(family: str, preset: str | None, overrides: list[tuple[str, str]]):
    from ganforge.config import build_config
    from ganforge.data import DataSpec
    from ganforge.models import get_family

    cfg = build_config(family, preset, overrides=overrides)
    resolution = getattr(cfg.family, "resolution", 32)
    spec = DataSpec(channels=3, resolution=resolution, num_classes=10, name="random")
    torch.manual_seed(0)
    return cfg, get_family(family)(cfg.family, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--preset")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    overrides = [tuple(s.split("=", 1)) for s in args.set]
    if any(len(o) != 2 for o in overrides):
        sys.exit("--set: give KEY=VALUE, e.g. --set resolution=32")
    cfg, model = build(args.family, args.preset, overrides)
    model.eval()
    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        with torch.no_grad():
            start = time.perf_counter()
            model.generate(batch, seed=0)
            # each sample times enough calls to last about half a second
            calls = max(1, round(0.5 / (time.perf_counter() - start)))
            samples = []
            for i in range(args.repeats):
                start = time.perf_counter()
                for j in range(calls):
                    model.generate(batch, seed=i * calls + j + 1)
                samples.append(batch * calls / (time.perf_counter() - start))
        rows.append(
            {
                "batch_size": batch,
                "images_per_s": round(statistics.median(samples), 2),
                "samples": [round(s, 2) for s in samples],
            }
        )
    report = {
        "machine": {"threads": torch.get_num_threads(), "torch": torch.__version__},
        "family": args.family,
        "preset": args.preset or "default",
        "overrides": dict(overrides),
        "rows": rows,
    }
    report_json(report, args.out)


if __name__ == "__main__":
    main()
