"""The store's backends for the protocol tests: every test taking ``store`` runs on each of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.state.sql import SQLStore
from agent.state.sqlite import SQLiteStore
from agent.state.store import StateStore

BACKENDS = ["sqlite-embedded", "sqlalchemy-sqlite", "sqlalchemy-postgresql"]


def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest, **cipher: Any) -> StateStore:
    """A store of ``backend`` on this test's state (a second call opens the same state again)."""
    if backend == "sqlite-embedded":
        return SQLiteStore(tmp_path / "s.db", **cipher)
    if backend == "sqlalchemy-sqlite":
        return SQLStore(f"sqlite:///{tmp_path / 's.db'}", **cipher)
    return SQLStore(request.getfixturevalue("pg_url"), **cipher)  # one database per test (pg_url is cached)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StateStore]:
    opened = open_store(backend, tmp_path, request)
    yield opened
    opened.close()


def application(reference: str, loan_no: str = "LN-1") -> dict[str, Any]:
    """An application row as the outbox adds it (one material)."""
    return {
        "reference": reference,
        "loan_no": loan_no,
        "type": "mortgage_first",
        "inbox": "corebank",
        "profile": "p",
        "source": [{"file": "a.csv", "rows": [2]}],
        "payload": {"mortgagors": [{"name": "张三丰"}], "amount": "1200000.00"},
        "payload_sha256": "d" * 64,
        "idem_create": f"{reference}-c",
        "idem_submit": f"{reference}-s",
        "materials": [{"id": "m1", "code": "application_form", "sha256": "0" * 64, "size": 1, "blob": "b"}],
    }
