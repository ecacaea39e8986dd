"""One writer per run folder: an advisory lock held for the life of a training.

The lock is an ``fcntl.flock`` on ``RUN/.ganforge.lock``.  The kernel drops it when the holding
process ends in any way (kill -9 included), so a stale lock can never block a later start; the
pid written into the file only serves the message of the process that is refused.  Readers
(`sample`, `eval`, `load`) never take it: checkpoints appear and disappear by atomic renames,
so reading needs no lock.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

try:  # POSIX only; elsewhere runs go unlocked (a second writer is then the user's to avoid)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".ganforge.lock"


class RunLock:
    """The held lock of one run folder; `release` (or the process's end) lets it go."""

    def __init__(self, run_dir: Path, fd: int | None) -> None:
        self.run_dir, self._fd = run_dir, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_run_lock(run_dir: str | Path) -> RunLock:
    """Take the writer's lock of ``run_dir`` (creating the folder), or raise a `UserError`
    naming the process that holds it.  Never waits: a second training refuses at once."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create run folder '{run_dir}': {err.strerror}") from None
    if fcntl is None:  # pragma: no cover
        return RunLock(run_dir, None)
    path = run_dir / LOCK_FILE
    # O_RDWR without O_TRUNC: the holder's pid stays readable until we own the lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(
            f"'{run_dir}' is being written by another training (pid {holder}); wait for it "
            "to finish, or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RunLock(run_dir, fd)


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` was made by a GANForge training (it carries the lock file)."""
    return (run_dir / LOCK_FILE).exists()
