"""Wall time of the command line's start: ``ganforge --help`` and ``ganforge list``.

    python benchmarks/cli_startup.py [--runs 5] [--out FILE.json]

Prints one JSON document: for each command the median (and the spread) of ``--runs`` runs, each
in a fresh process, so that nothing is cached in memory between them; beside them the time of
``python -c "import torch"`` for scale (what any command that needs torch pays at least).
``--help`` and argparse's own errors answer before torch or a family is imported, so their time
is Python's start plus argparse; ``list`` has to import the families to read their presets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "ganforge --help": ["-m", "ganforge", "--help"],
    "ganforge list": ["-m", "ganforge", "list"],
    "python -c 'import torch'": ["-c", "import torch"],
}


def wall_times(args: list[str], runs: int) -> list[float]:
    """Seconds of ``runs`` fresh ``python ARGS`` processes, one after the other."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "GANFORGE_OFFLINE": "1"}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    wall_times(COMMANDS["python -c 'import torch'"], 1)  # warm the disk cache for every row
    results = {}
    for name, command in COMMANDS.items():
        times = wall_times(command, args.runs)
        results[name] = {
            "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3),
            "max_s": round(max(times), 3),
        }
    report = {
        "runs": args.runs,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
