"""The state store on SQLAlchemy 2 Core: PostgreSQL (psycopg 3) for several instances, or SQLite, by URL.

``state.url`` in the config chooses it (``postgresql+psycopg://agent@db.bank.local/regbridge`` or
``sqlite:////var/lib/regbridge/state.db``); without it the agent keeps its embedded
:class:`~agent.state.sqlite.SQLiteStore`. The schema is the same on both: Alembic revisions in
``agent/state/revisions`` (one per entry of :data:`agent.state.migrations.MIGRATIONS`), each in its own
transaction. A SQLite state written by :class:`~agent.state.sqlite.SQLiteStore` (schema version in
``user_version``) is stamped at its version and upgraded in place; ``user_version`` is kept in step,
so either store can open the file afterwards.

Each thread has its own connection and transaction (PostgreSQL: ``READ COMMITTED``; SQLite:
``BEGIN IMMEDIATE``, WAL, ``synchronous=FULL``); nested :meth:`SQLStore.transaction` uses join the
thread's open one. Receipts, alerts and paper transmittals: :mod:`agent.state.sql_receipts`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from agent.state.leases import InstanceLeases
from agent.state.migrations import SCHEMA_VERSION
from agent.state.sql_receipts import SqlReceiptQueries
from agent.state.store import AppRow, now_iso

__all__ = ["REVISIONS", "SQLStore", "db_error_line", "redact_url"]

#: the Alembic revisions of the state's schema (revision ``000N`` is schema version N)
REVISIONS = Path(__file__).resolve().parent / "revisions"


def redact_url(url: str) -> str:
    """The URL with its password hidden (for logs and errors): in the authority (``agent:***@``) and as libpq's
    ``?password=`` parameter (``password=***``), which SQLAlchemy's own rendering shows."""
    parsed = sa.make_url(url)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return str(parsed.render_as_string(hide_password=True)).replace("password=%2A%2A%2A", "password=***")


def db_error_line(exc: BaseException) -> str:
    """What the database said, on one line, for an error message: the driver's own words (``FATAL:  password
    authentication failed for user "agent"``, ``database "x" does not exist``, ``Connection refused``) without
    SQLAlchemy's class prefix and its "Background on this error" link; libpq never echoes a password."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(part.strip() for part in str(cause).splitlines() if part.strip() and "sqlalche.me" not in part)
    return f"{cause.__class__.__name__}: {text[:300]}"


def _qmarks(sql: str, args: tuple[Any, ...], dialect: str) -> tuple[str, dict[str, Any]]:
    """A ``where`` fragment of the protocol (SQLite's dialect, ``?`` placeholders) for this backend.

    Placeholders become named ones; SQLite's "don't use an index on this column" hint (a unary ``+``
    before a column name, as in ``+stage = 'tracking'``) means nothing elsewhere and is dropped.
    """
    if dialect != "sqlite":
        sql = re.sub(r"(^|[\s(])\+(?=[A-Za-z_])", r"\1", sql)
    names = iter(range(len(args)))
    converted = re.sub(r"\?", lambda _m: f":_q{next(names)}", sql)
    return converted, {f"_q{i}": a for i, a in enumerate(args)}


class SQLStore(SqlReceiptQueries, InstanceLeases):
    """The state store on any SQLAlchemy URL (PostgreSQL with psycopg 3, or SQLite).

    Args:
        url: a SQLAlchemy URL (``postgresql+psycopg://…`` or ``sqlite:///path``).
        encrypt / decrypt: seal and open personal data at rest (identity in tests only).
        indexer: the search keys of an application's payload (:func:`agent.state.lookup.search_keys_of`).

    Raises:
        RuntimeError: the state's schema is newer than this agent's.
    """

    def __init__(
        self,
        url: str,
        *,
        encrypt: Callable[[bytes], bytes] | None = None,
        decrypt: Callable[[bytes], bytes] | None = None,
        indexer: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None,
    ) -> None:
        self.url = url
        self.indexer = indexer
        self._encrypt = encrypt or (lambda b: b)
        self._decrypt = decrypt or (lambda b: b)
        self._local = threading.local()
        parsed = sa.make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self._clock = _SQLITE_CLOCK
            pool = sa.pool.StaticPool if parsed.database in (None, "", ":memory:") else sa.pool.QueuePool
            self.engine = sa.create_engine(
                parsed, connect_args={"check_same_thread": False, "timeout": 30}, poolclass=pool
            )
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self._clock = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
            self._claim_lock = "FOR UPDATE SKIP LOCKED"
            self.engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=16)
        try:
            self.migrate()
        except BaseException:
            self.engine.dispose()
            raise

    # --- plumbing ------------------------------------------------------------------------

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One atomic unit on this thread's connection; nested uses join the outer transaction."""
        conn: sa.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as conn:
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    def _exec(self, sql: str, params: Mapping[str, Any] | None = None) -> sa.CursorResult[Any]:
        with self.transaction() as conn:
            return conn.execute(sa.text(sql), dict(params or {}))

    def _scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """The one value a statement returns (``RETURNING id``), read before its transaction ends."""
        with self.transaction() as conn:
            return conn.execute(sa.text(sql), dict(params or {})).scalar_one()

    def _all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.transaction() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), dict(params or {})).mappings()]

    def _one(self, sql: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self._all(sql, params)

    def _count(self, sql: str, params: Mapping[str, Any]) -> int:
        return int(self._exec(sql, params).rowcount)

    def _alembic(self, conn: sa.Connection) -> Config:
        config = Config()
        config.set_main_option("script_location", str(REVISIONS))
        config.attributes["connection"] = conn
        return config

    def schema_version(self) -> int:
        """The schema's version: the Alembic revision ``000N`` as N (0 for an empty database)."""
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            if current is None and self.dialect == "sqlite":
                return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
        return int(current) if current else 0

    def migrate(self) -> int:
        """Bring the schema to Alembic's head, one revision per transaction.

        A SQLite file the embedded store wrote (``user_version`` N, no Alembic table) is stamped at
        revision N first, then upgraded in place.
        """
        head = ScriptDirectory(str(REVISIONS)).get_current_head()
        # Alembic keeps its running context in module globals: one migration at a time in this process;
        # and on PostgreSQL one at a time among every instance starting at once (an advisory lock)
        with _MIGRATING, self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK_ID})")
                conn.commit()
            current = MigrationContext.configure(conn).get_current_revision()
            legacy = 0
            if self.dialect == "sqlite":
                legacy = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
            conn.rollback()
            version = int(current) if current else legacy
            known = current is None or any((REVISIONS / "versions").glob(f"{current}_*.py"))
            if version > SCHEMA_VERSION or not known:
                raise RuntimeError(
                    f"{redact_url(self.url)}: state schema version {version} is newer than this agent "
                    f"({SCHEMA_VERSION}); upgrade the agent"
                )
            config = self._alembic(conn)
            if current is None and legacy:
                command.stamp(config, f"{legacy:04d}")
                conn.commit()
            command.upgrade(config, "head")
            conn.commit()
            if self.dialect == "sqlite":  # the embedded store reads its version here
                conn.exec_driver_sql(f"PRAGMA user_version = {int(head or 0)}")
                conn.commit()
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK_ID})")
                conn.commit()
        return self.schema_version()

    def seal(self, value: Any) -> bytes:
        return self._encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True).encode())

    def open(self, blob: bytes) -> Any:
        return json.loads(self._decrypt(bytes(blob)))

    # --- meta ----------------------------------------------------------------------------

    def shared_salt(self, candidate: bytes) -> bytes:
        """The data cipher's salt of a shared state: the first instance's ``candidate``, kept in ``meta``;
        every instance derives the same data key from the one agent secret delivered to each host."""
        self._exec(
            "INSERT INTO meta (key, value) VALUES ('cipher_salt', :salt) ON CONFLICT DO NOTHING",
            {"salt": candidate.hex()},
        )
        return bytes.fromhex(self.get_meta("cipher_salt") or "")

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = :key", {"key": key})
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES (:key, :value) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            {"key": key, "value": value},
        )

    # --- files ---------------------------------------------------------------------------

    def file_seen(self, sha256: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM files WHERE sha256 = :sha", {"sha": sha256})

    def record_file(self, sha256: str, **fields: Any) -> None:
        """Insert the file's record, or update the given columns of an existing one."""
        with self.transaction():
            if self._one("SELECT 1 AS x FROM files WHERE sha256 = :sha", {"sha": sha256}):
                sets = ", ".join(f"{c} = :{c}" for c in fields)
                self._exec(f"UPDATE files SET {sets} WHERE sha256 = :sha", {**fields, "sha": sha256})
                return
            fields.setdefault("received_at", now_iso())
            self._exec(
                f"INSERT INTO files (sha256, {', '.join(fields)}) VALUES (:sha, {', '.join(':' + c for c in fields)})",
                {**fields, "sha": sha256},
            )

    def files(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM files ORDER BY received_at DESC LIMIT :n", {"n": limit})

    # --- applications --------------------------------------------------------------------

    def add_application(self, row: dict[str, Any]) -> None:
        """Insert a new application (stage ``queued``) with its materials, in the caller's transaction."""
        now = now_iso()
        materials = row.pop("materials")
        payload = row.pop("payload")
        row = {
            **row,
            "payload": self.seal(payload),
            "source": json.dumps(row["source"], ensure_ascii=False),
            "stage": "queued",
            "created_at": now,
            "updated_at": now,
        }
        with self.transaction():
            self._exec(f"INSERT INTO applications ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})", row)
            for m in materials:
                self._exec(
                    "INSERT INTO materials (reference, material_id, code, sha256, size, blob) "
                    "VALUES (:ref, :id, :code, :sha256, :size, :blob)",
                    {"ref": row["reference"], **{k: m[k] for k in ("id", "code", "sha256", "size", "blob")}},
                )
            self._exec(
                "INSERT INTO transitions (reference, stage, at, note) VALUES (:ref, 'queued', :at, :note)",
                {"ref": row["reference"], "at": now, "note": "built from export"},
            )
            self._index(row["reference"], payload)

    def _index(self, reference: str, payload: dict[str, Any]) -> None:
        if self.indexer is None:
            return
        with self.transaction():
            self._exec("DELETE FROM search_keys WHERE reference = :ref", {"ref": reference})
            for kind, value in self.indexer(payload):
                self._exec(
                    "INSERT INTO search_keys (kind, value, reference) VALUES (:kind, :value, :ref)",
                    {"kind": kind, "value": value, "ref": reference},
                )

    def reindex(self) -> int:
        """Rebuild the search keys of every application; answers how many."""
        refs = [r["reference"] for r in self._all("SELECT reference FROM applications")]
        for ref in refs:
            app = self.application(ref)
            if app is not None:
                self._index(ref, app.payload)
        return len(refs)

    def find_by_key(self, kind: str, value: str) -> list[str]:
        rows = self._all(
            "SELECT reference FROM search_keys WHERE kind = :kind AND value = :value ORDER BY reference",
            {"kind": kind, "value": value},
        )
        return [r["reference"] for r in rows]

    def loan_references(self, loan_no: str) -> list[str]:
        rows = self._all(
            "SELECT reference FROM applications WHERE loan_no = :loan ORDER BY created_at, reference", {"loan": loan_no}
        )
        return [r["reference"] for r in rows]

    def counts_by_inbox(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self._all("SELECT inbox, stage, COUNT(*) AS n FROM applications GROUP BY inbox, stage"):
            out.setdefault(r["inbox"], {})[r["stage"]] = int(r["n"])
        return out

    def _app(self, row: dict[str, Any] | None) -> AppRow | None:
        if row is None:
            return None
        d = dict(row)
        d["payload"] = self.open(d["payload"])
        d["source"] = json.loads(d["source"])
        for name in ("correction", "decision", "supplement"):
            d[name] = self.open(d[name]) if d[name] is not None else None
        for name in _BOOKKEEPING:
            d.pop(name)
        return AppRow(**d)

    def application(self, reference: str) -> AppRow | None:
        return self._app(self._one("SELECT * FROM applications WHERE reference = :ref", {"ref": reference}))

    def payload_sha256(self, reference: str) -> str | None:
        row = self._one("SELECT payload_sha256 FROM applications WHERE reference = :ref", {"ref": reference})
        return None if row is None else str(row["payload_sha256"])

    def by_centre_id(self, application_id: str) -> AppRow | None:
        return self._app(self._one("SELECT * FROM applications WHERE application_id = :id", {"id": application_id}))

    def applications(self, *stages: str, due_before: float | None = None, limit: int = 100000) -> list[AppRow]:
        sql = "SELECT * FROM applications"
        params: dict[str, Any] = {f"s{i}": s for i, s in enumerate(stages)}
        clauses = []
        if stages:
            clauses.append(f"stage IN ({', '.join(':' + k for k in params)})")
        if due_before is not None:
            clauses.append("next_attempt_at <= :due")
            params["due"] = due_before
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at, reference LIMIT :limit"
        return [a for a in map(self._app, self._all(sql, {**params, "limit": limit})) if a is not None]

    def references(self, *stages: str, where: str = "", args: tuple[Any, ...] = ()) -> list[str]:
        sql = "SELECT reference FROM applications"
        params: dict[str, Any] = {f"s{i}": s for i, s in enumerate(stages)}
        clauses = [f"stage IN ({', '.join(':' + k for k in params)})"] if stages else []
        if where:
            fragment, extra = _qmarks(where, args, self.dialect)
            clauses.append(fragment)
            params.update(extra)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [r["reference"] for r in self._all(sql + " ORDER BY created_at, reference", params)]

    def fees_paid_on(self, day: str) -> list[str]:
        """The fee totals (decimal strings, 元) of the applications paid on ``day`` (``YYYY-MM-DD``, UTC)."""
        rows = self._all(
            "SELECT fee_total FROM applications WHERE paid_at LIKE :day AND fee_total IS NOT NULL", {"day": day + "%"}
        )
        return [str(r["fee_total"]) for r in rows]

    def update_application(self, reference: str, *, note: str | None = None, **fields: Any) -> None:
        """Change an application; a change of stage or centre status is recorded in ``transitions``.

        Raises:
            KeyError: no application ``reference``.
        """
        for name in ("correction", "decision", "supplement", "payload"):
            if name in fields and fields[name] is not None:
                fields[name] = self.seal(fields[name])
        fields["updated_at"] = now_iso()
        with self.transaction():
            before = self._one(
                "SELECT stage, centre_status FROM applications WHERE reference = :ref", {"ref": reference}
            )
            if before is None:
                raise KeyError(reference)
            sets = ", ".join(f"{k} = :{k}" for k in fields)
            self._exec(f"UPDATE applications SET {sets} WHERE reference = :_ref", {**fields, "_ref": reference})
            if "payload" in fields and self.indexer is not None:
                self._index(reference, self.open(fields["payload"]))
            stage = fields.get("stage", before["stage"])
            status = fields.get("centre_status", before["centre_status"])
            if (stage, status) != (before["stage"], before["centre_status"]) or note:
                self._exec(
                    "INSERT INTO transitions (reference, stage, centre_status, at, note) "
                    "VALUES (:ref, :stage, :status, :at, :note)",
                    {"ref": reference, "stage": stage, "status": status, "at": fields["updated_at"], "note": note},
                )

    def flag(self, reference: str, column: str, value: Any) -> None:
        """Set a bookkeeping column without recording a transition."""
        self._exec(f"UPDATE applications SET {column} = :v WHERE reference = :ref", {"v": value, "ref": reference})

    def flagged(self, column: str, value: int = 1) -> list[str]:
        # the value inline (an int), so that a partial index on the flag can answer
        return [r["reference"] for r in self._all(f"SELECT reference FROM applications WHERE {column} = {int(value)}")]

    def transitions(self, reference: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM transitions WHERE reference = :ref ORDER BY id", {"ref": reference})

    def materials(self, reference: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM materials WHERE reference = :ref ORDER BY material_id", {"ref": reference})

    def replace_materials(self, reference: str, materials: list[dict[str, Any]]) -> None:
        with self.transaction():
            for m in materials:
                self._exec(
                    "INSERT INTO materials (reference, material_id, code, sha256, size, blob) "
                    "VALUES (:ref, :id, :code, :sha256, :size, :blob) "
                    "ON CONFLICT (reference, material_id) DO UPDATE SET code = excluded.code, "
                    "sha256 = excluded.sha256, size = excluded.size, blob = excluded.blob, uploaded = 0",
                    {"ref": reference, **{k: m[k] for k in ("id", "code", "sha256", "size", "blob")}},
                )

    def mark_uploaded(self, reference: str, material_id: str) -> None:
        self._exec(
            "UPDATE materials SET uploaded = 1 WHERE reference = :ref AND material_id = :id",
            {"ref": reference, "id": material_id},
        )

    def counts(self) -> dict[str, int]:
        return {
            r["stage"]: int(r["n"]) for r in self._all("SELECT stage, COUNT(*) AS n FROM applications GROUP BY stage")
        }

    def gauges(self) -> dict[str, Any]:
        """What the metrics endpoint shows of the state, in a few aggregate queries."""
        with self.transaction():
            certs = self._all("SELECT stage, COUNT(*) AS n FROM certificates GROUP BY stage")
            one = self._one(
                "SELECT (SELECT COUNT(*) FROM quarantine WHERE status = 'open') AS q,"
                " (SELECT COUNT(*) FROM alerts WHERE cleared_at IS NULL) AS a,"
                " (SELECT COUNT(*) FROM receipt_batches WHERE written = 0) AS b"
            )
            assert one is not None
            return {
                "applications": self.counts(),
                "certificates": {r["stage"]: int(r["n"]) for r in certs},
                "quarantine_open": int(one["q"]),
                "alerts_open": int(one["a"]),
                "receipt_batches_pending": int(one["b"]),
            }

    def status_counts(self) -> dict[str, int]:
        rows = self._all("SELECT COALESCE(centre_status, '-') AS s, COUNT(*) AS n FROM applications GROUP BY 1")
        return {r["s"]: int(r["n"]) for r in rows}

    # --- quarantine ----------------------------------------------------------------------

    def quarantine(self, kind: str, errors: list[dict[str, Any]], **fields: Any) -> int:
        fields = {**fields, "kind": kind, "errors": self.seal(errors), "created_at": now_iso()}
        return int(
            self._scalar(
                f"INSERT INTO quarantine ({', '.join(fields)}) VALUES ({', '.join(':' + c for c in fields)}) "
                "RETURNING id",
                fields,
            )
        )

    def _opened(self, row: dict[str, Any]) -> dict[str, Any]:
        row["errors"] = self.open(row["errors"])
        return row

    def quarantined(self, status: str | None = "open") -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM quarantine", {}
        if status:
            sql, params = sql + " WHERE status = :status", {"status": status}
        return [self._opened(r) for r in self._all(sql + " ORDER BY id", params)]

    def quarantine_item(self, item_id: int) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM quarantine WHERE id = :id", {"id": item_id})
        return None if row is None else self._opened(row)

    def resolve_quarantine(self, item_id: int, status: str = "resolved") -> None:
        self._exec(
            "UPDATE quarantine SET status = :status, resolved_at = :at WHERE id = :id",
            {"status": status, "at": now_iso(), "id": item_id},
        )

    def resolve_quarantine_for(self, loan_no: str, reference: str) -> int:
        """A later good row for the same loan operation resolves its open row quarantines."""
        result = self._exec(
            "UPDATE quarantine SET status = 'resolved', resolved_at = :at WHERE status = 'open' AND kind = 'row' "
            "AND (reference = :ref OR (reference IS NULL AND loan_no = :loan))",
            {"at": now_iso(), "ref": reference, "loan": loan_no},
        )
        return int(result.rowcount)

    # --- events --------------------------------------------------------------------------

    def event_seen(self, event_id: str) -> bool:
        return self._one("SELECT 1 AS x FROM events_seen WHERE event_id = :id", {"id": event_id}) is not None

    def mark_event(self, event_id: str, sequence: int) -> None:
        self._exec(
            "INSERT INTO events_seen (event_id, sequence, at) VALUES (:id, :seq, :at) ON CONFLICT DO NOTHING",
            {"id": event_id, "seq": sequence, "at": now_iso()},
        )

    # --- certificates --------------------------------------------------------------------

    def add_certificate(self, certificate_id: str, reference: str) -> bool:
        now = now_iso()
        result = self._exec(
            "INSERT INTO certificates (certificate_id, reference, stage, created_at, updated_at) "
            "VALUES (:id, :ref, 'pending', :now, :now) ON CONFLICT DO NOTHING",
            {"id": certificate_id, "ref": reference, "now": now},
        )
        return result.rowcount > 0

    def certificate(self, certificate_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM certificates WHERE certificate_id = :id", {"id": certificate_id})

    def certificates(self, stage: str | None = None, reference: str | None = None) -> list[dict[str, Any]]:
        sql, clauses, params = "SELECT * FROM certificates", [], {}
        if stage:
            clauses.append("stage = :stage")
            params["stage"] = stage
        if reference:
            clauses.append("reference = :ref")
            params["ref"] = reference
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return self._all(sql + " ORDER BY created_at", params)

    def superseding(self) -> list[dict[str, Any]]:
        """Stored certificates the centre superseded whose sidecar in the document store is not yet updated."""
        return self._all("SELECT * FROM certificates WHERE supersede_pending = 1 AND stage = 'stored'")

    def certificate_by_number(self, number: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM certificates WHERE certificate_number = :n", {"n": number})

    def update_certificate(self, certificate_id: str, **fields: Any) -> None:
        fields["updated_at"] = now_iso()
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        self._exec(f"UPDATE certificates SET {sets} WHERE certificate_id = :_id", {**fields, "_id": certificate_id})


#: the applications' columns that are the store's own bookkeeping, not part of :class:`AppRow`
_BOOKKEEPING = (
    "payload_sha256", "paid_at", "deadline_warned", "needs_refresh", "paper_batch", "claimed_by", "claimed_until",
)  # fmt: skip
_MIGRATING = threading.Lock()
#: the PostgreSQL advisory lock held while the schema is upgraded (a constant: "RB" + schema)
_MIGRATION_LOCK_ID = 0x5242_0001
#: SQLite's clock in seconds since the epoch (to the millisecond)
_SQLITE_CLOCK = "((julianday('now') - 2440587.5) * 86400.0)"


def _sqlite_connect(dbapi: Any, _record: Any) -> None:
    dbapi.isolation_level = None  # transactions are ours (BEGIN IMMEDIATE), not the driver's
    cursor = dbapi.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
