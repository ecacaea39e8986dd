"""Real-vs-real floors on Fashion-MNIST: the train split against the test split with domain
features, at several sample counts.  These are the figures a perfect generator would score, and
they show how FID's bias grows as the sample shrinks.

    python benchmarks/real_baselines.py [--counts 1000,5000,10000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ganforge.data import load_dataset  # noqa: E402
from ganforge.features.domain import build_domain_network  # noqa: E402
from ganforge.metrics.evaluate import score  # noqa: E402
from ganforge.metrics.sets import extract, subset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,5000,10000")
    parser.add_argument("--out")
    args = parser.parse_args()
    net, record = build_domain_network("fmnist")
    train, test = load_dataset("fmnist"), load_dataset("fmnist", split="test")
    rows = []
    for n in [int(c) for c in args.counts.split(",")]:
        a = extract(net, subset(train, n, 1)[0])
        b = extract(net, subset(test, n, 0)[0])
        rows.append({"n": n, **score(b, a, ["fid", "kid", "is", "pr", "dc"])})
    report = {
        "features": {
            "name": "domain",
            "hash": record["hash"],
            "test_accuracy": record["test_accuracy"],
        },
        "splits": "train vs test",
        "rows": rows,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
