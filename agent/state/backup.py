"""Backup and restore of the agent's state (issue 22 item 4; seed 000 art. 21, seed 002 §5.1: off-site
backups and recovery drills). The drill: docs/state.md "Backup and restore".

A backup (``regbridge backup --out DIR``) is a folder:

- ``state.db`` (SQLite's online backup API: a consistent copy while the agent runs) or ``state.pgdump``
  (``pg_dump -Fc`` of the shared PostgreSQL state);
- ``blobs/`` (the encrypted copies of exports, materials and certificates, as kept), ``audit.log``,
  ``cipher.salt`` (the data key's salt; the key itself comes from the agent secret, never in a backup),
  ``keys/`` (the signing key files as kept: encrypted under the agent secret; keys in the OS keyring or a
  PKCS#11 token are not files and are not in it);
- ``manifest.json`` (when, what, the schema version, and the SHA-256 of every other file in the folder), with
  ``mac``: HMAC-SHA256 over the rest of it (:func:`manifest_mac`), keyed from the agent secret.

A restore (:func:`verify_backup`, then :func:`restore_files`) checks the whole backup before it touches
anything live: every file's checksum, no file missing or added, the state itself (SQLite's
``PRAGMA integrity_check`` on a copy; ``pg_restore`` reads the whole dump, its data to nowhere). The live
SQLite file is set aside only once the backup's copy is in place beside it and checked there, and put back if
anything fails.

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
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from sdk.support.files import atomic_write

__all__ = [
    "BackupError",
    "RecoveryJournal",
    "RestoredFiles",
    "backup",
    "host_lock",
    "live_instances",
    "recovery_dir",
    "restore_files",
    "sqlite_path",
    "verify_backup",
]

#: the backup folder's format (2: the manifest lists every file's SHA-256; 3: and carries ``mac``, an HMAC over
#: the rest of it, so a file edited with its hash recomputed in the manifest is refused too)
FORMAT = 3
#: HKDF ``info`` of the manifest's MAC key (one key per use of the agent secret)
MANIFEST_KEY_INFO = b"regbridge backup manifest v1"


def manifest_mac(manifest: dict[str, Any], secret: bytes) -> str:
    """The manifest's MAC: HMAC-SHA256 (hex) over its canonical bytes (sorted-key compact UTF-8 JSON of every
    field but ``mac``), keyed by HKDF-SHA256(agent secret, info :data:`MANIFEST_KEY_INFO`). The key is derived
    in memory each time and never written anywhere; every instance sharing the agent secret checks it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=MANIFEST_KEY_INFO).derive(secret)
    body = {k: v for k, v in manifest.items() if k != "mac"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


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

    def started_at(self) -> datetime | None:
        """When the backup this journal goes on from was taken (its manifest's ``created_at``); None before the
        first backup."""
        try:
            at = datetime.fromisoformat(json.loads((self.root / "since.json").read_text(encoding="utf-8"))["at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return at if at.tzinfo is not None else None

    def start(self, created_at: str) -> None:
        """The journal goes on from the backup taken at ``created_at`` (what was before it is pruned)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.root / "since.json", json.dumps({"at": created_at}).encode(), mode=0o600)

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


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """``url`` (SQLAlchemy's) as libpq's connection URI for ``pg_dump``/``pg_restore``, and their environment:
    a password in the URL goes in ``PGPASSWORD`` (a process's arguments are readable by every user of the host;
    its environment is not), never on the command line.
    """
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    password = parsed.password or parsed.query.get("password")
    bare = sa.URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query={k: v for k, v in parsed.query.items() if k != "password"},
    )
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return bare.render_as_string(hide_password=False), env


def _server_major(url: str) -> int:
    """The PostgreSQL server's major version (``server_version_num`` // 10000: 150004 → 15)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            return int(db.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
    except sa.exc.SQLAlchemyError as exc:
        from agent.state.sql import db_error_line, redact_url

        raise BackupError(f"cannot reach the PostgreSQL state {redact_url(url)}: {db_error_line(exc)}") from None
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files_of(folder: Path) -> dict[str, Path]:
    """Every file of a backup folder but its manifest, by its path inside it (``blobs/ab/…``)."""
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }


@contextmanager
def host_lock(data: Path, error: type[Exception] = BackupError) -> Iterator[None]:
    """Hold this host's agent lock (``agent.lock`` in ``data_dir``, the one ``regbridge run`` holds) for the
    whole block: no agent starts here meanwhile (backup, restore and ``state migrate`` hold it).

    Raises:
        BackupError: (or ``error``, the caller's own kind) an agent runs on ``data`` (its pid in the message).
    """
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(data / "agent.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise error(
                f"another agent (pid {fh.read().strip() or '?'}) is running on {data}; stop it first"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def backup(config: AgentConfig, out: Path, secret: bytes) -> dict[str, Any]:
    """Take a backup of the agent's state into the new folder ``out``; answers its manifest (its ``mac``
    keyed from the agent ``secret``: :func:`manifest_mac`).

    Safe while the agent runs (SQLite's online backup API; ``pg_dump`` takes one consistent snapshot). Then
    the recovery journal forgets what the backup covers. A backup that fails removes what it made (the
    folder, when it made it; else what it wrote into the empty folder it was given).

    Raises:
        BackupError: ``out`` exists and is not empty, or ``pg_dump`` is missing or fails.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} exists and is not empty: give a new folder for each backup")
    made = out  # the outermost folder this backup makes (removed again if it fails)
    while not made.parent.exists():
        made = made.parent
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    journal = RecoveryJournal(recovery_dir(config))
    covered, upto = journal.mark()  # before the snapshot: what was journalled is in it
    try:
        manifest = _take(config, out, len(covered), secret)
    except BaseException:
        if existed:  # it was empty: what is in it now is this backup's
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            shutil.rmtree(made, ignore_errors=True)
        raise
    journal.prune(covered, upto)  # only once the backup is whole (never before a backup removed as failed)
    journal.start(manifest["created_at"])
    return manifest


def _take(config: AgentConfig, out: Path, covered: int, secret: bytes) -> dict[str, Any]:
    data = config.resolve(config.data_dir)
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
        uri, env = _libpq(config.state.url)
        done = subprocess.run(
            [pg_dump, "-Fc", "--no-owner", "-f", str(out / "state.pgdump"), uri],
            capture_output=True, text=True, check=False, env=env,
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
    os.chmod(out / STATE_FILES[kind], 0o600)
    blobs = _copy_tree(blobs_dir(config), out / "blobs", overwrite=True)
    for name in ("audit.log", "cipher.salt"):
        if (data / name).exists():
            shutil.copy2(data / name, out / name)
    keys = 0
    if config.centre.key_store == "file":  # encrypted key files as kept; a keyring or token keeps its own
        keys = _copy_tree(config.resolve(config.centre.key_dir), out / "keys", overwrite=True)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "institution_id": config.centre.institution_id,
        "state": kind,
        "schema_version": version,
        "blobs": blobs,
        "keys": keys,
        "key_store": config.centre.key_store,
        "exports_covered": covered,
        "files": {name: _sha256(path) for name, path in _files_of(out).items()},
    }
    manifest["mac"] = manifest_mac(manifest, secret)
    atomic_write(out / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode(), mode=0o600)
    return manifest


#: the state's file in a backup, by backend
STATE_FILES = {"sqlite": "state.db", "postgresql": "state.pgdump"}


def _sqlite_check(path: Path) -> str | None:
    """What ``PRAGMA integrity_check`` finds wrong with the SQLite file ``path`` (None: nothing)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [str(r[0]) for r in con.execute("PRAGMA integrity_check").fetchall()]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows)[:300]


def _aware_time(value: Any) -> bool:
    """Whether ``value`` is an ISO time with its offset (a manifest's ``created_at``)."""
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def verify_backup(config: AgentConfig, source: Path, secret: bytes) -> dict[str, Any]:
    """Check the whole backup ``source`` before anything live is touched; answers its manifest.

    First the manifest's ``mac`` against the one the agent ``secret`` gives (:func:`manifest_mac`, compared in
    constant time): a manifest edited after the backup (a file's hash recomputed, ``created_at`` moved) or of
    another agent secret is refused, and a manifest without one (format 2 and older) asks for a new backup.
    Every file's SHA-256 against the manifest (none missing, none added), then the state itself: a SQLite
    copy passes ``PRAGMA integrity_check`` (on a temporary copy: the backup is never written), a PostgreSQL
    dump is read whole by ``pg_restore --file /dev/null`` (a truncated one fails here, before anything live).

    Raises:
        BackupError: not a backup (or of another institution, or of the other backend than this agent's
            state), or a file is missing, added or damaged (named in the message).
    """
    try:
        manifest: dict[str, Any] = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a backup (manifest.json: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(
            f"{source}/manifest.json: backup format {got}, this agent reads format {FORMAT} (a manifest with every"
            " file's checksum, authenticated by a MAC); take a new backup with this agent"
        )
    mac = manifest.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, manifest_mac(manifest, secret)):
        raise BackupError(
            f"{source}/manifest.json：备份清单认证失败（manifest MAC {'missing' if mac is None else 'wrong'}: edited"
            " after the backup was taken, or taken under another agent secret); nothing restored"
        )
    files = manifest.get("files")
    if (
        not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
        or not _aware_time(manifest.get("created_at"))
    ):
        raise BackupError(
            f"{source}/manifest.json: damaged (created_at and files, a map of each file's SHA-256, are not as"
            " regbridge backup writes them); nothing restored"
        )
    if manifest.get("institution_id") != config.centre.institution_id:
        raise BackupError(
            f"{source} is a backup of institution {manifest.get('institution_id')}, not of this agent's"
            f" {config.centre.institution_id}"
        )
    kind = manifest.get("state")
    db = sqlite_path(config)
    if kind == "sqlite" and db is None:
        raise BackupError("this backup holds a SQLite state; this agent's state.url is PostgreSQL")
    if kind == "postgresql" and db is not None:
        raise BackupError("this backup holds a PostgreSQL state; set state.url to the database to restore into")
    if kind not in STATE_FILES:
        raise BackupError(f"{source}/manifest.json: unknown state kind {kind!r}")
    listed: dict[str, str] = dict(files)
    present = _files_of(source)
    for name in sorted(set(listed) - set(present)):
        raise BackupError(f"{source / name}: missing from the backup (the manifest lists it); nothing restored")
    for name in sorted(set(present) - set(listed)):
        raise BackupError(f"{source / name}: not in the backup's manifest (added after it was taken); nothing restored")
    if STATE_FILES[kind] not in listed:
        raise BackupError(f"{source / STATE_FILES[kind]}: the backup has no state file; nothing restored")
    for name, expected in sorted(listed.items()):
        if _sha256(present[name]) != expected:
            raise BackupError(f"{source / name}: damaged (its SHA-256 differs from the manifest's); nothing restored")
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="regbridge-verify-") as tmp:
            copy = Path(tmp) / "state.db"
            shutil.copyfile(source / "state.db", copy)
            problem = _sqlite_check(copy)
        if problem:
            raise BackupError(f"{source / 'state.db'}: not a sound SQLite database ({problem}); nothing restored")
    else:
        assert config.state.url is not None
        listing = subprocess.run(  # read whole (its data too, to nowhere): a truncated dump fails here, not live
            [_pg_tool("pg_restore", config.state.url), "--file", os.devnull, str(source / "state.pgdump")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if listing.returncode != 0:
            raise BackupError(
                f"{source / 'state.pgdump'}: pg_restore cannot read it ({listing.stderr.strip()[-300:]}); nothing"
                " restored"
            )
    return manifest


def live_instances(url: str, stale_seconds: float, *, this: str | None = None) -> list[dict[str, Any]]:
    """The other agent instances alive on the shared state at ``url``, read straight from its tables (the
    store is not opened: nothing is migrated): each whose heartbeat is younger than ``stale_seconds`` or
    that holds the leader lease, as ``{id, host, heartbeat_age, leader}``; ``this`` (this host's instance)
    is left out. A database without the tables (empty) has none.

    Raises:
        BackupError: the database cannot be reached.
    """
    import sqlalchemy as sa

    from agent.state.leases import LEADER
    from agent.state.sql import db_error_line, redact_url

    engine = sa.create_engine(url)
    clock = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
    try:
        with engine.connect() as db:
            tables = set(sa.inspect(db).get_table_names())
            beats: list[Any] = []
            if "instances" in tables:
                beats = list(db.execute(sa.text(f"SELECT id, host, {clock} - heartbeat_at AS age FROM instances")))
            leader = None
            if "leases" in tables:
                leader = db.execute(
                    sa.text(f"SELECT holder FROM leases WHERE name = :name AND expires_at > {clock}"), {"name": LEADER}
                ).scalar()
    except sa.exc.SQLAlchemyError as exc:
        raise BackupError(f"cannot reach the PostgreSQL state {redact_url(url)}: {db_error_line(exc)}") from None
    finally:
        engine.dispose()
    alive = []
    for row in beats:
        if row.id == this or (float(row.age) >= stale_seconds and row.id != leader):
            continue
        alive.append(
            {"id": row.id, "host": row.host, "heartbeat_age": round(float(row.age), 1), "leader": row.id == leader}
        )
    if leader and leader != this and all(a["id"] != leader for a in alive):
        alive.append({"id": leader, "host": "?", "heartbeat_age": None, "leader": True})
    return alive


@dataclass
class RestoredFiles:
    """What :func:`restore_files` put back."""

    manifest: dict[str, Any]
    set_aside: list[str] = field(default_factory=list)
    blobs: int = 0
    keys: int = 0
    audit_log: bool = False


def restore_files(config: AgentConfig, source: Path, secret: bytes, *, older: bool = False) -> RestoredFiles:
    """Put a backup's state, blobs, salt and missing key files back (every instance stopped first, this
    host's lock held: :func:`host_lock`). The current state is never opened: a damaged one is replaced too.

    The whole backup is checked first (:func:`verify_backup`); nothing live is touched when it fails. Blobs
    and key files are added where missing, never overwritten; the current audit log is kept (its chain goes
    on), restored only when lost. Then the state: a SQLite copy is written beside the live file and checked
    there, and only then the live file (and its ``-wal``/``-shm``, and a different ``cipher.salt``) set aside
    as ``….before-restore-<UTC time>``, and put back if the swap fails; a PostgreSQL state is restored with
    ``pg_restore --clean`` fed to ``psql --single-transaction`` (all or nothing; the live tables the backup has
    not, a later schema's, dropped in the same transaction).

    A backup older than the newest one taken is refused unless ``older``: the recovery journal starts at the
    newest, so what happened between the two is in neither and would be forgotten.

    Raises:
        BackupError: the backup fails its check (the bad file named), is older than the newest backup (without
            ``older``), or ``pg_restore`` fails.
    """
    manifest = verify_backup(config, source, secret)
    since = RecoveryJournal(recovery_dir(config)).started_at()
    taken = datetime.fromisoformat(manifest["created_at"])
    if since is not None and taken < since and not older:
        raise BackupError(
            f"{source} was taken at {taken.isoformat(timespec='seconds')}, before the newest backup"
            f" ({since.isoformat(timespec='seconds')}) where the recovery journal starts: the exports and applications"
            " of between the two are in neither and would be forgotten. Restore the newest backup; only if it is"
            " lost or damaged, this one with --older (then check the centre's list, regbridge search, for"
            " applications the state no longer knows); nothing restored"
        )
    data = config.resolve(config.data_dir)
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    done = RestoredFiles(manifest)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    done.blobs = _copy_tree(source / "blobs", blobs_dir(config), overwrite=False)
    if config.centre.key_store == "file":
        done.keys = _copy_tree(source / "keys", config.resolve(config.centre.key_dir), overwrite=False)
    if not (data / "audit.log").exists() and (source / "audit.log").exists():
        shutil.copy2(source / "audit.log", data / "audit.log")
        done.audit_log = True
    db = sqlite_path(config)
    if manifest["state"] == "sqlite":
        assert db is not None
        _swap_sqlite(source, db, data, stamp, done)
        return done
    moved: list[tuple[Path, Path]] = []
    _swap_salt(source, data, stamp, done, moved)
    assert config.state.url is not None
    pg_restore, psql = _pg_tool("pg_restore", config.state.url), _pg_tool("psql", config.state.url)
    uri, env = _libpq(config.state.url)
    dump = str(source / "state.pgdump")
    # the tables the live state has and the backup has not (a later schema's: the backup was taken before an
    # upgrade) are dropped in the same transaction: `pg_restore --clean` drops only the dump's own, and the
    # upgrade that follows would find them there ("relation instances already exists") and stop
    extra = sorted(_live_tables(config.state.url) - _dump_tables(pg_restore, dump))
    script = subprocess.run(
        [pg_restore, "--clean", "--if-exists", "--no-owner", "--file", "-", dump],
        capture_output=True, check=False, env=env,
    )  # fmt: skip
    run = None
    if script.returncode == 0:
        prelude = "".join(f'DROP TABLE IF EXISTS "{name}" CASCADE;\n' for name in extra).encode()
        run = subprocess.run(
            [psql, "-X", "-q", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", uri, "-f", "-"],
            input=prelude + script.stdout, capture_output=True, check=False, env=env,
        )  # fmt: skip
    if run is None or run.returncode != 0:
        _put_back(moved, done)
        said = (script.stderr if run is None else run.stderr).decode("utf-8", "replace").strip()[-500:]
        raise BackupError(f"pg_restore failed (nothing changed): {said}")
    return done


def _live_tables(url: str) -> set[str]:
    """The tables of the state's schema (``current_schema()``) in the database at ``url``."""
    import sqlalchemy as sa

    from agent.state.sql import db_error_line, redact_url

    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            return set(sa.inspect(db).get_table_names())
    except sa.exc.SQLAlchemyError as exc:
        raise BackupError(f"cannot reach the PostgreSQL state {redact_url(url)}: {db_error_line(exc)}") from None
    finally:
        engine.dispose()


def _dump_tables(pg_restore: str, dump: str) -> set[str]:
    """The tables a ``pg_dump -Fc`` archive holds (its ``TABLE`` entries: ``… TABLE public applications owner``)."""
    listing = subprocess.run([pg_restore, "--list", dump], capture_output=True, text=True, check=False)
    tables = set()
    for line in listing.stdout.splitlines():
        parts = line.split()
        if not line.startswith(";") and len(parts) >= 7 and parts[3] == "TABLE" and parts[4] != "DATA":
            tables.add(parts[5])
    return tables


def _swap_salt(source: Path, data: Path, stamp: str, done: RestoredFiles, moved: list[tuple[Path, Path]]) -> None:
    """The backup's ``cipher.salt`` in place of a different current one (set aside; noted in ``moved``)."""
    salt, current = source / "cipher.salt", data / "cipher.salt"
    if not salt.exists() or (current.exists() and current.read_bytes() == salt.read_bytes()):
        return
    fresh = data / f".cipher.salt.restoring-{stamp}"
    shutil.copy2(salt, fresh)
    if current.exists():
        aside = data / f"cipher.salt.before-restore-{stamp}"
        os.replace(current, aside)
        moved.append((current, aside))
        done.set_aside.append(aside.name)
    else:
        moved.append((current, current))  # nothing was there: undone by removing the new one
    os.replace(fresh, current)


def _put_back(moved: list[tuple[Path, Path]], done: RestoredFiles) -> None:
    """Undo the moves of a failed swap, newest first (what was set aside goes back in place)."""
    for live, aside in reversed(moved):
        if aside == live:
            live.unlink(missing_ok=True)
        else:
            os.replace(aside, live)
            if aside.name in done.set_aside:
                done.set_aside.remove(aside.name)


def _swap_sqlite(source: Path, db: Path, data: Path, stamp: str, done: RestoredFiles) -> None:
    db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = db.with_name(f".{db.name}.restoring-{stamp}")
    try:
        shutil.copyfile(source / "state.db", fresh)
        os.chmod(fresh, 0o600)
        with open(fresh, "rb+") as fh:
            os.fsync(fh.fileno())
        if _sha256(fresh) != done.manifest["files"]["state.db"] or _sqlite_check(fresh):
            raise BackupError(f"the copy of the backup's state.db at {fresh} did not check out; nothing restored")
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    moved: list[tuple[Path, Path]] = []
    try:
        _swap_salt(source, data, stamp, done, moved)
        for suffix in ("", "-wal", "-shm"):
            current = db.with_name(db.name + suffix)
            if current.exists():
                aside = current.with_name(f"{current.name}.before-restore-{stamp}")
                os.replace(current, aside)
                moved.append((current, aside))
                done.set_aside.append(aside.name)
        os.replace(fresh, db)
    except BaseException:
        fresh.unlink(missing_ok=True)
        _put_back(moved, done)
        raise
