"""Backup and restore of the agent's state (issue 22 item 4; seed 000 art. 21, seed 002 §5.1: off-site
backups and recovery drills). The drill: docs/state.md "Backup and restore".

A backup (``regbridge backup --out DIR``) is a folder:

- ``state.db`` (SQLite's online backup API: a consistent copy while the agent runs) or ``state.pgdump``
  (``pg_dump -Fc`` of the shared PostgreSQL state);
- ``blobs/`` (the encrypted copies of exports, materials and certificates, as kept), ``audit.log``,
  ``cipher.salt`` (the data key's salt; the key itself comes from the agent secret, never in a backup),
  ``keys/`` (the signing key files as kept: encrypted under the agent secret; keys in the OS keyring or a
  PKCS#11 token are not files and are not in it);
- ``manifest.json`` (when, what, the schema version).

The recovery point loses nothing. What happens after a backup outside the state is kept outside the
state, in the **recovery journal** (``recovery/`` beside the blobs, :class:`RecoveryJournal`), until a later
backup covers it: every export ingested (its encrypted copy, its inbox and name) and every receipt line
written to the loan system. A restore puts the backup back, then (:mod:`agent.daemon.recovery`) re-ingests
the journal's exports, records its receipt lines as delivered (so none is written twice) and re-adopts
from the centre, by client reference, every application it submitted after the backup.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from sdk.support.files import atomic_write

__all__ = ["BackupError", "RecoveryJournal", "RestoredFiles", "backup", "recovery_dir", "restore_files", "sqlite_path"]

#: the backup folder's format
FORMAT = 1


class BackupError(RuntimeError):
    """A backup or restore cannot be made (what, and what to do, in the message)."""


def recovery_dir(config: AgentConfig) -> Path:
    """The recovery journal's folder: beside the blobs (on the shared mount of a shared state)."""
    if config.state.blobs_dir:
        return config.resolve(config.state.blobs_dir).parent / "recovery"
    return config.resolve(config.data_dir) / "recovery"


def blobs_dir(config: AgentConfig) -> Path:
    """The encrypted copies' folder (``state.blobs_dir``, else ``blobs`` in ``data_dir``)."""
    if config.state.blobs_dir:
        return config.resolve(config.state.blobs_dir)
    return config.resolve(config.data_dir) / "blobs"


class RecoveryJournal:
    """What happened after the last backup, outside the state: exports ingested, receipt lines written.

    ``exports/<sha256>`` is the export's encrypted copy (the blob as kept) and ``exports/<sha256>.json`` its
    inbox and file name; ``receipts.jsonl`` one line per receipt line written (reference, kind, inbox,
    payload, file). Appends and the pruning after a backup hold ``journal.lock``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.exports_dir = root / "exports"
        self.receipts_file = root / "receipts.jsonl"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.exports_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.root / "journal.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def keep_export(self, sha256: str, inbox: str, name: str, sealed: Path) -> None:
        """Keep an ingested export (``sealed``: its encrypted blob) until a backup covers it."""
        with self._locked():
            target = self.exports_dir / sha256
            if not target.exists():
                atomic_write(target, sealed.read_bytes())
            meta = {"sha256": sha256, "inbox": inbox, "name": name, "at": datetime.now(UTC).isoformat()}
            atomic_write(target.with_name(sha256 + ".json"), json.dumps(meta, ensure_ascii=False).encode())

    def note_receipts(self, lines: list[dict[str, Any]], path: str) -> None:
        """Journal the receipt lines just written to ``path`` (``lines``: rows of the receipts table)."""
        if not lines:
            return
        with self._locked(), open(self.receipts_file, "a", encoding="utf-8") as fh:
            for r in lines:
                entry = {"reference": r["reference"], "kind": r["kind"], "inbox": r["inbox"], "payload": r["payload"]}
                fh.write(json.dumps({**entry, "file": path}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def exports(self) -> list[dict[str, Any]]:
        """The exports kept, oldest first: sha256, inbox, name, at."""
        if not self.exports_dir.is_dir():
            return []
        found = [json.loads(p.read_text(encoding="utf-8")) for p in self.exports_dir.glob("*.json")]
        return sorted(found, key=lambda e: (e["at"], e["name"]))

    def receipts(self) -> list[dict[str, Any]]:
        """The receipt lines journalled (a line cut by a crash is skipped)."""
        if not self.receipts_file.exists():
            return []
        out = []
        for raw in self.receipts_file.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return out

    def mark(self) -> tuple[set[str], int]:
        """What a backup about to be taken will cover: the exports kept and the journal's length (bytes)."""
        with self._locked():
            size = self.receipts_file.stat().st_size if self.receipts_file.exists() else 0
            return {e["sha256"] for e in self.exports()}, size

    def prune(self, exports: set[str], receipts_upto: int) -> None:
        """Forget what a backup covers (the exports and journal bytes :meth:`mark` answered before it)."""
        with self._locked():
            for sha in exports:
                (self.exports_dir / sha).unlink(missing_ok=True)
                (self.exports_dir / (sha + ".json")).unlink(missing_ok=True)
            if self.receipts_file.exists() and receipts_upto:
                rest = self.receipts_file.read_bytes()[receipts_upto:]
                atomic_write(self.receipts_file, rest, mode=0o600)


def _libpq_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _server_major(url: str) -> int:
    """The PostgreSQL server's major version (``server_version_num`` // 10000: 150004 → 15)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            return int(db.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
    except sa.exc.SQLAlchemyError as exc:
        raise BackupError(f"cannot reach the PostgreSQL state: {exc.__class__.__name__}: {exc}") from None
    finally:
        engine.dispose()


def _tool_major(path: str) -> int | None:
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    digits = done.stdout.strip().rsplit(" ", 1)[-1].split(".")[0] if done.returncode == 0 else ""
    return int(digits) if digits.isdigit() else None


def _pg_tool(name: str, url: str) -> str:
    """``pg_dump`` or ``pg_restore`` of the server's major version (Debian keeps each version's binaries in
    ``/usr/lib/postgresql/<major>/bin``, not on PATH); else the lowest newer one (both read older servers'
    dumps and catalogs); else the one on PATH, if it is not older than the server.

    Raises:
        BackupError: none installed, or only older than the server (pg_dump refuses a newer server).
    """
    major = _server_major(url)
    versions = sorted(
        (int(Path(p).parent.parent.name), p)
        for p in glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
        if Path(p).parent.parent.name.isdigit()
    )
    for version, path in versions:
        if version >= major:
            return path
    on_path = shutil.which(name)
    if on_path is not None and (_tool_major(on_path) or 0) >= major:
        return on_path
    found = ", ".join(str(v) for v, _ in versions) or "none"
    raise BackupError(
        f"{name} of PostgreSQL {major} or newer is needed (the state's server is {major}; installed: {found});"
        f" Debian: apt-get install postgresql-client-{major}"
    )


def sqlite_path(config: AgentConfig) -> Path | None:
    """The state's SQLite file (embedded, or a ``sqlite:///`` state.url); None for PostgreSQL."""
    if not config.state.url:
        return config.resolve(config.data_dir) / "state.db"
    import sqlalchemy as sa

    url = sa.make_url(config.state.url)
    if url.get_backend_name() != "sqlite":
        return None
    return Path(url.database or "")


def _copy_tree(source: Path, target: Path, *, overwrite: bool) -> int:
    """Copy the files under ``source`` to ``target`` (keeping modes); answers how many were copied."""
    copied = 0
    if not source.is_dir():
        return 0
    for path in source.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        dest = target / path.relative_to(source)
        if dest.exists() and not overwrite:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(path, dest)
        copied += 1
    return copied


def backup(config: AgentConfig, out: Path) -> dict[str, Any]:
    """Take a backup of the agent's state into the new folder ``out``; answers its manifest.

    Safe while the agent runs (SQLite's online backup API; ``pg_dump`` takes one consistent snapshot). Then
    the recovery journal forgets what the backup covers.

    Raises:
        BackupError: ``out`` exists and is not empty, or ``pg_dump`` is missing or fails.
    """
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} exists and is not empty: give a new folder for each backup")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = config.resolve(config.data_dir)
    journal = RecoveryJournal(recovery_dir(config))
    covered, upto = journal.mark()  # before the snapshot: what was journalled is in it
    db = sqlite_path(config)
    if db is not None:
        if not db.exists():
            raise BackupError(f"no state at {db}: nothing to back up")
        src, dst = sqlite3.connect(db), sqlite3.connect(out / "state.db")
        try:
            src.backup(dst)
            version = int(dst.execute("PRAGMA user_version").fetchone()[0])
        finally:
            dst.close()
            src.close()
        kind = "sqlite"
    else:
        assert config.state.url is not None
        pg_dump = _pg_tool("pg_dump", config.state.url)
        done = subprocess.run(
            [pg_dump, "-Fc", "--no-owner", "-f", str(out / "state.pgdump"), _libpq_url(config.state.url)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise BackupError(f"pg_dump failed: {done.stderr.strip()[-500:]}")
        from agent.state.sql import SQLStore

        store = SQLStore(config.state.url)
        try:
            version = store.schema_version()
        finally:
            store.close()
        kind = "postgresql"
    os.chmod(out / ("state.db" if kind == "sqlite" else "state.pgdump"), 0o600)
    blobs = _copy_tree(blobs_dir(config), out / "blobs", overwrite=True)
    for name in ("audit.log", "cipher.salt"):
        if (data / name).exists():
            shutil.copy2(data / name, out / name)
    keys = 0
    if config.centre.key_store == "file":  # encrypted key files as kept; a keyring or token keeps its own
        keys = _copy_tree(config.resolve(config.centre.key_dir), out / "keys", overwrite=True)
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "institution_id": config.centre.institution_id,
        "state": kind,
        "schema_version": version,
        "blobs": blobs,
        "keys": keys,
        "key_store": config.centre.key_store,
        "exports_covered": len(covered),
    }
    atomic_write(out / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode(), mode=0o600)
    journal.prune(covered, upto)
    return manifest


@dataclass
class RestoredFiles:
    """What :func:`restore_files` put back."""

    manifest: dict[str, Any]
    set_aside: list[str] = field(default_factory=list)
    blobs: int = 0
    keys: int = 0
    audit_log: bool = False


def restore_files(config: AgentConfig, source: Path) -> RestoredFiles:
    """Put a backup's state, blobs, salt and missing key files back (every instance stopped first).

    The state replaces the current one (a SQLite file is set aside as ``state.db.before-restore-…``; a
    PostgreSQL state is restored with ``pg_restore --clean``); blobs and key files are added where missing,
    never overwritten; the current audit log is kept (its chain goes on), restored only when lost.

    Raises:
        BackupError: not a backup of this institution, or ``pg_restore`` fails.
    """
    try:
        manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a backup (manifest.json: {exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("institution_id") != config.centre.institution_id:
        raise BackupError(
            f"{source} is a backup of institution {manifest.get('institution_id')}, not of this agent's"
            f" {config.centre.institution_id}"
        )
    data = config.resolve(config.data_dir)
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    done = RestoredFiles(manifest)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    salt = source / "cipher.salt"
    current_salt = data / "cipher.salt"
    if salt.exists() and (not current_salt.exists() or current_salt.read_bytes() != salt.read_bytes()):
        if current_salt.exists():
            os.replace(data / "cipher.salt", data / f"cipher.salt.before-restore-{stamp}")
            done.set_aside.append(f"cipher.salt.before-restore-{stamp}")
        shutil.copy2(salt, data / "cipher.salt")
    db = sqlite_path(config)
    if manifest["state"] == "sqlite":
        if db is None:
            raise BackupError("this backup holds a SQLite state; this agent's state.url is PostgreSQL")
        for suffix in ("", "-wal", "-shm"):
            current = db.with_name(db.name + suffix)
            if current.exists():
                os.replace(current, current.with_name(f"{current.name}.before-restore-{stamp}"))
                done.set_aside.append(f"{current.name}.before-restore-{stamp}")
        db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(source / "state.db", db)
    else:
        if db is not None or not config.state.url:
            raise BackupError("this backup holds a PostgreSQL state; set state.url to the database to restore into")
        pg_restore = _pg_tool("pg_restore", config.state.url)
        run = subprocess.run(
            [pg_restore, "--clean", "--if-exists", "--no-owner", "--single-transaction",
             "-d", _libpq_url(config.state.url), str(source / "state.pgdump")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if run.returncode != 0:
            raise BackupError(f"pg_restore failed: {run.stderr.strip()[-500:]}")
    done.blobs = _copy_tree(source / "blobs", blobs_dir(config), overwrite=False)
    if config.centre.key_store == "file":
        done.keys = _copy_tree(source / "keys", config.resolve(config.centre.key_dir), overwrite=False)
    if not (data / "audit.log").exists() and (source / "audit.log").exists():
        shutil.copy2(source / "audit.log", data / "audit.log")
        done.audit_log = True
    return done
