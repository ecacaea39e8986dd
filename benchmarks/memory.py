"""Peak memory of the commands whose output grows with a count: does it stay flat?

    python benchmarks/memory.py [--out docs/memory.json]

Trains a tiny dcgan run once (a few seconds), then runs each command in a fresh process at
growing counts and reads that process's peak resident memory (``ru_maxrss`` of the child):
``sample --seeds 0-N --outdir`` (one image at a time, PNG and npz), ``interpolate --frames N``
(frames made in chunks; Pillow holds the encoded GIF frames until the file is written) and
``eval --n N``.  Prints JSON: per command and count, the peak in MB and the seconds taken.
Flat rows mean the work streams; a row that grows with N says what the count costs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GANFORGE = [sys.executable, "-m", "ganforge"]
QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


def peak_mb(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``ganforge ARGV`` run in a child process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    code = f"import resource, runpy, sys; sys.argv = {['ganforge', *argv]!r}; "
    code += "\ntry:\n    runpy.run_module('ganforge', run_name='__main__')\n"
    code += "except SystemExit as e:\n    assert not e.code, e.code\n"
    code += "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    kb = int(out.stdout.strip().splitlines()[-1])
    return round(kb / 1024, 1), round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    report: dict = {"rusage_unit": "MB (ru_maxrss of each child)", "commands": {}}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train = ["train", "dcgan", "--preset", "tiny", "--dataset", "digits", "--steps", "2"]
        subprocess.run(
            [*GANFORGE, *train, "--out", str(run), *QUIET],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            check=True,
            capture_output=True,
        )
        cases = {
            "sample --seeds (png)": [
                (n, ["sample", str(run), "--seeds", f"0-{n - 1}", "--outdir", f"{tmp}/png{n}"])
                for n in (100, 1_000, 5_000)
            ],
            "sample --seeds (npz)": [
                (
                    n,
                    [
                        "sample",
                        str(run),
                        "--seeds",
                        f"0-{n - 1}",
                        "--outdir",
                        f"{tmp}/npz{n}",
                        "--format",
                        "npz",
                    ],
                )
                for n in (100, 1_000, 5_000)
            ],
            "interpolate --frames": [
                (
                    n,
                    [
                        "interpolate",
                        str(run),
                        "--seeds",
                        "1,2",
                        "--frames",
                        str(n),
                        "--out",
                        f"{tmp}/walk{n}.gif",
                    ],
                )
                for n in (64, 1_024, 8_192)
            ],
            "eval --n": [
                (
                    n,
                    [
                        "eval",
                        str(run),
                        "--metrics",
                        "fid",
                        "--n",
                        str(n),
                        "--out",
                        f"{tmp}/eval{n}.json",
                    ],
                )
                for n in (500, 2_000, 8_000)
            ],
        }
        for name, runs in cases.items():
            rows = []
            for n, argv in runs:
                mb, seconds = peak_mb(argv)
                rows.append({"n": n, "peak_mb": mb, "seconds": seconds})
                print(json.dumps({"command": name, **rows[-1]}), file=sys.stderr, flush=True)
            report["commands"][name] = rows
    report["baseline_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
