"""Atomic file writes: what is on disk is either the old content or the new, never half of either.

Used by the agent (state files, receipts, keys), the connectors (the filesystem document store) and
the installer; a process killed half-way leaves a hidden temporary file that the next write of the
same path removes.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from sdk.support import failpoints

__all__ = ["atomic_write", "temporary_name"]


def temporary_name(path: Path) -> Path:
    """Where ``path`` is written before its rename; leftovers of a killed process are removed first."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, failpoint: str | None = None) -> None:
    """Write ``data`` to ``path`` all at once: a temporary file, fsync, rename, fsync of the folder.

    A process killed half-way leaves ``path`` as it was, and a hidden temporary file that the next
    write of the same path removes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask or a leftover temporary file said
        with os.fdopen(fd, "wb") as fh:
            if failpoint:
                for piece in failpoints.halves(data, failpoint):
                    fh.write(piece)
                    fh.flush()
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
