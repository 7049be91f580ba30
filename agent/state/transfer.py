"""Moving a branch's SQLite state to PostgreSQL (``regbridge state migrate --to URL``; docs/state.md).

The agent is stopped (this host's ``agent.lock`` is held for the whole move). The SQLite file is first
brought to this agent's schema (Alembic, in place), the target gets the same schema from the same Alembic
revisions, then every table is copied in one transaction on the target, in foreign-key order, values cast
to the target's column types; PostgreSQL's id sequences are set past the copied ids; the row count of each
table is compared on both sides before the transaction commits. The target must be empty (no row in any of
the state's tables): a move never merges two states.

The data key stays what it was: the SQLite state's salt (``cipher.salt`` in the data folder) becomes the
shared state's (``meta.cipher_salt``), so every row sealed under it opens on PostgreSQL, and every host that
joins later derives the same key from the one agent secret.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agent.config import AgentConfig
from agent.state.backup import host_lock, sqlite_path

__all__ = ["MigrationError", "Moved", "move_to"]

#: rows per INSERT batch (executemany)
BATCH = 500


class MigrationError(RuntimeError):
    """The state cannot be moved (what, and what to do, in the message)."""


@dataclass
class Moved:
    """What :func:`move_to` copied: rows per table (equal on both sides), the schema version, the SQLite
    file set aside."""

    tables: dict[str, int] = field(default_factory=dict)
    schema_version: int = 0
    set_aside: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def _agent_stopped(data: Path) -> AbstractContextManager[None]:
    """Hold this host's agent lock (the one ``regbridge run`` holds) while the state moves.

    Raises:
        MigrationError: the agent runs on ``data`` (its pid in the message).
    """
    return host_lock(data, MigrationError)


def _cast(value: Any, kind: sa.types.TypeEngine[Any]) -> Any:
    """A SQLite value (loosely typed) as the target column's type wants it."""
    if value is None:
        return None
    if isinstance(kind, sa.LargeBinary):
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if isinstance(kind, sa.Integer):
        return int(value)
    if isinstance(kind, sa.Float | sa.Numeric):
        return float(value)
    if isinstance(kind, sa.String):
        return value if isinstance(value, str) else str(value)
    return value


def _tables(engine: sa.Engine) -> sa.MetaData:
    meta = sa.MetaData()
    meta.reflect(engine)
    return meta


def move_to(config: AgentConfig, target_url: str) -> Moved:
    """Copy this agent's SQLite state into the empty database at ``target_url`` (a SQLAlchemy URL,
    ``postgresql+psycopg://agent@db.bank.local/regbridge``), verify every table's row count, and set the
    SQLite file aside (``state.db.moved-<UTC stamp>``) so nothing writes to it any more.

    Raises:
        MigrationError: the agent is running, the state is not SQLite or does not exist, the target is the
            same database or not empty, or a table's row count differs after the copy (nothing committed).
    """
    from agent.state.sql import SQLStore, db_error_line, redact_url

    source_db = sqlite_path(config)
    if source_db is None:
        raise MigrationError(f"the state is already at {redact_url(config.state.url or '')}: nothing to move")
    target = sa.make_url(target_url)
    if target.get_backend_name() == "sqlite" and Path(target.database or "").resolve() == source_db.resolve():
        raise MigrationError("the target is the state itself")
    data = config.resolve(config.data_dir)
    with _agent_stopped(data):
        if not source_db.exists():
            raise MigrationError(f"no state at {source_db}: nothing to move")
        source = SQLStore(f"sqlite:///{source_db}")  # brings the file to this agent's schema (Alembic)
        try:
            dest = SQLStore(target_url)  # the same schema from the same revisions
        except sa.exc.SQLAlchemyError as exc:
            source.close()
            raise MigrationError(f"cannot open {redact_url(target_url)}: {db_error_line(exc)}") from None
        try:
            moved = _copy(source, dest, data)
        finally:
            dest.close()
            source.close()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for suffix in ("", "-wal", "-shm"):
            current = source_db.with_name(source_db.name + suffix)
            if current.exists():
                os.replace(current, current.with_name(f"{source_db.name}.moved-{stamp}{suffix}"))
                moved.set_aside.append(f"{source_db.name}.moved-{stamp}{suffix}")
        return moved


def _copy(source: Any, dest: Any, data: Path) -> Moved:
    if source.schema_version() != dest.schema_version():
        raise MigrationError(f"schema versions differ: {source.schema_version()} here, {dest.schema_version()} there")
    src_meta, dst_meta = _tables(source.engine), _tables(dest.engine)
    names = [t.name for t in dst_meta.sorted_tables if t.name != "alembic_version"]
    missing = sorted(set(src_meta.tables) - set(names) - {"alembic_version"})
    if missing:
        raise MigrationError(f"tables the target's schema lacks: {', '.join(missing)}")
    moved = Moved(schema_version=dest.schema_version())
    with source.engine.connect() as src, dest.engine.begin() as dst:
        busy = {n: dst.execute(sa.select(sa.func.count()).select_from(dst_meta.tables[n])).scalar_one() for n in names}
        if any(busy.values()):
            filled = ", ".join(f"{n} ({c} rows)" for n, c in busy.items() if c)
            raise MigrationError(f"the target is not empty: {filled}; give an empty database")
        for name in names:
            table = dst_meta.tables[name]
            if name not in src_meta.tables:
                moved.tables[name] = 0
                continue
            columns = [c for c in table.columns if c.name in src_meta.tables[name].columns]
            here = src.execute(sa.select(sa.func.count()).select_from(src_meta.tables[name])).scalar_one()
            rows = src.execution_options(stream_results=True).execute(
                sa.select(*(src_meta.tables[name].c[c.name] for c in columns))
            )
            for chunk in rows.partitions(BATCH):
                batch = [{c.name: _cast(v, c.type) for c, v in zip(columns, r, strict=True)} for r in chunk]
                dst.execute(table.insert(), batch)
            copied = dst.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            if copied != here:
                raise MigrationError(f"{name}: {here} rows here, {copied} there after the copy; nothing moved")
            moved.tables[name] = int(copied)
            if dest.dialect == "postgresql":
                for column in table.primary_key.columns:
                    if isinstance(column.type, sa.Integer) and column.autoincrement in (True, "auto"):
                        top = f'(SELECT MAX("{column.name}") FROM "{name}")'
                        dst.execute(
                            sa.text(
                                f"SELECT setval(pg_get_serial_sequence(:t, :c), COALESCE({top}, 1), {top} IS NOT NULL)"
                            ),
                            {"t": name, "c": column.name},
                        )
        salt = data / "cipher.salt"  # the data key's salt goes with the state (SQLStore.shared_salt)
        if salt.exists():
            dst.execute(
                sa.text("INSERT INTO meta (key, value) VALUES ('cipher_salt', :salt) ON CONFLICT (key) DO NOTHING"),
                {"salt": salt.read_bytes().hex()},
            )
    return moved
