"""Watch the inbox folders: which files are complete, and a watchdog observer per folder.

A file is read only when complete, by the folder's rule:

- ``rename``: the loan system writes under a temporary name and renames into place, so any
  file that does not look temporary (``.tmp``, ``.part``, ``~$…``, dot-files) is complete;
- ``marker``: ``name.done`` beside it says ``name`` is complete;
- ``stable``: size and modification time unchanged for ``stable_seconds`` across polls.

Watchdog (inotify, or a polling observer for network shares) only wakes the agent early; a
periodic full rescan finds whatever an event missed, and :class:`InboxWatcher` re-arms the
observer of a folder that vanished (a dropped share) once it is back.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from agent.config import InboxConfig
from agent.pipeline.context import StageContext

__all__ = ["InboxWatcher", "is_mount_point", "ready_files"]

log = logging.getLogger("regbridge.agent.watch")
TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".done", ".lock", ".swp")

# path → (size, mtime_ns, first seen with that size and mtime)
_stability: dict[Path, tuple[int, int, float]] = {}


def is_mount_point(path: Path) -> bool:
    """Is ``path`` where a filesystem is mounted — a network share, or a bind mount (Linux: mountinfo)?"""
    if os.path.ismount(path):
        return True
    try:
        info = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    target = str(path.resolve())
    for line in info.splitlines():
        fields = line.split(" ")
        if len(fields) > 4 and re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]) == target:
            return True
    return False


def _candidates(ctx: StageContext, inbox: InboxConfig) -> list[Path]:
    folder = ctx.config.resolve(inbox.path)
    if not folder.is_dir():
        return []
    patterns = ctx.profiles[inbox.name].source.patterns
    found = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name.startswith((".", "~$")) or name.lower().endswith(TEMPORARY_SUFFIXES):
            continue
        if not any(fnmatch.fnmatch(name, p) for p in patterns):
            continue
        if path.is_file():
            found.append(path)
    return found


def ready_files(ctx: StageContext, inbox: InboxConfig) -> list[Path]:
    ready = []
    now = time.monotonic()
    for path in _candidates(ctx, inbox):
        if inbox.completion == "rename":
            ready.append(path)
        elif inbox.completion == "marker":
            if path.with_name(path.name + ".done").exists():
                ready.append(path)
        else:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            seen = _stability.get(path)
            if seen is None or (seen[0], seen[1]) != (st.st_size, st.st_mtime_ns):
                _stability[path] = (st.st_size, st.st_mtime_ns, now)
                if inbox.stable_seconds > 0:
                    continue
            if st.st_size > 0 and now - _stability[path][2] >= inbox.stable_seconds:
                ready.append(path)
                _stability.pop(path, None)
    return ready


class InboxWatcher:
    """One watchdog observer per inbox folder, supervised; an event wakes the daemon."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.observers: dict[str, Any] = {}

    def supervise(self) -> None:
        """Arm the folders that are present and not watched; drop and alert the ones that are gone."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        ctx = self.ctx

        class Wake(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                ctx.supervisor.wake()

        for inbox in ctx.config.inbox:
            folder = ctx.config.resolve(inbox.path)
            observer = self.observers.get(inbox.name)
            if not folder.is_dir():
                if observer is not None:
                    self._stop(inbox.name)
                if ctx.store.raise_alert(f"inbox:{inbox.name}", f"inbox folder {folder} is missing (share dropped?)"):
                    log.error("inbox folder missing", extra={"inbox": inbox.name, "path": str(folder)})
                    ctx.audit.append("inbox.missing", inbox.name, "alert")
                continue
            if observer is not None and observer.is_alive():
                continue
            if observer is not None:
                self._stop(inbox.name)
            observer = PollingObserver(timeout=1.0) if inbox.polling else Observer()
            observer.schedule(Wake(), str(folder), recursive=True)
            observer.daemon = True
            try:
                observer.start()
            except OSError as exc:
                log.error("cannot watch inbox", extra={"inbox": inbox.name, "error": str(exc)})
                continue
            self.observers[inbox.name] = observer
            if ctx.store.clear_alert(f"inbox:{inbox.name}"):
                ctx.audit.append("inbox.rearmed", inbox.name, "ok")
                log.info("inbox folder back; watching again", extra={"inbox": inbox.name})

    def _stop(self, name: str) -> None:
        observer = self.observers.pop(name, None)
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout=5)
        except Exception:  # a dead observer may fail to stop cleanly; it is dropped either way
            pass

    def stop(self) -> None:
        for name in list(self.observers):
            self._stop(name)
