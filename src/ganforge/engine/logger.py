"""Loss reporting: running means of named losses, written to metrics.jsonl, TensorBoard and tqdm.

Phases return detached loss tensors; they are summed on the device and turned into Python
numbers only at logging ticks, because ``.item()`` is a device synchronisation point.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

# Progress lines for runs watched without a terminal (a log file, a CI job, nohup): the
# ``ganforge`` logger, which the CLI shows at INFO (``-q`` hides them, ``-v`` adds debug).
log = logging.getLogger("ganforge")


class LossMeter:
    """Running sums of named scalar tensors between two logging ticks."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, prefix: str, losses: dict[str, torch.Tensor]) -> None:
        for name, value in losses.items():
            key = f"{prefix}/{name}"
            v = value.detach().float()
            self.sums[key] = self.sums[key] + v if key in self.sums else v
            self.counts[key] = self.counts.get(key, 0) + 1

    def pop_means(self) -> dict[str, float]:
        means = {k: (self.sums[k] / self.counts[k]).item() for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        return means


def drop_rows_after(path: Path, step: int) -> None:
    """Keep only the rows of ``path`` (metrics.jsonl) with ``step <= step``.

    A run resumed from an earlier checkpoint logs the later steps again; the rows the stopped
    session wrote for them are superseded, so readers see one row per step.  The file is
    rewritten to a temporary file and renamed over the old one, so a crash meanwhile leaves the
    old rows or the new ones, never half a file.  Lines that are not JSON (a row cut short
    when the process died) are dropped too."""
    if not path.exists():
        return
    kept, dropped = [], False
    for line in path.read_text().splitlines():
        try:
            row_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            dropped = True
            continue
        if row_step <= step:
            kept.append(line + "\n")
        else:
            dropped = True
    if not dropped:
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr: no terminal
        return False


def _duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``2m41s`` or ``9s``."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


class RunLogger:
    """Writes one JSON object per logging tick, TensorBoard scalars and a progress bar.

    Only rank 0 makes one (``enabled``); other ranks get a silent logger.  ``start`` is the
    step the run resumes from (0 for a new run): rows and TensorBoard events of later steps,
    left by the session that stopped after its checkpoint, are superseded and dropped."""

    def __init__(
        self,
        run_dir: Path | None,
        *,
        total: int,
        start: int,
        tensorboard: bool,
        progress: bool,
        enabled: bool,
    ) -> None:
        self.enabled = enabled
        self.run_dir = run_dir
        self.tb = None
        self.bar = None
        # without a terminal a bar's carriage returns make an unreadable log: plain lines instead
        self.plain = progress and not _stderr_is_terminal()
        self.total, self.start = total, start
        self.started = time.monotonic()
        if not enabled:
            return
        drop_rows_after(run_dir / "metrics.jsonl", start)
        self.jsonl = open(run_dir / "metrics.jsonl", "a", buffering=1)  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # A resumed run logs steps start+1.. again: events of those steps written
                # after the checkpoint (by the session that stopped) are superseded.
                purge = start + 1 if start > 0 else None
                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge)
            except ImportError:
                print(
                    "note: tensorboard is not installed; skipping TensorBoard logs "
                    "(pip install tensorboard)",
                    file=sys.stderr,
                )
        if progress and not self.plain:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total,
                initial=start,
                unit="step",
                dynamic_ncols=True,
                mininterval=1.0,
                file=sys.stderr,
                disable=None,
            )

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        # JSON has no NaN or infinity: a diverged loss is written as null, so that every
        # reader of metrics.jsonl can still parse the row that shows the divergence
        plain = {k: None if _non_finite(v) else v for k, v in values.items()}
        record = {"step": step, "time": round(time.time(), 3), **plain}
        self.jsonl.write(json.dumps(record, allow_nan=False) + "\n")
        if self.tb is not None:
            for key, value in values.items():
                if isinstance(value, int | float):
                    self.tb.add_scalar(key, value, step)
        if self.bar is not None:
            shown = {
                k.replace("/loss", ""): f"{v:.3g}" for k, v in values.items() if k.endswith("/loss")
            }
            if "images_per_s" in values:
                shown["img/s"] = f"{values['images_per_s']:.0f}"
            self.bar.set_postfix(shown, refresh=False)
        if self.plain and "images_per_s" in values:
            log.info(self.progress_line(step, values, time.monotonic() - self.started))

    def progress_line(self, step: int, values: dict[str, Any], elapsed: float) -> str:
        """``step 200/1500 (13%), 512 images/s, d 1.38 g 0.693, ETA 2m41s`` for ``values`` of a
        logging tick at ``step``, ``elapsed`` seconds after this session started."""
        losses = " ".join(
            f"{k.replace('/loss', '')} {v:.3g}"
            for k, v in values.items()
            if k.endswith("/loss") and isinstance(v, int | float)
        )
        done = step - self.start
        eta = "?" if done <= 0 else _duration(elapsed / done * (self.total - step))
        parts = [
            f"step {step}/{self.total} ({100 * step // max(self.total, 1)}%)",
            f"{values['images_per_s']:.0f} images/s",
        ]
        return ", ".join(parts + ([losses] if losses else []) + [f"ETA {eta}"])

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def add_image(self, tag: str, grid_hwc, step: int) -> None:
        if self.tb is not None:
            self.tb.add_image(tag, grid_hwc, step, dataformats="HWC")

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        self.jsonl.close()


LOSS_CURVE = "losses.png"


def write_loss_curve(run_dir: Path) -> Path | None:
    """Draw every logged value of ``metrics.jsonl`` against the step, one panel per phase
    (``G/loss``, ``G/l1`` ... on G's), into ``RUN/losses.png``; written atomically.  Needs
    matplotlib (``pip install "ganforge[plots]"``): without it, or without logged rows, nothing
    is drawn and None is returned.  Only the Agg canvas is used, so a user's own pyplot backend
    is left alone."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    rows = []
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run
    series: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for row in rows:
        for key, value in row.items():
            if "/" not in key or not isinstance(value, int | float) or _non_finite(value):
                continue
            phase, name = key.split("/", 1)
            steps, values = series.setdefault(phase, {}).setdefault(name, ([], []))
            steps.append(int(row["step"]))
            values.append(float(value))
    if not series:
        return None
    fig = Figure(figsize=(4.2 * len(series), 3.0), dpi=100)
    FigureCanvasAgg(fig)
    for i, (phase, curves) in enumerate(series.items()):
        ax = fig.add_subplot(1, len(series), i + 1)
        for name, (steps, values) in curves.items():
            ax.plot(steps, values, label=name, linewidth=1.2 if name == "loss" else 0.8)
        ax.set_title(phase, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = run_dir / LOSS_CURVE
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    fig.savefig(tmp, format="png")
    os.replace(tmp, out)
    return out
