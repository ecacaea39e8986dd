"""Write two Fashion-MNIST classes as a CycleGAN-layout folder of PNG files, to try the
``cyclegan:PATH`` data path the way a user with their own images would.

    python benchmarks/make_unpaired_folder.py OUT [--a 1] [--b 3] [--train 1000] [--test 200]

OUT gets ``trainA/ trainB/ testA/ testB/`` (class --a as domain A, --b as B; defaults: trousers
and dresses), the first --train / --test images of each class from the training / test split.
Prints one JSON line with the counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ganforge.data import load_dataset  # noqa: E402
from ganforge.errors import UserError  # noqa: E402


def write_split(out: Path, split: str, name: str, label: int, count: int) -> int:
    data = load_dataset("fmnist", split=split)
    rows = (data.labels == label).nonzero().flatten()[:count]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows.tolist()):
        Image.fromarray(data.images[row, 0].numpy()).save(folder / f"{i:05d}.png")
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--a", type=int, default=1, help="class of domain A (1: trouser)")
    parser.add_argument("--b", type=int, default=3, help="class of domain B (3: dress)")
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=200)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"'{out}' is not empty; choose a new folder")
    try:
        counts = {
            f"{split}{side}": write_split(out, split, f"{split}{side}", label, n)
            for split, n in (("train", args.train), ("test", args.test))
            for side, label in (("A", args.a), ("B", args.b))
        }
    except UserError as err:
        sys.exit(str(err))
    print(json.dumps({"folder": str(out), "classes": [args.a, args.b], **counts}))


if __name__ == "__main__":
    main()
