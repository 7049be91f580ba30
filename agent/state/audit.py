"""An append-only, hash-chained audit log of every action the agent takes.

Each line is a JSON record ``{seq, at, actor, action, target, outcome, detail, prev, hash}``;
``hash`` is the SHA-256 of ``prev`` and the record's canonical JSON, so changing, removing or
reordering a record breaks the chain from there on, and ``regbridge audit verify`` says where.
The head (last seq and hash) is also kept in the state store, so cutting records off the end
shows too. Details are masked (no names or ID numbers). A line torn by a crash mid-write is
not a record: the next append starts on a fresh line and ``verify`` reports the torn line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sdk.privacy import mask_text

__all__ = ["EXPORT_COLUMNS", "GENESIS", "AuditLog", "AuditVerification", "export_audit", "parse_bound", "verify_audit"]

GENESIS = "0" * 64


def _digest(prev: str, record: dict[str, Any]) -> str:
    body = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + body).encode()).hexdigest()


class AuditLog:
    def __init__(self, path: Path, actor: str = "agent") -> None:
        self.path = path
        self.actor = actor
        self._lock = threading.Lock()
        self.observers: list[Callable[[dict[str, Any]], None]] = []  # metrics count what is recorded
        self._batch = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)

    def _tail(self, fh: Any) -> tuple[int, str, bool]:
        """(last seq, last hash, ends with newline) of the file open in ``fh``."""
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return 0, GENESIS, True
        back = min(size, 65536)
        fh.seek(size - back)
        chunk = fh.read(back)
        ends = chunk.endswith(b"\n")
        for line in reversed(chunk.splitlines()):
            try:
                rec = json.loads(line)
                return int(rec["seq"]), str(rec["hash"]), ends
            except (ValueError, KeyError, TypeError):
                continue
        return 0, GENESIS, ends

    def append(
        self, action: str, target: str = "", outcome: str = "ok", *, actor: str | None = None, **detail: Any
    ) -> dict[str, Any]:
        entry = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "actor": actor or self.actor,
            "action": action,
            "target": mask_text(str(target)),
            "outcome": mask_text(str(outcome)),
            "detail": {k: mask_text(str(v)) for k, v in detail.items()},
        }
        pending = getattr(self._batch, "entries", None)
        if pending is not None:  # inside batch(): written with the others, at its end
            pending.append(entry)
            return entry
        return self._write([entry])[0]

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Appends made by this thread inside the block are written together, with one fsync, at its end."""
        if getattr(self._batch, "entries", None) is not None:
            yield  # nested: the outer block writes
            return
        self._batch.entries = []
        try:
            yield
        finally:
            entries, self._batch.entries = self._batch.entries, None
            if entries:
                self._write(entries)

    def _write(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records = []
        with self._lock, open(self.path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                seq, prev, ends = self._tail(fh)
                lines = []
                for entry in entries:
                    seq += 1
                    record = {"seq": seq, **entry, "prev": prev}
                    record["hash"] = prev = _digest(prev, record)
                    records.append(record)
                    lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                fh.write((b"" if ends else b"\n") + "".join(lines).encode())
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        for record in records:
            for observe in self.observers:
                observe(record)
        return records

    def head(self) -> tuple[int, str]:
        if not self.path.exists():
            return 0, GENESIS
        with open(self.path, "rb") as fh:
            seq, digest, _ = self._tail(fh)
        return seq, digest


@dataclass
class AuditVerification:
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    torn_lines: list[int] = field(default_factory=list)


def verify_audit(path: Path, expected_head: tuple[int, str] | None = None) -> AuditVerification:
    """Walk the chain; every break is reported with its line number."""
    result = AuditVerification(ok=True, records=0)
    if not path.exists():
        if expected_head and expected_head[0]:
            result.ok = False
            result.problems.append(f"{path} is missing but the state records {expected_head[0]} audit records")
        return result
    prev, seq = GENESIS, 0
    lines = path.read_bytes().split(b"\n")
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            claimed = rec.pop("hash")
        except (ValueError, KeyError, AttributeError):
            result.torn_lines.append(n)  # a write cut by a crash: not a record, and the chain goes on
            continue
        if rec.get("seq") != seq + 1:
            result.problems.append(f"line {n}: seq {rec.get('seq')} follows {seq} (a record is missing or reordered)")
        if rec.get("prev") != prev:
            result.problems.append(f"line {n}: prev does not match the hash of the record before it")
        if _digest(rec.get("prev", ""), rec) != claimed:
            result.problems.append(f"line {n}: the record was altered (its hash does not match its content)")
        prev, seq = claimed, int(rec.get("seq", seq + 1))
        result.records += 1
    if expected_head is not None and expected_head[0] > seq:
        result.problems.append(
            f"the log ends at record {seq} but the state records {expected_head[0]}: records were cut off the end"
        )
    result.ok = not result.problems
    return result


#: the columns of ``regbridge audit export --format csv`` (the JSONL form has the same keys)
EXPORT_COLUMNS = ["seq", "at", "at_local", "actor", "operator", "action", "target", "outcome", "detail", "hash"]


def parse_bound(text: str, tz: str, *, end: bool) -> datetime:
    """``--from``/``--to``: a day (``2026-11-30``: its start, or for ``end`` its last instant) or an ISO
    time; without an offset, in the branch's time zone ``tz``.

    Raises:
        ValueError: not an ISO day or time (the message says what was expected).
    """
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r}: expected a day (2026-11-30) or an ISO time (2026-11-30T09:00+08:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    if end and len(text.strip()) == 10:  # a whole day: up to its end
        moment += timedelta(days=1) - timedelta(microseconds=1)
    return moment


def export_audit(
    path: Path, since: datetime | None, until: datetime | None, fmt: str, tz: str = "Asia/Shanghai"
) -> tuple[bytes, int]:
    """The records of ``path`` with ``since <= at <= until``, as CSV (UTF-8 with BOM) or JSON Lines.

    Each record gains ``at_local`` (the time in ``tz`` with its offset) and ``operator`` (the 经办人 or
    console user the record names: its ``detail.operator``, else its actor when a person acted).
    Returns: (the file's bytes, the number of records).
    """
    import csv
    import io
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    chosen = []
    if path.exists():
        for raw in path.read_bytes().split(b"\n"):
            try:
                rec = json.loads(raw)
                at = datetime.fromisoformat(rec["at"])
            except (ValueError, KeyError, TypeError):
                continue
            if (since and at < since) or (until and at > until):
                continue
            detail = rec.get("detail") or {}
            actor = str(rec.get("actor") or "")
            rec["operator"] = detail.get("operator") or (actor if actor not in ("agent", "") else "")
            rec["at_local"] = at.astimezone(zone).isoformat(timespec="milliseconds")
            chosen.append(rec)
    if fmt == "jsonl":
        body = "".join(json.dumps({k: r.get(k) for k in EXPORT_COLUMNS}, ensure_ascii=False) + "\n" for r in chosen)
        return body.encode(), len(chosen)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for r in chosen:
        row = [json.dumps(r.get(k), ensure_ascii=False, sort_keys=True) if k == "detail" else r.get(k)
               for k in EXPORT_COLUMNS]  # fmt: skip
        writer.writerow(["'" + str(v) if str(v).startswith(("=", "+", "-", "@")) else ("" if v is None else v)
                         for v in row])  # fmt: skip
    return buf.getvalue().encode("utf-8-sig"), len(chosen)
