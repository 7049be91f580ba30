"""The SQLAlchemy store's schema: Alembic revisions for both backends, equal to the embedded store's
schema, and an existing embedded SQLite state upgraded in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from agent.config import _redact_url as redacted_url
from agent.state.migrations import MIGRATIONS, SCHEMA_VERSION
from agent.state.sql import SQLStore, redact_url
from agent.state.sqlite import SQLiteStore


def _shape(url: str) -> dict[str, tuple[list[str], list[str]]]:
    """Every table's columns and index names (Alembic's own table aside)."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {
            t: (
                sorted(c["name"] for c in inspector.get_columns(t)),
                # a unique constraint's own index, which PostgreSQL lists and SQLite does not, aside
                sorted(str(i["name"]) for i in inspector.get_indexes(t) if not i.get("duplicates_constraint")),
            )
            for t in inspector.get_table_names()
            if t != "alembic_version"
        }
    finally:
        engine.dispose()


def test_the_alembic_schema_is_the_embedded_one_on_sqlite_and_postgresql(tmp_path: Path, pg_url: str) -> None:
    SQLiteStore(tmp_path / "embedded.db").close()
    embedded = _shape(f"sqlite:///{tmp_path / 'embedded.db'}")
    assert len(embedded) == 15  # 6: search_keys (issue 23); 7: instances and leases (issue 22)
    for url in (f"sqlite:///{tmp_path / 'alembic.db'}", pg_url):
        store = SQLStore(url)
        assert store.schema_version() == SCHEMA_VERSION
        store.close()
        assert _shape(url) == embedded, url


def _embedded_state(db: Path, version: int) -> None:
    """A state.db as the embedded store of schema ``version`` left it (its migrations, its user_version)."""
    con = sqlite3.connect(db)
    con.executescript("".join(MIGRATIONS[:version]) + f"PRAGMA user_version = {version};")
    con.execute("INSERT INTO meta VALUES ('event_cursor', '41')")
    con.execute(
        "INSERT INTO receipts (reference, kind, inbox, payload, created_at) "
        "VALUES ('R1', 'accepted', 'corebank', '{\"loan_no\": \"1\"}', '2026-11-30T00:00:00+00:00')"
    )
    con.commit()
    con.close()


def test_an_embedded_state_of_schema_5_upgrades_in_place_and_keeps_its_work(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _embedded_state(db, 5)  # the state the agent wrote before several instances could share one
    store = SQLStore(f"sqlite:///{db}")
    assert store.schema_version() == SCHEMA_VERSION
    assert store.get_meta("event_cursor") == "41" and store.receipts("R1")[0]["payload"] == {"loan_no": "1"}
    store.set_meta("event_cursor", "42")
    assert store.acquire_lease("leader", "i1", ttl=5)  # revision 7's tables
    store.close()
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(f"{SCHEMA_VERSION:04d}",)]
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        con.close()
    again = SQLiteStore(db)  # and the embedded store still opens it
    assert again.get_meta("event_cursor") == "42" and again.lease_holder("leader") == "i1"
    again.close()


def test_the_embedded_store_upgrades_a_schema_5_state_too(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _embedded_state(db, 5)
    store = SQLiteStore(db)
    assert store.schema_version() == SCHEMA_VERSION and store.get_meta("event_cursor") == "41"
    assert store.claim_file("a" * 64, "i1", path="p", inbox="corebank", profile="p")
    store.close()


def test_an_older_embedded_state_gets_the_revisions_it_lacks(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    con = sqlite3.connect(db)
    con.executescript(MIGRATIONS[0] + MIGRATIONS[1] + MIGRATIONS[2] + "PRAGMA user_version = 3;")
    con.execute("INSERT INTO meta VALUES ('event_cursor', '7')")
    con.commit()
    con.close()
    store = SQLStore(f"sqlite:///{db}")
    assert store.schema_version() == SCHEMA_VERSION and store.get_meta("event_cursor") == "7"
    store.record_file("a" * 64, path="p", inbox="i", profile="p", status="done", rows_quarantined=2, reason="x")
    assert (store.file_seen("a" * 64) or {}).get("rows_quarantined") == 2  # revision 5's columns
    store.close()
    assert _shape(f"sqlite:///{db}")["certificates"][1] == ["certificates_by_reference", "certificates_by_stage",
                                                             "certificates_superseding"]  # fmt: skip


def test_a_newer_schema_is_refused(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "state.db"
    SQLiteStore(db).close()
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(RuntimeError, match="newer than this agent"):
        SQLStore(f"sqlite:///{db}")
    SQLStore(pg_url).close()
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(RuntimeError, match="newer than this agent"):
        SQLStore(pg_url)


def test_a_password_in_the_url_is_never_shown() -> None:
    assert "s3cret" not in redact_url("postgresql+psycopg://agent:s3cret@db.bank.local/regbridge")
    # libpq's ?password= parameter (docs/state.md names it) is a password too: hidden there and in config show
    query = "postgresql+psycopg://agent@db.bank.local/regbridge?sslmode=require&password=s3cret"
    assert "s3cret" not in redact_url(query) and "password=***" in redact_url(query)
    assert "s3cret" not in redacted_url(query) and "password=***" in redacted_url(query)
    assert (
        redacted_url("postgresql+psycopg://agent@db/x?sslcert=/a%20b")
        == "postgresql+psycopg://agent@db/x?sslcert=/a%20b"
    )
