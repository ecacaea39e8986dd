"""Where a training iteration's time goes: each phase's forward (the loss) and backward plus
optimizer step, timed over real training steps on Fashion-MNIST, as JSON.

    python benchmarks/step_profile.py wgan-gp [--preset P] [--steps 60] [--warmup 10]
        [--set KEY=VALUE ...] [--variant NAME:KEY=VALUE,KEY=VALUE ...]

Each ``--variant`` is profiled after the base configuration with its settings added (for
example ``--variant no-gp:reg.gp=0`` shows what the gradient penalty costs, ``--variant
lazy4:reg.every=4`` what a lazy one saves).  Times are milliseconds per training iteration
(a phase that runs every k iterations or n times per iteration is counted at its average
share).  Run it alone on the machine: the figures are only as quiet as the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

import ganforge  # noqa: E402
from ganforge.config import parse_override  # noqa: E402
from ganforge.engine import trainer as trainer_module  # noqa: E402


def profile(family: str, preset: str | None, settings: dict, steps: int, warmup: int) -> dict:
    times: dict[str, list[float]] = defaultdict(list)
    iteration: list[float] = []
    original_run, original_iter = (
        trainer_module.Trainer._run_phase,
        trainer_module.Trainer._iteration,
    )

    def run_phase(self, phase, batch, ctx):
        step = phase.step

        def timed_step(b, c):
            t0 = time.perf_counter()
            out = step(b, c)
            times[f"{phase.name} forward"].append((self.step, time.perf_counter() - t0))
            return out

        phase.step = timed_step
        t0 = time.perf_counter()
        try:
            return original_run(self, phase, batch, ctx)
        finally:
            times[f"{phase.name} total"].append((self.step, time.perf_counter() - t0))
            phase.step = step

    def run_iteration(self, meter):
        t0 = time.perf_counter()
        original_iter(self, meter)
        if self.step >= warmup:
            iteration.append(time.perf_counter() - t0)

    trainer_module.Trainer._run_phase, trainer_module.Trainer._iteration = (
        run_phase,
        run_iteration,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            overrides = {
                "train.progress": False,
                "train.tensorboard": False,
                "train.sample_every": 10**9,
                "train.checkpoint_every": 10**9,
                "train.ema_beta": 0.999,
                **settings,
            }
            with contextlib.redirect_stdout(sys.stderr):  # the run's summary is not the report
                ganforge.train(
                    family,
                    preset=preset,
                    steps=warmup + steps,
                    out=Path(tmp) / "run",
                    seed=0,
                    overrides=overrides,
                )
    finally:
        trainer_module.Trainer._run_phase, trainer_module.Trainer._iteration = (
            original_run,
            original_iter,
        )
    phases = {}
    for name, rows in times.items():
        kept = [t for s, t in rows if s >= warmup]
        phases[name] = round(1000 * sum(kept) / steps, 2)
    for name in list(phases):
        if name.endswith(" total"):
            base = name[: -len(" total")]
            phases[f"{base} backward+step"] = round(phases[name] - phases[f"{base} forward"], 2)
    return {
        "iteration_ms_median": round(1000 * statistics.median(iteration), 2),
        "iteration_ms_mean": round(1000 * statistics.mean(iteration), 2),
        "per_iteration_ms": dict(sorted(phases.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--preset")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], dest="sets")
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--out")
    args = parser.parse_args()
    base = dict(parse_override(s) for s in args.sets)
    variants = [("base", {})]
    for v in args.variant:
        name, _, body = v.partition(":")
        variants.append((name, dict(parse_override(s) for s in body.split(",") if s)))
    report = {
        "family": args.family,
        "preset": args.preset,
        "settings": {k: str(v) for k, v in base.items()},
        "threads": torch.get_num_threads(),
        "variants": {},
    }
    for name, extra in variants:
        row = profile(args.family, args.preset, {**base, **extra}, args.steps, args.warmup)
        report["variants"][name] = {"settings": {k: str(v) for k, v in extra.items()}, **row}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
