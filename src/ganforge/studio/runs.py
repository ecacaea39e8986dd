"""The runs the studio shows: found under its root folders and named by ids it hands out.

A client never names a path.  It names a run by the id the listing gave it (``K/REL``: root K,
then the run's folder relative to that root), and the id is looked up in the listing; a folder
(or a symbolic link) that resolves outside its root is never listed, so nothing outside the
given folders can be read through the studio.  The files read for a run are fixed names
inside it (config.yaml, eval.json, metrics.jsonl, the newest samples/step-*.png)."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import read_yaml
from ..engine.checkpoint import list_checkpoints
from ..errors import UserError

#: how deep below a root runs are looked for, and how many are listed at most
MAX_DEPTH, MAX_RUNS = 4, 500
#: folders a run keeps its own files in: never searched for further runs
RUN_PARTS = {"checkpoints", "samples", "tb", "translations", "inpainted", "upscaled"}
#: loss-curve points sent per series (the log is thinned evenly beyond it)
CURVE_POINTS = 400
#: the most of metrics.jsonl read (its end: the newest rows)
LOG_BYTES = 8 * 2**20


@dataclass(frozen=True)
class RunRef:
    """One listed run: its id, its resolved folder and the resolved root it lies in."""

    id: str
    path: Path
    root: Path

    @property
    def name(self) -> str:
        return self.path.name


def is_run(folder: Path) -> bool:
    """A training or import run (config.yaml and a checkpoint) or a `ganforge export` folder."""
    if (folder / "config.yaml").is_file() and list_checkpoints(folder):
        return True
    return _export_info(folder) is not None


def _export_info(folder: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("format") == "ganforge-export" else None


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, resolved (symbolic links followed), lies in resolved ``root``."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a link loop or a path the system refuses
        return False


class RunIndex:
    """The runs under ``roots``, rescanned on demand; thread-safe."""

    def __init__(self, roots: list[str | Path]) -> None:
        if not roots:
            raise UserError("give the folders that hold your runs, e.g. ganforge studio runs/")
        self.roots: list[Path] = []
        for root in roots:
            path = Path(root)
            if not path.is_dir():
                raise UserError(
                    f"runs folder '{root}' does not exist or is not a folder; give the folders "
                    "that hold your runs, e.g. ganforge studio runs/"
                )
            self.roots.append(path.resolve())
        self._runs: dict[str, RunRef] = {}
        self._lock = threading.Lock()

    def scan(self) -> list[RunRef]:
        found: dict[str, RunRef] = {}
        for k, root in enumerate(self.roots):
            for rel in _find_runs(root):
                run_id = f"{k}/{rel}"
                found[run_id] = RunRef(run_id, (root / rel).resolve(), root)
                if len(found) >= MAX_RUNS:
                    break
        with self._lock:
            self._runs = found
        return list(found.values())

    def get(self, run_id: Any) -> RunRef:
        """The listed run of id ``run_id``; anything else (a path, ``..``, an id of a run
        that is gone or now links outside its root) is a one-line `UserError`."""
        if not isinstance(run_id, str) or not run_id:
            raise UserError("choose a run: no run was named")
        with self._lock:
            ref = self._runs.get(run_id)
        if ref is None:
            ref = {r.id: r for r in self.scan()}.get(run_id)
        if ref is None or not inside(ref.path, ref.root) or not is_run(ref.path):
            shown = run_id if len(run_id) <= 80 else run_id[:77] + "..."
            raise UserError(
                f"unknown run {shown!r}; choose one of the runs the studio lists (reload the "
                "page if runs were added or removed)"
            )
        return ref


def _find_runs(root: Path) -> list[str]:
    """Relative paths (posix, ``.`` for the root itself) of the runs below ``root``."""
    if is_run(root):
        return ["."]
    out: list[str] = []
    level = [Path()]
    for _ in range(MAX_DEPTH):
        below: list[Path] = []
        for rel in level:
            try:
                children = sorted((root / rel).iterdir())
            except OSError:
                continue
            for child in children:
                if child.name.startswith(".") or child.name in RUN_PARTS:
                    continue
                if not child.is_dir() or not inside(child, root):
                    continue  # a file, or a folder or link that leads outside the root
                if is_run(child):
                    out.append((rel / child.name).as_posix())
                elif not child.is_symlink():  # links are listed as runs, never walked into
                    below.append(rel / child.name)
        level = below
    return out


# ----- what the Runs view shows of a run (files only: nothing is loaded) ---------------------
def describe(ref: RunRef) -> dict[str, Any]:
    """Family, preset, data, steps, evaluation (with its floor and the real-vs-real figure),
    whether a sample grid exists, of run ``ref``; read from its files only."""
    info: dict[str, Any] = {"id": ref.id, "name": ref.name, "root": str(ref.root)}
    export = _export_info(ref.path)
    if export is not None:
        info.update(
            family=export.get("model") or export.get("family"),
            preset=export.get("preset"),
            data=(export.get("data_spec") or {}).get("name"),
            steps=export.get("step"),
            kind="export",
        )
        return info
    config = _safe_yaml(ref.path / "config.yaml")
    checkpoints = list_checkpoints(ref.path)
    meta = _read_json(checkpoints[-1][1] / "meta.json") if checkpoints else {}
    imported = meta.get("imported") if isinstance(meta, dict) else None
    info.update(
        family=config.get("model"),
        preset=config.get("preset"),
        data=(config.get("data") or {}).get("name"),
        steps=checkpoints[-1][0] if checkpoints else 0,
        steps_planned=(config.get("train") or {}).get("steps"),
        kind="imported" if imported else "trained",
        imported_from=imported.get("from") if isinstance(imported, dict) else None,
        evaluation=_evaluation(ref.path / "eval.json"),
        has_samples=newest_sample(ref) is not None,
    )
    return info


def _safe_yaml(path: Path) -> dict[str, Any]:
    try:
        data = read_yaml(path)
    except UserError:
        return {}
    return data if isinstance(data, dict) else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _finite(values: Any) -> dict[str, float]:
    if not isinstance(values, dict):
        return {}
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def _evaluation(path: Path) -> dict[str, Any] | None:
    """The latest evaluation report's figures: metrics, the floor (image families) and the
    real-vs-real figures (noise families), with what was compared."""
    report = _read_json(path)
    if not isinstance(report, dict) or not report.get("metrics"):
        return None
    floor = report.get("floor") if isinstance(report.get("floor"), dict) else None
    real = report.get("real_vs_real") if isinstance(report.get("real_vs_real"), dict) else None
    return {
        "metrics": _finite(report.get("metrics")),
        "floor": None
        if floor is None
        else {
            "name": str(floor.get("name", "")),
            "metrics": _finite(floor.get("metrics")),
        },
        "real_vs_real": None
        if real is None
        else {
            "splits": str(real.get("splits", "")),
            "metrics": _finite(real.get("metrics")),
        },
        "features": str((report.get("features") or {}).get("name", "")),
        "n": (report.get("generated") or {}).get("n"),
        "real": str((report.get("real") or {}).get("source", "")),
    }


def newest_sample(ref: RunRef) -> Path | None:
    """The run's newest training sample grid (samples/step-*.png), when it lies in the run."""
    folder = ref.path / "samples"
    grids = sorted(folder.glob("step-*.png")) if folder.is_dir() else []
    for grid in reversed(grids):
        if grid.is_file() and inside(grid, ref.path):
            return grid
    return None


def loss_curves(ref: RunRef) -> dict[str, list[list[float]]]:
    """``{"G/loss": [[step, value], ...], ...}`` from the run's metrics.jsonl: every logged
    loss (keys with a slash), at most `CURVE_POINTS` points each."""
    path = ref.path / "metrics.jsonl"
    if not path.is_file() or not inside(path, ref.path):
        return {}
    with path.open("rb") as log:
        log.seek(max(0, path.stat().st_size - LOG_BYTES))
        lines = log.read().decode("utf-8", "replace").splitlines()
    series: dict[str, list[list[float]]] = {}
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the first line of a cut log, or a torn last one
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            continue
        for key, value in row.items():
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if "/" in key and ok and math.isfinite(value):
                series.setdefault(key, []).append([row["step"], float(value)])
    for key, points in series.items():
        if len(points) > CURVE_POINTS:
            stride = len(points) / CURVE_POINTS
            series[key] = [points[int(i * stride)] for i in range(CURVE_POINTS)] + [points[-1]]
    return series
