"""The state store, the audit chain, receipts and the document stores."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.state.audit import AuditLog, verify_audit
from agent.state.migrations import MIGRATIONS, SCHEMA_VERSION
from agent.state.secrets import DataCipher, SecretUnavailable, load_secret
from agent.state.sqlite import SQLiteStore
from agent.state.store import AppRow
from connectors.documents import DocumentConflict, FilesystemStore, S3Store, safe_key, safe_name
from connectors.receipts import neutralise, render_receipts


def _app(reference: str = "LN-1-DYSC") -> dict[str, Any]:
    return {
        "reference": reference,
        "loan_no": "LN-1",
        "type": "mortgage_first",
        "inbox": "corebank",
        "profile": "p",
        "source": [{"file": "a.csv", "rows": [2]}],
        "payload": {"mortgagors": [{"name": "张三丰"}]},
        "payload_sha256": "d",
        "idem_create": "k1",
        "idem_submit": "k2",
        "materials": [{"id": "m1", "code": "application_form", "sha256": "0" * 64, "size": 1, "blob": "b"}],
    }


def _pragma(store: SQLiteStore, name: str) -> Any:
    row = store._one(f"PRAGMA {name}")
    assert row is not None
    return row[0]


def _application(store: SQLiteStore, reference: str) -> AppRow:
    app = store.application(reference)
    assert app is not None, f"no application {reference}"
    return app


def _batch(batch: dict[str, Any] | None) -> dict[str, Any]:
    assert batch is not None, "no receipt batch opened"
    return batch


def test_schema_is_versioned_wal_full_sync_and_newer_schemas_are_refused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    assert _pragma(store, "journal_mode") == "wal"
    assert _pragma(store, "synchronous") == 2  # FULL
    store.close()
    con = sqlite3.connect(tmp_path / "s.db")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(RuntimeError, match="newer than this agent"):
        SQLiteStore(tmp_path / "s.db")


def test_every_change_of_stage_or_status_is_recorded_with_its_time(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.add_application(_app())
    store.update_application("LN-1-DYSC", stage="created", centre_status="draft")
    store.update_application("LN-1-DYSC", attempts=1)  # not a transition
    store.update_application("LN-1-DYSC", stage="tracking", centre_status="submitted", note="submitted")
    steps = [(t["stage"], t["centre_status"], t["note"]) for t in store.transitions("LN-1-DYSC")]
    assert steps == [
        ("queued", None, "built from export"),
        ("created", "draft", None),
        ("tracking", "submitted", "submitted"),
    ]
    assert all(t["at"] for t in store.transitions("LN-1-DYSC"))


def test_personal_data_is_encrypted_at_rest(tmp_path: Path) -> None:
    cipher = DataCipher.for_directory(b"secret", tmp_path)
    store = SQLiteStore(tmp_path / "s.db", encrypt=cipher.encrypt, decrypt=cipher.decrypt)
    store.add_application(_app())
    store.quarantine("row", [{"value": "张三丰"}], loan_no="LN-9")
    assert _application(store, "LN-1-DYSC").payload["mortgagors"][0]["name"] == "张三丰"
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
    assert "张三丰".encode() not in raw
    wrong = DataCipher.for_directory(b"another secret", tmp_path)
    other = SQLiteStore(tmp_path / "s.db", encrypt=wrong.encrypt, decrypt=wrong.decrypt)
    with pytest.raises(SecretUnavailable):
        other.application("LN-1-DYSC")


def test_receipt_batches_are_fixed_before_they_are_written(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    assert store.add_receipt("R1", "accepted", "corebank", {"loan_no": "1"})
    assert not store.add_receipt("R1", "accepted", "corebank", {"loan_no": "1"})  # once per application and kind
    store.add_receipt("R2", "accepted", "corebank", {"loan_no": "2"})
    batch = _batch(store.open_receipt_batch("corebank", lambda n: f"/r/{n}.csv"))
    store.add_receipt("R3", "accepted", "corebank", {"loan_no": "3"})
    assert [r["reference"] for r in store.batch_receipts(batch["id"])] == ["R1", "R2"]
    assert batch["path"] == f"/r/{batch['id']}.csv"
    nxt = _batch(store.open_receipt_batch("corebank", lambda n: f"/r/{n}.csv"))
    assert [r["reference"] for r in store.batch_receipts(nxt["id"])] == ["R3"]
    assert store.open_receipt_batch("corebank", lambda n: "") is None


def test_the_secret_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGBRIDGE_AGENT_SECRET", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = tmp_path / "secret"
    path.write_bytes(b"s3cret\n")
    path.chmod(0o644)
    with pytest.raises(SecretUnavailable, match="chmod 600"):
        load_secret(path)
    path.chmod(0o600)
    assert load_secret(path) == b"s3cret"
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", "from-env")
    assert load_secret(path) == b"from-env"


def test_audit_chain_shows_changed_removed_and_cut_records(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    for i in range(5):
        log.append("application.queued", f"LN-{i}", "ok", id_number="340121198001011234")
    assert "340121198001011234" not in log.path.read_text()
    head = log.head()
    assert verify_audit(log.path, head).ok and verify_audit(log.path, head).records == 5
    lines = log.path.read_text().splitlines()
    changed = lines[:]
    changed[2] = changed[2].replace("LN-2", "LN-X")
    (tmp_path / "changed.log").write_text("\n".join(changed) + "\n")
    assert any("line 3" in p and "altered" in p for p in verify_audit(tmp_path / "changed.log").problems)
    (tmp_path / "removed.log").write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    assert not verify_audit(tmp_path / "removed.log").ok
    (tmp_path / "cut.log").write_text("\n".join(lines[:3]) + "\n")
    assert verify_audit(tmp_path / "cut.log").ok
    assert not verify_audit(tmp_path / "cut.log", head).ok  # the state knows there were 5


def test_a_line_torn_by_a_crash_is_not_a_record_and_the_chain_goes_on(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.append("a", "1")
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq": 2, "at": "20')  # the process died mid-write
    log.append("b", "2")
    result = verify_audit(log.path)
    assert result.ok and result.records == 2 and result.torn_lines == [2]


def test_receipt_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    assert [neutralise(v) for v in ('=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tx", "皖(2026)", None)] == [
        '\'=HYPERLINK("x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "皖(2026)",
        "",
    ]
    data = render_receipts([{"loan_no": "=cmd|' /C calc'!A0", "reason": "不动产权证书号"}], "csv", "gb18030")
    assert "'=cmd" in data.decode("gb18030") and "不动产权证书号" in data.decode("gb18030")
    assert json.loads(render_receipts([{"loan_no": "=1"}], "json", "utf-8"))["loan_no"] == "=1"


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "a/b\\c", "CON", "\x00x", ".hidden", ""])
def test_names_cannot_climb_out_of_the_store(name: str, tmp_path: Path) -> None:
    safe = safe_name(name)
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".") and safe and safe.upper() != "CON"
    store = FilesystemStore(tmp_path / "docs")
    store.put(safe_key(name, name), b"%PDF", {})
    assert all(tmp_path / "docs" in p.parents for p in (tmp_path / "docs").rglob("*"))
    assert not (tmp_path / "etc").exists()


def test_the_filesystem_store_never_overwrites(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "docs")
    key = safe_key("LN-1", "皖(2026)长丰县不动产证明第0100001号")
    location = store.put(key, b"%PDF-1 one", {"certificate_id": "c1"})
    assert store.put(key, b"%PDF-1 one", {"certificate_id": "c1"}) == location  # the same again: a no-op
    with pytest.raises(DocumentConflict):
        store.put(key, b"%PDF-1 another", {})
    assert store.get(key) == b"%PDF-1 one"
    assert store.metadata(key)["status"] == "current"
    store.mark_superseded(key, {"certificate_number": "N2"})
    assert store.metadata(key) == {
        "certificate_id": "c1",
        "sha256": store.metadata(key)["sha256"],
        "status": "superseded",
        "superseded_by": {"certificate_number": "N2"},
    }
    assert store.keys() == [key]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_the_s3_store_against_a_local_s3_endpoint(s3_endpoint: str) -> None:
    import boto3

    boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    ).create_bucket(Bucket="certs")
    store = S3Store("certs", prefix="branch-01", endpoint_url=s3_endpoint, access_key="k", secret_key="s")
    key = safe_key("LN-1", "皖(2026)长丰县不动产证明第0100001号")
    location = store.put(key, b"%PDF-1 one", {"certificate_id": "c1"})
    assert location == f"s3://certs/branch-01/{key}"
    assert store.put(key, b"%PDF-1 one", {"certificate_id": "c1"}) == location
    with pytest.raises(DocumentConflict):
        store.put(key, b"%PDF-1 another", {})
    assert store.get(key) == b"%PDF-1 one" and store.keys() == [key]
    store.mark_superseded(key, {"certificate_number": "N2"})
    assert store.metadata(key)["status"] == "superseded" and store.metadata(key)["certificate_id"] == "c1"
