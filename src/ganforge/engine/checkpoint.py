"""Checkpoints: plain tensors and JSON, written atomically, read without executing anything.

```
checkpoints/step-000500/
    model.safetensors   every network's parameters and buffers (G, D, G_ema, ...)
    state.pt            optimizer states, step, batches drawn, RNG states; loaded weights_only
    meta.json           family, resolved config, data spec, library version, last losses
```
A checkpoint is written into a hidden temporary folder and renamed into place, so a crash never
leaves a half-written one under a real name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d+)$")


@dataclass
class Checkpoint:
    path: Path
    step: int
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint folder with a proper name, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    weights: dict[str, torch.Tensor],
    state: dict[str, Any],
    meta: dict[str, Any],
    *,
    keep: int,
    name: str | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically, then prune to the newest ``keep`` good ones.

    ``name`` (e.g. "best") writes a named checkpoint instead, replacing the previous one of
    that name; named checkpoints are never pruned."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / (name or checkpoint_name(step))
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    # safetensors wants contiguous, unshared tensors
    plain = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    save_file(plain, str(tmp / "model.safetensors"))
    torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=2) + "\n")
    if final.exists() and name:
        old = root / f".{final.name}.old-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
        return final
    if final.exists():
        # A damaged checkpoint of the same step (we resumed from an earlier one): keep it aside,
        # never delete what we did not write in this run.
        final.rename(root / f"{final.name}.damaged-{int(time.time())}")
    tmp.rename(final)
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    checkpoints = list_checkpoints(root.parent)
    for _, path in checkpoints[: max(0, len(checkpoints) - keep)]:
        shutil.rmtree(path)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load one checkpoint fully; raises ValueError saying what is damaged."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise ValueError("meta.json is missing") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"meta.json is not valid JSON ({err.msg})") from None
    try:
        weights = load_file(str(path / "model.safetensors"))
    except FileNotFoundError:
        raise ValueError("model.safetensors is missing") from None
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise ValueError(f"model.safetensors is damaged ({err})") from None
    state_file = path / "state.pt"
    if state_file.exists():
        try:
            state = torch.load(state_file, map_location="cpu", weights_only=True)
        except Exception as err:  # zip/pickle errors of a truncated file
            raise ValueError(f"state.pt is damaged ({type(err).__name__})") from None
    else:
        state = {}  # weights-only checkpoints (imports, exports) can be sampled from
    return Checkpoint(
        path=path, step=int(meta.get("step", 0)), weights=weights, state=state, meta=meta
    )


def latest_good_checkpoint(
    run_dir: str | Path, *, need_state: bool = True, warn=print
) -> Checkpoint:
    """The newest checkpoint that loads; damaged newer ones are reported and left in place."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise UserError(
            f"no checkpoints in '{run_dir}'; train first (ganforge train MODEL --out {run_dir})"
        )
    for _, path in reversed(checkpoints):
        try:
            ckpt = read_checkpoint(path)
            if need_state and not ckpt.state:
                raise ValueError("state.pt is missing")
            return ckpt
        except ValueError as err:
            warn(
                f"warning: checkpoint {path} is damaged ({err}); trying the previous one "
                "(nothing is deleted)"
            )
    raise UserError(
        f"every checkpoint in '{Path(run_dir) / CHECKPOINT_DIR}' is damaged; "
        "nothing to resume or load from"
    )
