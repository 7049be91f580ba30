"""Watch the inbox folders: which files are complete, and a watchdog observer per folder.

A file is read only when complete, by the folder's rule:

- ``rename``: the loan system writes under a temporary name and renames into place, so any
  file that does not look temporary (``.tmp``, ``.part``, ``~$…``, dot-files) is complete;
- ``marker``: ``name.done`` beside it says ``name`` is complete;
- ``stable``: size and modification time unchanged for ``stable_seconds`` across polls, *and* no
  process holding the file open for writing (:func:`agent.pipeline.writers.writer_state`: a read
  lease, or ``/proc/*/fd``). Where the agent cannot tell — a writer running as another user, a
  network share — it never assumes "no writer": the file waits, an alert says the inbox needs
  ``rename`` or ``marker`` completion, and ``doctor`` says so too.

File names match the profile's ``patterns`` whatever their case (``EXPORT.CSV`` is a ``*.csv``). A
file in an inbox that no pattern accepts, and an export reached through a symbolic link (refused:
it may lead anywhere), raise an alert that ``status`` shows until the file is gone.

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
from agent.pipeline.writers import writer_state
from agent.state.store import now_iso

__all__ = ["InboxWatcher", "is_mount_point", "ready_files", "settling_files"]

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


def _matches(name: str, patterns: list[str]) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def _scan_folder(ctx: StageContext, inbox: InboxConfig) -> tuple[list[Path], dict[str, str]]:
    """The exports an inbox holds, and the files it holds that will not be read (name → why, in Chinese)."""
    folder = ctx.config.resolve(inbox.path)
    if not folder.is_dir():
        return [], {}
    patterns = ctx.profiles[inbox.name].source.patterns
    found: list[Path] = []
    refused: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        name = path.name
        if name.startswith((".", "~$")) or name.lower().endswith(TEMPORARY_SUFFIXES):
            continue
        if path.is_symlink():
            if _matches(name, patterns):
                refused[name] = "是符号链接，拒绝读取（链接可指向任何位置）：请把文件本身放入收件夹"
            continue
        if not path.is_file():
            continue  # materials/, quarantine/, receipts/ …
        if not _matches(name, patterns):
            refused[name] = f"不符合本收件夹配置的文件名模式 {', '.join(patterns)}，不会被读取"
            continue
        found.append(path)
    return found, refused


def _candidates(ctx: StageContext, inbox: InboxConfig) -> list[Path]:
    found, refused = _scan_folder(ctx, inbox)
    _alert_refused(ctx, inbox, refused)
    return found


def _alert_refused(ctx: StageContext, inbox: InboxConfig, refused: dict[str, str]) -> None:
    """One alert per file the inbox holds but will not read; cleared once the file is gone."""
    prefix = f"inbox-file:{inbox.name}:"
    for name, why in refused.items():
        if ctx.store.raise_alert(prefix + name, f"收件夹 {inbox.name} 中的文件 {name} {why}"):
            # the loan system hears of it too: one receipt line for the export refused as a whole
            ctx.store.add_receipt(
                f"file-refused:{name}", "file", inbox.name,
                {"loan_no": f"(文件){name}", "reference": f"file-refused:{name}", "event": "file_refused",
                 "status": "整个文件拒收，未读取", "reason": why, "file": name, "rows": "", "at": now_iso()},
            )  # fmt: skip
            log.warning("a file in the inbox will not be read", extra={"inbox": inbox.name, "file": name})
            ctx.audit.append("inbox.file_refused", f"{inbox.name}/{name}", "alert")
    for alert in ctx.store.alerts():
        kind = alert["kind"]
        if kind.startswith(prefix) and kind[len(prefix) :] not in refused:
            ctx.store.clear_alert(kind)


def _writer_check(ctx: StageContext, inbox: InboxConfig, path: Path) -> bool:
    """May a file that stood still be taken? Only when no writer is proved; else it waits (and an alert says
    why, when the agent cannot tell)."""
    state = writer_state(path)
    kind = f"completion:{inbox.name}"
    if state.state == "none":
        return True
    if state.state == "unknown":
        message = (
            f"收件夹 {inbox.name} 使用 stable 完成规则，但无法确认 {path.name} 已无写入者（{state.why}）："
            '文件不会被读取。请改用 completion = "rename"（先写临时名再改名）或 "marker"（写完后放 .done 标记）'
        )
        if ctx.store.raise_alert(kind, message):
            log.error(
                "cannot tell whether an export is still being written", extra={"inbox": inbox.name, "why": state.why}
            )
            ctx.audit.append("inbox.completion_unprovable", inbox.name, "alert")
    return False


def settling_files(ctx: StageContext, inbox: InboxConfig) -> list[Path]:
    """The exports an inbox holds that are not yet taken: still settling, still written, or waiting for a marker."""
    return _scan_folder(ctx, inbox)[0]


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
                if not _writer_check(ctx, inbox, path):
                    _stability[path] = (st.st_size, st.st_mtime_ns, now)  # look again after another still period
                    continue
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
