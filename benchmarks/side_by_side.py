"""Throughput of this checkout against another one, measured side by side: the two trees'
`benchmarks/throughput.py` run alternately (A B A B ...) on the same machine, so that load that
comes and goes hits both, and the medians and their ratio are printed as one JSON document.

    git worktree add /tmp/baseline <commit>
    python benchmarks/side_by_side.py --baseline /tmp/baseline [--rounds 3] [-- throughput args]

Everything after ``--`` goes to both trees' throughput.py (e.g. ``--families progan``).  Each
tree runs its own source (throughput.py puts its tree's ``src`` first on the path) with this
interpreter.  Run it alone on the machine: the figures are only as quiet as the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("train_images_per_s", "generate_images_per_s", "peak_rss_mb")


def run_once(tree: Path, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "throughput.json"
        script = tree / "benchmarks" / "throughput.py"
        subprocess.run(
            [sys.executable, str(script), "--out", str(out), *extra],
            check=True,
            cwd=tree,
            stdout=subprocess.DEVNULL,
        )
        return json.loads(out.read_text())


def case_key(row: dict) -> str:
    return f"{row['model']} {row.get('preset') or ''}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a checkout of the commit to compare")
    parser.add_argument("--rounds", type=int, default=3)
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    trees = {"baseline": Path(args.baseline).resolve(), "current": ROOT}
    for tree in trees.values():
        if not (tree / "benchmarks" / "throughput.py").exists():
            sys.exit(f"--baseline: {tree} has no benchmarks/throughput.py; give a checkout")
    samples: dict[str, dict[str, dict[str, list[float]]]] = {t: {} for t in trees}
    peaks: dict[str, list[float]] = {t: [] for t in trees}
    for r in range(args.rounds):
        for name, tree in trees.items():
            doc = run_once(tree, extra)
            peaks[name].append(doc["machine"].get("matmul_peak_gflops", 0.0))
            for row in doc["families"]:
                figures = samples[name].setdefault(case_key(row), {f: [] for f in FIGURES})
                for f in FIGURES:
                    if row.get(f) is not None:
                        figures[f].append(row[f])
            print(f"round {r + 1}/{args.rounds}: {name} done", file=sys.stderr)
    report = {"rounds": args.rounds, "matmul_peak_gflops": peaks, "cases": {}}
    for case in samples["current"]:
        entry = {}
        for f in FIGURES:
            a = samples["baseline"].get(case, {}).get(f, [])
            b = samples["current"][case][f]
            if not a or not b:
                continue
            ma, mb = statistics.median(a), statistics.median(b)
            entry[f] = {"baseline": a, "current": b, "median_ratio": round(mb / ma, 3)}
        report["cases"][case] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
