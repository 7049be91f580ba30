"""Structured logs: one JSON object per line, personal data masked before it is written.

Every record passes through :func:`sdk.privacy.mask_text`, so an ID number that slips into a
message (an error from a parser, a value in an exception) is masked in the log as well.

The file rotates by size (``[logging] max_mb``, ``backups``: ``agent.log.1`` … ``.N``) and its level
is ``[logging] level``; both are applied again on SIGHUP. Under systemd (``$JOURNAL_STREAM`` names
our stderr), each stderr line starts with its syslog priority (``<3>`` error, ``<4>`` warning,
``<6>`` info, ``<7>`` debug — sd-daemon(3)), so ``journalctl -p warning -u regbridge`` filters.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sdk.privacy import mask_text

__all__ = ["JournalFormatter", "JsonFormatter", "configure_logging", "setup_logging", "under_journald"]

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = mask_text(str(value)) if not isinstance(value, int | float | bool) else value
        if record.exc_info:
            doc["error"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(JsonFormatter):
    """The JSON line behind its sd-daemon priority prefix (``<4>{…}``), for journald to file it by level."""

    def format(self, record: logging.LogRecord) -> str:
        level = max((lv for lv in _PRIORITY if lv <= record.levelno), default=logging.DEBUG)
        return f"<{_PRIORITY[level]}>{super().format(record)}"


def under_journald() -> bool:
    """Is our stderr the journal's stream (systemd sets ``$JOURNAL_STREAM`` to its device:inode)?"""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(
    log_file: Path | None = None,
    level: int | str = logging.INFO,
    *,
    stderr: bool = True,
    max_bytes: int = 0,
    backups: int = 0,
) -> None:
    """Send the ``regbridge`` loggers to stderr and/or ``log_file`` (rotated past ``max_bytes`` when > 0).

    Called again (SIGHUP), it replaces the handlers: a new level, size or file takes effect at once.
    """
    if isinstance(level, str):
        level = logging.getLevelNamesMapping()[level.upper()]
    root = logging.getLogger("regbridge")
    root.setLevel(level)
    # the scheduler's records in the same JSON form, errors only: its warnings say a run was skipped or
    # coalesced because the job was still running — how the daemon is meant to work, and under load tens
    # of thousands an hour of plain-text lines on stderr (the benchmarks' 27-minute run wrote 64,000)
    scheduler = logging.getLogger("apscheduler")
    scheduler.setLevel(logging.ERROR)
    for logger in (root, scheduler):
        logger.propagate = False
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
    formatter = JsonFormatter()
    handlers: list[logging.Handler] = []
    if stderr:
        h: logging.Handler = logging.StreamHandler(sys.stderr)
        h.setFormatter(JournalFormatter() if under_journald() else formatter)
        handlers.append(h)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        if max_bytes > 0:
            fh: logging.Handler = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        else:
            fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(formatter)
        handlers.append(fh)
    for handler in handlers:
        root.addHandler(handler)
        scheduler.addHandler(handler)


def configure_logging(config: Any, *, stderr: bool) -> None:
    """The agent's log as its config (:class:`agent.config.AgentConfig`) says: file, level, rotation."""
    log = config.logging
    setup_logging(
        config.log_file, log.level, stderr=stderr, max_bytes=int(log.max_mb * 1024 * 1024), backups=log.backups
    )
