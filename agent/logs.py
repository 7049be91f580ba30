"""Structured logs: one JSON object per line, personal data masked before it is written.

Every record passes through :func:`sdk.privacy.mask_text`, so an ID number that slips into a
message (an error from a parser, a value in an exception) is masked in the log as well.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sdk.privacy import mask_text

__all__ = ["JsonFormatter", "setup_logging"]

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


def setup_logging(log_file: Path | None = None, level: int = logging.INFO, *, stderr: bool = True) -> None:
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
        handlers.append(h)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
        scheduler.addHandler(handler)
