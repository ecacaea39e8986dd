"""Evaluation speed: feature extraction images/s for each feature network, and the wall time of
``fid,kid,pr`` on 10,000 generated images against cached real statistics (domain features).

    python benchmarks/metrics.py [RUN_DIR] [--n 10000] [--out FILE.json]

With RUN_DIR the generated images come from that run (as `ganforge eval` makes them); without,
random images stand in (the time does not depend on what the images show).  Prints JSON.  The
domain network of Fashion-MNIST is built first if it is not cached (not timed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ganforge.data import load_dataset  # noqa: E402
from ganforge.features.domain import build_domain_network  # noqa: E402
from ganforge.metrics import stats  # noqa: E402
from ganforge.metrics.evaluate import generate_set  # noqa: E402
from ganforge.metrics.sets import cached_real_features, extract, subset  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def inception_rate(images: int = 32) -> float | None:
    """Images/s of the FID Inception-v3 (random weights: the speed is the same)."""
    try:
        from ganforge.features.inception import FIDInceptionV3
    except ImportError:
        return None
    net = FIDInceptionV3().eval()
    x = torch.rand(images, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        net(x[:2])
        _, seconds = timed(lambda: net(x))
    return images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run folder to generate from")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--out")
    args = parser.parse_args()

    net, record = build_domain_network("fmnist")
    real = load_dataset("fmnist", split="test")
    real_images = subset(real, args.n, 0)[0]
    options = {"source": "fmnist test split", "res": real.spec.resolution}
    cached_real_features(net, record["hash"], real_images, options)  # fill the cache
    real_feats, t_real = timed(
        lambda: cached_real_features(net, record["hash"], real_images, options)
    )

    if args.run:
        from ganforge import load

        model = load(args.run)
        (fake_images, _), t_gen = timed(lambda: generate_set(model, args.n, 0))
    else:
        gen = torch.Generator().manual_seed(0)
        fake_images = torch.randint(0, 256, (args.n, 1, 28, 28), generator=gen, dtype=torch.uint8)
        t_gen = 0.0
    fake_feats, t_extract = timed(lambda: extract(net, fake_images))
    _, t_fid = timed(lambda: stats.fid_from_features(real_feats.features, fake_feats.features))
    _, t_kid = timed(
        lambda: stats.kernel_inception_distance(real_feats.features, fake_feats.features)
    )
    _, t_pr = timed(lambda: stats.precision_recall(real_feats.features, fake_feats.features))
    report = {
        "n": args.n,
        "threads": torch.get_num_threads(),
        "domain_features_images_per_s": round(args.n / t_extract, 1),
        "inception_images_per_s": (round(r, 2) if (r := inception_rate()) else None),
        "seconds": {
            "load_cached_real_features": round(t_real, 2),
            "generate": round(t_gen, 2),
            "extract_generated_features": round(t_extract, 2),
            "fid": round(t_fid, 2),
            "kid": round(t_kid, 2),
            "pr": round(t_pr, 2),
        },
    }
    report["seconds"]["fid_kid_pr_total"] = round(sum(report["seconds"].values()), 2)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
