"""Is anyone still writing this file? What the agent can prove, and where it cannot tell.

A file whose size and modification time have not changed for a while may still be open in a
writer that paused (a slow query, a network share). Before an inbox with the ``stable``
completion rule takes a file, :func:`writer_state` asks the kernel:

1. a read lease (``fcntl F_SETLEASE F_RDLCK``): the kernel grants it only when no process on
   this machine has the file open for writing, whoever that process runs as. It needs the
   agent to own the file (or ``CAP_LEASE``) and a local filesystem;
2. otherwise ``/proc/*/fd`` and ``/proc/*/fdinfo``: a descriptor of the file opened for writing
   (``O_WRONLY``/``O_RDWR``). The agent can read only its own user's processes there: when
   another user's processes are hidden from it, it cannot tell.

On a network share (NFS, SMB/CIFS, …) the writer may be on another machine: nothing here can tell.
"Cannot tell" is never taken for "no writer": such an inbox must use ``rename`` or ``marker``
completion (the agent raises an alert and ``doctor`` says so).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["NETWORK_FILESYSTEMS", "WriterState", "can_prove_no_writer", "filesystem_type", "writer_state"]

#: filesystems whose writers may be on another machine
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "afs", "ceph", "glusterfs", "9p", "lustre", "gpfs", "ncpfs", "davfs"}
)
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)
_F_RDLCK = getattr(fcntl, "F_RDLCK", 0)
_F_UNLCK = getattr(fcntl, "F_UNLCK", 2)


@dataclass(frozen=True)
class WriterState:
    """``state``: ``"none"`` (proved: nobody writes it), ``"writing"`` (a writer holds it) or ``"unknown"``;
    ``why``: how it was told, or why it cannot be (for logs, alerts and ``doctor``)."""

    state: Literal["none", "writing", "unknown"]
    why: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: Path) -> str:
    """The type of the filesystem ``path`` is on (``ext4``, ``nfs4``, ``cifs``, ``fuse.sshfs`` …), or ``""``."""
    try:
        info = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    target = str(path.resolve())
    best, kind = "", ""
    for line in info.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split(" ")
        if len(fields) < 5 or not right:
            continue
        mount = _unescape(fields[4])
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, kind = mount, right.split(" ")[0]
    return kind


def _is_network(kind: str) -> bool:
    return kind in NETWORK_FILESYSTEMS or kind.startswith("fuse.") or kind == "fuse"


def _lease(path: Path) -> WriterState | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, _F_SETLEASE, _F_RDLCK)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return WriterState("writing", "a process holds it open for writing (the kernel refused a read lease)")
        return None  # not the owner, no CAP_LEASE, or a filesystem without leases: ask /proc
    else:
        fcntl.fcntl(fd, _F_SETLEASE, _F_UNLCK)
        return WriterState("none", "no process holds it open for writing (the kernel granted a read lease)")
    finally:
        os.close(fd)


def _proc(path: Path) -> WriterState:
    try:
        st = path.stat()
    except OSError as exc:
        return WriterState("unknown", f"cannot stat it: {exc}")
    me = os.getpid()
    hidden = 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return WriterState("unknown", "/proc is not readable")
    for pid in pids:
        if int(pid) == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            hidden += 1
            continue
        except OSError:  # the process ended
            continue
        for fd in fds:
            try:
                target = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if (target.st_dev, target.st_ino) != (st.st_dev, st.st_ino):
                continue
            try:
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text(encoding="ascii", errors="replace")
            except OSError:
                return WriterState("writing", f"process {pid} holds it open (mode unreadable)")
            m = re.search(r"^flags:\s*([0-7]+)", info, re.M)
            if m is None or int(m.group(1), 8) & 0o3 in (0o1, 0o2):
                return WriterState("writing", f"process {pid} holds it open for writing")
    if hidden:
        return WriterState(
            "unknown",
            f"the open files of {hidden} process(es) of other users are hidden from this user "
            "(/proc/PID/fd): a writer running as another user cannot be seen",
        )
    return WriterState("none", "no process holds it open for writing (/proc/*/fd)")


def writer_state(path: Path) -> WriterState:
    """Whether any process may still be writing ``path`` (see the module docstring). Never raises."""
    kind = filesystem_type(path.parent)
    if _is_network(kind):
        return WriterState(
            "unknown", f"it is on a network filesystem ({kind}): a writer on another machine is invisible"
        )
    leased = _lease(path)
    if leased is not None:
        return leased
    return _proc(path)


def can_prove_no_writer(folder: Path) -> WriterState:
    """Can the ``stable`` completion rule prove, for files in ``folder``, that nobody still writes them?

    ``"none"`` when it can (a local filesystem, and either this user owns what lands there or sees every
    process's open files), ``"unknown"`` with the reason when it cannot: ``doctor`` and the inbox's alert
    say to use ``rename`` or ``marker`` completion then.
    """
    kind = filesystem_type(folder)
    if _is_network(kind):
        return WriterState("unknown", f"{folder} is on a network filesystem ({kind})")
    me = os.geteuid()
    if me == 0:
        return WriterState("none", "running as root: every process's open files are visible")
    hidden = 0
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            os.listdir(f"/proc/{pid}/fd")
        except PermissionError:
            hidden += 1
        except OSError:
            continue
    if hidden == 0:
        return WriterState("none", "every process's open files are visible to this user")
    try:
        st = folder.stat()
    except OSError as exc:
        return WriterState("unknown", f"cannot stat {folder}: {exc}")
    others_write = st.st_uid != me or bool(st.st_mode & 0o022)
    if others_write:
        return WriterState(
            "unknown",
            f"other users may write into {folder}, and their open files are hidden from this user "
            f"({hidden} process(es)): a writer running as another user cannot be seen",
        )
    return WriterState("none", f"only this user writes into {folder} (its read leases prove no writer)")
