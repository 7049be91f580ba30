"""The store protocol (agent.state.store.StateStore), the same assertions for every backend: the embedded
SQLite store, and the SQLAlchemy store on SQLite and on a real PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.state.secrets import DataCipher, SecretUnavailable
from agent.state.sql import SQLStore
from agent.state.store import StateStore
from tests.postgres import PostgresServer

from .conftest import open_store as _open


def _app(reference: str = "LN-1-DYSC", loan_no: str = "LN-1") -> dict[str, Any]:
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


def test_meta_and_files(store: StateStore) -> None:
    assert store.get_meta("cursor") is None
    store.set_meta("cursor", "7")
    store.set_meta("cursor", "8")
    assert store.get_meta("cursor") == "8"
    store.record_file("f" * 64, path="/in/a.csv", inbox="corebank", profile="p", status="reading")
    store.record_file("f" * 64, status="done", rows_queued=3, records=3)
    seen = store.file_seen("f" * 64)
    assert seen is not None and seen["status"] == "done" and seen["rows_queued"] == 3 and seen["path"] == "/in/a.csv"
    assert [f["sha256"] for f in store.files()] == ["f" * 64]
    assert store.file_seen("e" * 64) is None


def test_applications_their_transitions_and_the_questions_the_pipeline_asks(store: StateStore) -> None:
    store.add_application(_app("R1", "L1"))
    store.add_application(_app("R2", "L2"))
    store.update_application("R1", stage="created", centre_status="draft", application_id="APP-1")
    store.update_application("R1", attempts=1, next_attempt_at=1.5e9 + 0.25)  # not a transition
    store.update_application("R1", stage="tracking", centre_status="submitted", note="submitted")
    steps = [(t["stage"], t["centre_status"], t["note"]) for t in store.transitions("R1")]
    assert steps == [
        ("queued", None, "built from export"),
        ("created", "draft", None),
        ("tracking", "submitted", "submitted"),
    ]
    app = store.application("R1")
    assert app is not None and app.payload["mortgagors"][0]["name"] == "张三丰" and app.attempts == 1
    assert app.next_attempt_at == 1.5e9 + 0.25  # seconds keep their fraction (double precision)
    assert app.source == [{"file": "a.csv", "rows": [2]}]
    assert store.by_centre_id("APP-1") is not None and store.by_centre_id("APP-2") is None
    assert store.payload_sha256("R2") == "d" * 64
    assert [a.reference for a in store.applications("queued")] == ["R2"]
    assert [a.reference for a in store.applications("tracking", due_before=1.6e9)] == ["R1"]
    assert store.applications("tracking", due_before=1.0) == []
    assert store.references("tracking", where="next_attempt_at <= ? AND attempts = ?", args=(1.6e9, 1)) == ["R1"]
    assert store.references(where="centre_status IS NULL") == ["R2"]
    assert store.counts() == {"queued": 1, "tracking": 1}
    assert store.status_counts() == {"-": 1, "submitted": 1}
    store.flag("R2", "needs_refresh", 1)
    assert store.flagged("needs_refresh") == ["R2"]
    assert [t["stage"] for t in store.transitions("R2")] == ["queued"]  # a flag is not a transition
    store.update_application("R1", fee_total="80.00", fee_status="paid", paid_at="2026-03-01T10:00:00+00:00")
    assert store.fees_paid_on("2026-03-01") == ["80.00"] and store.fees_paid_on("2026-03-02") == []
    store.update_application("R1", correction={"items": ["身份证明"]}, decision=None)
    assert (store.application("R1") or pytest.fail()).correction == {"items": ["身份证明"]}
    with pytest.raises(KeyError):
        store.update_application("nope", stage="done")


def test_search_keys_find_an_application_by_unit_and_by_a_keyed_hash_of_an_id_number(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from agent.state.lookup import person_key, search, search_keys_of

    key = person_key(b"secret")
    store = _open(backend, tmp_path, request, indexer=search_keys_of(key))
    try:
        app = _app("R1", "L1")
        app["payload"] = {"mortgagors": [{"name": "张三丰", "id_number": "11010519491231002X"}],
                          "units": [{"unit_id": "340121261006GB00014F00220045"}]}  # fmt: skip
        store.add_application(app)
        store.add_application(_app("R2", "L1"))
        assert [m.reference for m in search(store, "340121261006GB00014F00220045", key)] == ["R1"]
        assert [(m.reference, m.by) for m in search(store, "11010519491231002x", key)] == [("R1", "person")]
        assert search(store, "11010519491231002X", person_key(b"another secret")) == []  # the key matters
        assert [m.reference for m in search(store, "L1", key)] == ["R1", "R2"]
        assert store.counts_by_inbox() == {"corebank": {"queued": 2}}
        store.update_application("R1", payload={"mortgagors": [{"id_number": "110105194912310029"}]})
        assert search(store, "11010519491231002X", key) == [] and search(store, "110105194912310029", key)
        assert store.reindex() == 2
    finally:
        store.close()


def test_materials_are_replaced_and_marked_uploaded(store: StateStore) -> None:
    store.add_application(_app())
    store.mark_uploaded("LN-1-DYSC", "m1")
    assert [m["uploaded"] for m in store.materials("LN-1-DYSC")] == [1]
    store.replace_materials(
        "LN-1-DYSC",
        [
            {"id": "m1", "code": "application_form", "sha256": "1" * 64, "size": 2, "blob": "c"},
            {"id": "m2", "code": "loan_contract", "sha256": "2" * 64, "size": 3, "blob": "d"},
        ],
    )
    got = [(m["material_id"], m["sha256"][0], m["uploaded"]) for m in store.materials("LN-1-DYSC")]
    assert got == [("m1", "1", 0), ("m2", "2", 0)]


def test_a_transaction_is_all_or_nothing_and_nested_uses_join_it(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.add_application(_app("R1"))
        with store.transaction():
            store.set_meta("cursor", "9")
        raise RuntimeError("crash before commit")
    assert store.application("R1") is None and store.get_meta("cursor") is None
    with store.transaction():
        store.add_application(_app("R1"))
        store.set_meta("cursor", "9")
    assert store.application("R1") is not None and store.get_meta("cursor") == "9"


def test_quarantine_events_certificates_and_alerts(store: StateStore) -> None:
    first = store.quarantine("row", [{"column": "证件号码", "value": "1101**********1234"}], loan_no="L1", row=4)
    second = store.quarantine("file", [{"why": "编码"}], path="/in/x.csv")
    assert second > first
    assert [q["id"] for q in store.quarantined()] == [first, second]
    assert (store.quarantine_item(first) or {}).get("errors") == [{"column": "证件号码", "value": "1101**********1234"}]
    assert store.resolve_quarantine_for("L1", "R1") == 1
    store.resolve_quarantine(second, "dismissed")
    assert store.quarantined() == [] and len(store.quarantined(None)) == 2
    assert not store.event_seen("ev-1")
    store.mark_event("ev-1", 1)
    store.mark_event("ev-1", 1)  # at-least-once delivery: the second is ignored
    assert store.event_seen("ev-1")
    assert store.add_certificate("C1", "R1") and not store.add_certificate("C1", "R1")
    store.update_certificate("C1", stage="stored", certificate_number="N-1", supersede_pending=1)
    assert [c["certificate_id"] for c in store.certificates("stored", "R1")] == ["C1"]
    assert [c["certificate_id"] for c in store.superseding()] == ["C1"]
    assert (store.certificate("C1") or {}).get("certificate_number") == "N-1"
    assert store.raise_alert("disk_full", "磁盘已满") and not store.raise_alert("disk_full", "again")
    assert [a["kind"] for a in store.alerts()] == ["disk_full"]
    assert store.clear_alert("disk_full") and not store.clear_alert("disk_full")
    assert store.alerts() == [] and len(store.alerts(open_only=False)) == 1
    gauges = store.gauges()
    assert gauges["certificates"] == {"stored": 1} and gauges["alerts_open"] == 0 and gauges["quarantine_open"] == 0


def test_receipt_batches_are_fixed_before_they_are_written(store: StateStore) -> None:
    assert store.add_receipt("R1", "accepted", "corebank", {"loan_no": "1"})
    assert not store.add_receipt("R1", "accepted", "corebank", {"loan_no": "1"})  # once per application and kind
    store.add_receipt("R2", "accepted", "corebank", {"loan_no": "2"})
    batch = store.open_receipt_batch("corebank", lambda n: f"/r/{n}.csv")
    assert batch is not None and batch["path"] == f"/r/{batch['id']}.csv"
    store.add_receipt("R3", "accepted", "corebank", {"loan_no": "3"})
    assert [r["reference"] for r in store.batch_receipts(batch["id"])] == ["R1", "R2"]
    assert [b["id"] for b in store.pending_receipt_batches()] == [batch["id"]]
    store.mark_batch_written(batch["id"])
    nxt = store.open_receipt_batch("corebank", lambda n: f"/r/{n}.csv")
    assert nxt is not None and [r["reference"] for r in store.batch_receipts(nxt["id"])] == ["R3"]
    assert store.open_receipt_batch("corebank", lambda n: "") is None
    assert store.receipts("R3")[0]["payload"] == {"loan_no": "3"}


def test_paper_originals_are_listed_and_confirmed(store: StateStore) -> None:
    store.add_application(_app("R1"))
    store.add_application(_app("R2"))
    store.update_application("R1", stage="tracking", centre_status="accepted", application_id="APP-1")
    assert [a.reference for a in store.paper_owed()] == ["R1"]
    store.add_transmittal("T1", ["R1"], "/t/T1.csv", "/t/T1.pdf")
    assert store.paper_owed() == [] and [t["id"] for t in store.transmittals()] == ["T1"]
    assert store.confirm_transmittal("T1") == 1
    assert (store.application("R1") or pytest.fail()).paper_status == "delivered"
    with pytest.raises(KeyError):
        store.confirm_transmittal("T9")


def test_personal_data_is_encrypted_at_rest(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    cipher = DataCipher.for_directory(b"secret", tmp_path)
    store = _open(backend, tmp_path, request, encrypt=cipher.encrypt, decrypt=cipher.decrypt)
    store.add_application(_app())
    store.quarantine("row", [{"value": "张三丰"}], loan_no="LN-9")
    assert (store.application("LN-1-DYSC") or pytest.fail()).payload["mortgagors"][0]["name"] == "张三丰"
    if isinstance(store, SQLStore) and store.dialect == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        database = store.url.rsplit("/", 1)[1]
        dump = server.psql("SELECT encode(payload, 'escape') FROM applications", database)
        dump += server.psql("SELECT encode(errors, 'escape') FROM quarantine", database)
        assert dump.strip() and "张三丰" not in dump
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
    assert "张三丰".encode() not in raw
    wrong = DataCipher.for_directory(b"another secret", tmp_path)
    other = _open(backend, tmp_path, request, encrypt=wrong.encrypt, decrypt=wrong.decrypt)
    with pytest.raises(SecretUnavailable):
        other.application("LN-1-DYSC")
    other.close()
