"""Checkpoints: plain tensors and JSON, written atomically, read without executing anything.

```
checkpoints/step-000500/
    model.safetensors   every network's parameters and buffers (G, D, G_ema, ...)
    state.pt            optimizer states, step, batches drawn, RNG states; loaded weights_only
    meta.json           family, resolved config, data spec, library version, last losses,
                        and the SHA-256 of each other file ("files")
```
A checkpoint is written into a hidden temporary folder and renamed into place, so a crash never
leaves a half-written one under a real name.  A pruned checkpoint is first renamed to a hidden
trash name and deleted there, so a reader that listed it finds either all of it or none (and
then lists again).  Reading verifies the recorded hashes: a file changed after it was written
(a flipped byte on disk, a bad copy) counts as damage, like a truncated one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..errors import UserError

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d+)$")
# what killed writers leave: temporary folders, set-aside named checkpoints, pruned ones
_LEFTOVER = re.compile(r"^\.(.+\.(tmp|old)-\d+|trash-.+)$")
# meta.json entries every reader relies on, with their JSON types
_META_KEYS = {"family": str, "config": dict, "data_spec": dict}


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
    that name; named checkpoints are never pruned.  A failed write (a full disk, a read-only
    file system) is a `UserError`; the older checkpoints are left as they were."""
    root = Path(run_dir) / CHECKPOINT_DIR
    final = root / (name or checkpoint_name(step))
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_files(tmp, weights, state, {**meta, "step": step})
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(
            f"cannot write checkpoint {final}: {err.strerror or err}; the older checkpoints "
            "are intact (free some space or fix the folder's permissions, then --resume)"
        ) from None
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


def _write_files(
    folder: Path, weights: dict[str, torch.Tensor], state: dict[str, Any], meta: dict[str, Any]
) -> None:
    """The three files of a checkpoint; meta.json last, with the SHA-256 of the others.

    Every file goes through the same `_write_bytes`, so all get the same permissions (the
    umask's), and each is on disk (fsync) before the folder is renamed into place."""
    # safetensors wants contiguous, unshared tensors
    plain = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    blobs = {"model.safetensors": save_safetensors(plain), "state.pt": buffer.getvalue()}
    for file, data in blobs.items():
        _write_bytes(folder / file, data)
    meta = {**meta, "files": {file: _sha256(data) for file, data in blobs.items()}}
    _write_bytes(folder / "meta.json", (json.dumps(meta, indent=2) + "\n").encode())


def _write_bytes(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _prune(root: Path, keep: int) -> None:
    checkpoints = list_checkpoints(root.parent)
    for _, path in checkpoints[: max(0, len(checkpoints) - keep)]:
        # rename first: a reader that listed this folder then finds all of it or nothing
        trash = root / f".trash-{path.name}-{os.getpid()}"
        path.rename(trash)
        shutil.rmtree(trash)


def remove_leftovers(run_dir: str | Path) -> list[str]:
    """Delete what killed writes left in ``RUN/checkpoints`` (hidden temporary, set-aside and
    half-pruned folders); returns their names.  Call it only while holding the run's lock:
    another live writer's temporary folder looks the same."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    removed = []
    for p in sorted(root.iterdir()):
        if _LEFTOVER.match(p.name) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            removed.append(p.name)
    return removed


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load one checkpoint fully; raises ValueError saying what is damaged.

    A folder replaced while it is read (a named checkpoint rewritten by a live training) is
    read again, so the files always come from one write."""
    path = Path(path)
    for _ in range(3):
        before = _inode(path)
        try:
            return _read_once(path)
        except ValueError:
            after = _inode(path)
            if before is None or after is None or after == before:
                raise
    return _read_once(path)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _read_once(path: Path) -> Checkpoint:
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise ValueError("meta.json is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"meta.json is not valid JSON ({err})") from None
    _check_meta(meta)
    weights_data = _verified_bytes(path, "model.safetensors", meta)
    try:
        weights = load_safetensors(weights_data)
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise ValueError(f"model.safetensors is damaged ({err})") from None
    if (path / "state.pt").exists() or "state.pt" in meta.get("files", {}):
        state_data = _verified_bytes(path, "state.pt", meta)
        try:
            state = torch.load(io.BytesIO(state_data), map_location="cpu", weights_only=True)
        except Exception as err:  # zip/pickle errors of a truncated or forged file
            raise ValueError(f"state.pt is damaged ({type(err).__name__})") from None
        if not isinstance(state, dict):
            raise ValueError(f"state.pt holds a {type(state).__name__}, not a training state")
    else:
        state = {}  # weights-only checkpoints (imports, exports) can be sampled from
    return Checkpoint(path=path, step=meta["step"], weights=weights, state=state, meta=meta)


def _check_meta(meta: Any) -> None:
    """meta.json must be an object with the entries readers use (ValueError otherwise)."""
    if not isinstance(meta, dict):
        raise ValueError(f"meta.json holds a JSON {type(meta).__name__}, not an object")
    for key, kind in _META_KEYS.items():
        if not isinstance(meta.get(key), kind):
            raise ValueError(f"meta.json has no {kind.__name__} '{key}'")
    step = meta.setdefault("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"meta.json has step {step!r}, not a whole number")
    if not isinstance(meta.get("files", {}), dict):
        raise ValueError("meta.json's 'files' is not an object of hashes")


def _verified_bytes(folder: Path, file: str, meta: dict[str, Any]) -> bytes:
    """The bytes of ``folder/file``, checked against the SHA-256 that meta.json records.

    Checkpoints written before hashes were recorded have no "files" entry: they load
    unverified, as they always did."""
    try:
        data = (folder / file).read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{file} is missing") from None
    expected = meta.get("files", {}).get(file)
    if expected is not None and _sha256(data) != expected:
        raise ValueError(f"{file} does not match the SHA-256 recorded when it was written")
    return data


def check_state(state: dict[str, Any], groups: list[str] | None = None) -> None:
    """A training state must hold what resuming reads: ValueError naming what is missing.
    ``groups``: the optimizer names the model trains (each needs its state)."""
    for key, kind in (("step", int), ("batches_drawn", int), ("optimizers", dict), ("rng", list)):
        if not isinstance(state.get(key), kind):
            raise ValueError(f"state.pt has no {kind.__name__} '{key}'")
    for group in groups or []:
        if not isinstance(state["optimizers"].get(group), dict):
            raise ValueError(f"state.pt has no optimizer state for '{group}'")


def check_tensors(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """``weights`` must have exactly the names and shapes of ``expected`` (a model's
    ``state_dict()``): ValueError naming the first tensor that is missing, extra or reshaped."""
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ValueError(f"model.safetensors lacks tensor '{missing[0]}'")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise ValueError(f"model.safetensors has an unknown tensor '{extra[0]}'")
    for key, tensor in expected.items():
        if weights[key].shape != tensor.shape:
            raise ValueError(
                f"tensor '{key}' has shape {list(weights[key].shape)}, the model needs "
                f"{list(tensor.shape)}"
            )


def latest_good_checkpoint(
    run_dir: str | Path,
    *,
    need_state: bool = True,
    warn: Callable[[str], None] = print,
    accept: Callable[[Checkpoint], None] | None = None,
) -> Checkpoint:
    """The newest checkpoint that loads; damaged newer ones are reported and left in place.

    ``accept`` may check more (that the tensors fit the model) and raise ValueError to skip a
    checkpoint the same way.  A checkpoint pruned by a live training between listing and
    reading is not damage: the folder is listed again."""
    for _ in range(5):
        checkpoints = list_checkpoints(run_dir)
        if not checkpoints:
            raise UserError(
                f"no checkpoints in '{run_dir}'; train first (ganforge train MODEL --out {run_dir})"
            )
        vanished = False
        for _, path in reversed(checkpoints):
            try:
                ckpt = read_checkpoint(path)
                if need_state and not ckpt.state.get("imported"):
                    if not ckpt.state:
                        raise ValueError("state.pt is missing")
                    check_state(ckpt.state)
                if accept is not None:
                    accept(ckpt)
                return ckpt
            except ValueError as err:
                if not path.is_dir():  # pruned meanwhile: the newer ones are listed again
                    vanished = True
                    break
                warn(
                    f"warning: checkpoint {path} is damaged ({err}); trying the previous one "
                    "(nothing is deleted)"
                )
        if not vanished:
            break
    raise UserError(
        f"every checkpoint in '{Path(run_dir) / CHECKPOINT_DIR}' is damaged; "
        "nothing to resume or load from"
    )
