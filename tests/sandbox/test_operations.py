"""The centre's admin side, credentials, institution filing, webhooks, faults on demand, audit and
persistence — each over real HTTP on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from typer.testing import CliRunner

import sdk
from agent.cli import app as cli
from sandbox.centre import Centre
from sandbox.pki import CentreKeys, KeysLocked
from sandbox.store import Store
from sdk._operations import encode_json
from sdk.models import ApplicationStatus, EventType, InstitutionFiling
from sdk.retries import RetryPolicy
from sdk.signing import (
    KeySigner,
    generate_private_key,
    jwk_fingerprint,
    jwk_from_public_key,
    public_key_from_jwk,
    sign_request,
)
from tests import factories as f

from .conftest import Bank, Running, lodge, settle

S = ApplicationStatus


def admin(sandbox: Running) -> httpx.Client:
    token = sandbox.centre.create_admin_token("test")
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def verify_bundle(signed: dict[str, Any]) -> dict[str, Any]:
    bundle = signed["bundle"]
    key = public_key_from_jwk(bundle["trust"]["centre_key"])
    key.verify(base64.b64decode(signed["signature"]["value"]), encode_json(bundle))  # type: ignore[call-arg]
    return bundle  # type: ignore[no-any-return]


# --- admin ---------------------------------------------------------------------------------


def test_admin_api_needs_its_own_token(sandbox: Running, bank: Bank) -> None:
    anonymous = httpx.get(f"{sandbox.url}/admin/v1/institutions")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "admin_unauthorised"
    forged = httpx.get(f"{sandbox.url}/admin/v1/institutions", headers={"Authorization": "Bearer rba_forged"})
    assert forged.status_code == 401
    # a bank's signed request does not open the admin side either
    request = httpx.Request("GET", f"{sandbox.url}/admin/v1/institutions")
    sign_request(request, KeySigner(bank.key_id, bank.key))
    with httpx.Client() as http:
        assert http.send(request).status_code == 401


def test_admin_issues_an_account_and_a_signed_bundle_that_enrols_once(sandbox: Running) -> None:
    with admin(sandbox) as a:
        made = a.post(
            "/admin/v1/institutions",
            json={"name": "示例银行长丰支行", "uscc": f.uscc("91340121MA2N00077"), "licence_no": "B0001S334010077"},
        )
        assert made.status_code == 201, made.text
        iid = made.json()["institution_id"]
        again = a.post(
            "/admin/v1/institutions", json={"name": "x", "uscc": f.uscc("91340121MA2N00077"), "licence_no": "B"}
        )
        assert again.status_code == 409
        bad = a.post("/admin/v1/institutions", json={"name": "x", "uscc": "91340121MA2N00070", "licence_no": "B"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "/uscc"
        op = a.post(f"/admin/v1/institutions/{iid}/operators", json={"display_name": "王经办"}).json()
        signed = a.post(f"/admin/v1/institutions/{iid}/enrolment-bundle", json={"valid_hours": 2}).json()
    bundle = verify_bundle(signed)
    assert bundle["institution_id"] == iid and bundle["api_base_url"] == sandbox.url
    assert bundle["trust"]["centre_key_id"] == sandbox.centre.keys.centre_key_id
    assert "BEGIN CERTIFICATE" in bundle["trust"]["seal_ca_pem"]
    # tampering with any field breaks the signature
    forged = {**signed, "bundle": {**bundle, "api_base_url": "http://evil.example"}}
    with pytest.raises(InvalidSignature):
        verify_bundle(forged)
    key = generate_private_key()
    with sdk.Client(bundle["api_base_url"]) as anon:
        enrolled = anon.credentials.enroll(bundle["token"], jwk_from_public_key(key.public_key()))
        with pytest.raises(sdk.AuthenticationFailed):
            anon.credentials.enroll(bundle["token"], jwk_from_public_key(generate_private_key().public_key()))
    with sdk.Client(sandbox.url) as anon, pytest.raises(sdk.Conflict) as exc:  # one key, one registration
        anon.credentials.enroll(sandbox.centre.issue_enrolment_token(iid), jwk_from_public_key(key.public_key()))
    assert exc.value.code == "key_exists"
    with sdk.Client(sandbox.url, sdk.Credential(enrolled.key_id, key)) as client:
        assert [o.operator_id for o in client.institution.operators()] == [op["operator_id"]]
        assert client.institution.get().institution_id == iid


def test_admin_suspends_and_resumes_a_channel_and_revokes_a_key(sandbox: Running, bank: Bank) -> None:
    with admin(sandbox) as a:
        r = a.put(
            f"/admin/v1/institutions/{bank.institution_id}/channel", json={"status": "suspended", "reason": "整改"}
        )
        assert r.json()["channel"]["status"] == "suspended"
        with pytest.raises(sdk.ChannelSuspended, match="整改"):
            bank.client.institution.get()
        a.put(f"/admin/v1/institutions/{bank.institution_id}/channel", json={"status": "open"})
        kinds = [e.type for e in bank.client.events.pager()]
        assert kinds == [EventType.CHANNEL_SUSPENDED, EventType.CHANNEL_RESUMED]
        listed = a.get(f"/admin/v1/institutions/{bank.institution_id}/credentials").json()
        assert [c["key_id"] for c in listed] == [bank.key_id]
        assert (
            a.post(f"/admin/v1/credentials/{bank.key_id}/revoke", json={"reason": "泄露"}).json()["status"] == "revoked"
        )
    with pytest.raises(sdk.AuthenticationFailed) as exc:
        bank.client.institution.get()
    assert exc.value.code == "key_revoked"


# --- credentials and institution -------------------------------------------------------------


def test_rotation_keeps_the_old_key_for_its_grace_then_ends_it(sandbox: Running, bank: Bank) -> None:
    new = generate_private_key()
    record = bank.client.credentials.rotate(
        jwk_from_public_key(new.public_key()), grace_seconds=1, idempotency_key="rot"
    )
    assert record.fingerprint == jwk_fingerprint(jwk_from_public_key(new.public_key()))
    assert bank.client.institution.get()  # the old key still works during the grace
    with sdk.Client(sandbox.url, sdk.Credential(record.key_id, new)) as fresh:
        keys = {c.key_id: c for c in fresh.credentials.list()}
        assert keys[bank.key_id].revoke_at is not None and keys[record.key_id].status == "active"
        time.sleep(1.2)
        with pytest.raises(sdk.AuthenticationFailed) as exc:
            bank.client.institution.get()
        assert exc.value.code == "key_revoked"
        assert fresh.institution.get().institution_id == bank.institution_id
        with pytest.raises(sdk.Conflict):  # the same public key twice
            fresh.credentials.rotate(jwk_from_public_key(new.public_key()), idempotency_key="rot2")


def test_filing_webhook_and_operators(sandbox: Running, bank: Bank) -> None:
    filing, contents = f.filing()  # a filing has both documents, 营业执照 (yyzz) and 金融许可证 (jrxkz)
    licence = contents["yyzz"]
    doc = filing.documents[0]
    profile = bank.client.institution.file(InstitutionFiling(documents=filing.documents), idempotency_key="filing-1")
    assert [m.id for m in profile.filing] == ["yyzz", "jrxkz"]
    bank.client.institution.upload_document(doc, licence)
    with pytest.raises(ValueError):  # the SDK refuses content that does not match the declaration
        bank.client.institution.upload_document(doc, b"other")
    assert bank.client.institution.set_webhook("http://127.0.0.1:9/hook").webhook_url == "http://127.0.0.1:9/hook"
    assert [o.operator_id for o in bank.client.institution.operators()] == ["op-001"]


# --- webhooks ------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []
    fail_first = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers.items()), body))
        failing = type(self).fail_first > 0
        type(self).fail_first -= 1
        self.send_response(500 if failing else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    _Receiver.received = []
    _Receiver.fail_first = 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/regbridge/hook", _Receiver
    server.shutdown()
    server.server_close()


def test_webhooks_are_signed_by_the_centre_and_retried(
    sandbox: Running, bank: Bank, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    bank.client.institution.set_webhook(url)
    record = lodge(bank, f.application_dict("mortgage_first", "LN-HOOK", n=9))  # → 补正
    settle(bank.client, record.application_id, "correction_required")
    feed = {e.event_id: e for e in bank.client.events.pager()}
    deadline = time.monotonic() + 15  # the first delivery fails; the retry comes ~2 s later
    while time.monotonic() < deadline:
        delivered = {json.loads(b)["event_id"] for _, h, b in handler.received}
        if set(feed) <= delivered and len(handler.received) > len(feed):
            break
        time.sleep(0.1)
    keys = {sandbox.centre.keys.centre_key_id: public_key_from_jwk(sandbox.centre.keys.centre_jwk)}
    events = []
    for path, headers, body in handler.received:
        event = sdk.verify_webhook(method="POST", url=url, headers=list(headers.items()), body=body, centre_keys=keys)
        assert headers["Webhook-Id"] == event.event_id and path == "/regbridge/hook"
        events.append(event.event_id)
    assert set(events) == set(feed)
    assert len(events) == len(feed) + 1  # exactly one redelivery: the failed first attempt
    # a forged delivery does not verify
    _, headers, body = handler.received[-1]
    with pytest.raises(sdk.errors.SignatureError):
        sdk.verify_webhook(
            method="POST",
            url=url,
            headers=list(headers.items()),
            body=body + b"\n",
            centre_keys=keys,
        )
    row = sandbox.store.one("SELECT attempts, delivered_at FROM deliveries ORDER BY seq LIMIT 1")
    assert row is not None and row["attempts"] == 2 and row["delivered_at"]


# --- faults --------------------------------------------------------------------------------


def set_faults(sandbox: Running, config: dict[str, Any]) -> None:
    with admin(sandbox) as a:
        r = a.put("/admin/v1/faults", json=config)
        assert r.status_code == 200, r.text


def test_injected_503_and_429_are_retried_by_the_sdk(sandbox: Running, bank: Bank) -> None:
    set_faults(sandbox, {"seed": 7, "rules": [
        {"endpoint": "GET /v1/institution", "error_rate": 1.0},
        {"endpoint": "GET /v1/credentials", "rate_limit_rate": 1.0, "retry_after": 0},
    ]})  # fmt: skip
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=3, sleep=waits.append)
    with sdk.Client(sandbox.url, sdk.Credential(bank.key_id, bank.key), retry=policy) as client:
        with pytest.raises(sdk.ServerError):
            client.institution.get()
        with pytest.raises(sdk.RateLimited):
            client.credentials.list()
    assert len(waits) == 4
    outcomes = sandbox.store.all("SELECT outcome FROM audit WHERE action = 'GET /v1/institution'")
    assert [r["outcome"] for r in outcomes] == ["503"] * 3  # injected faults are audited too
    set_faults(sandbox, {})
    assert bank.client.institution.get().institution_id == bank.institution_id


def test_a_response_lost_after_processing_is_recovered_by_the_idempotency_key(sandbox: Running, bank: Bank) -> None:
    set_faults(sandbox, {"seed": 1, "rules": [{"endpoint": "POST /v1/applications", "drop_after_rate": 1.0}]})
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=3, sleep=waits.append)
    app = f.application("mortgage_first", ref="LN-LOST")
    with sdk.Client(sandbox.url, sdk.Credential(bank.key_id, bank.key), retry=policy) as client:
        with pytest.raises(sdk.errors.TransportError):
            client.applications.create(app, idempotency_key="LN-LOST:create")
        set_faults(sandbox, {})
        record = client.applications.create(app, idempotency_key="LN-LOST:create")  # the same key: replayed
    assert len(bank.client.applications.list()) == 1 and record.client_reference == "LN-LOST"
    assert len(waits) == 2  # two retries, each answered by a dropped connection


def test_duplicate_events_and_a_skewed_clock(sandbox: Running, bank: Bank) -> None:
    lodge(bank, f.application_dict("mortgage_first", "LN-DUP", n=11))
    settle(bank.client, bank.client.applications.find("LN-DUP").application_id, "correction_required")  # type: ignore[union-attr]
    first = bank.client.events.list(limit=2)
    set_faults(sandbox, {"duplicate_event_rate": 1.0})
    second = bank.client.events.list(after=first.next_cursor, limit=10)
    again = {e.event_id for e in first.events} & {e.event_id for e in second.events}
    assert again, "the second page repeats events of the first (at-least-once)"
    assert int(second.next_cursor) >= int(first.next_cursor)
    set_faults(sandbox, {"clock_skew_seconds": 1000})
    with pytest.raises(sdk.ClockSkew):
        bank.client.institution.get()
    date = httpx.get(f"{sandbox.url}/v1/verification?sha256={'0' * 64}").headers["Date"]
    skew = dt.datetime.strptime(date, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)
    assert 900 < skew.total_seconds() < 1100


def test_latency_is_added(sandbox: Running, bank: Bank) -> None:
    set_faults(sandbox, {"rules": [{"endpoint": "GET /v1/verification", "latency_ms": 300}]})
    t0 = time.monotonic()
    httpx.get(f"{sandbox.url}/v1/verification?sha256={'0' * 64}")
    assert time.monotonic() - t0 >= 0.3


# --- audit ---------------------------------------------------------------------------------


def test_every_call_is_audited_without_personal_data(sandbox: Running, bank: Bank) -> None:
    record = lodge(bank, f.application_dict("mortgage_first", "LN-AUD", complete=True))
    settle(bank.client, record.application_id, "recorded")
    httpx.get(f"{sandbox.url}/v1/institution")  # refused: still audited
    rows = [dict(r) for r in sandbox.store.all("SELECT * FROM audit")]
    actions = {(r["actor"], r["action"], r["outcome"]) for r in rows}
    assert (bank.institution_id, "POST /v1/applications", "201") in actions
    assert (bank.institution_id, "POST /v1/applications/{application_id}/submit", "200") in actions
    assert ("anonymous", "GET /v1/institution", "401") in actions
    assert all(r["at"] and r["actor"] for r in rows)
    text = json.dumps(rows, ensure_ascii=False)
    for party in record.application.parties():
        assert party.name not in text and party.id_number not in text


# --- persistence and keys ------------------------------------------------------------------


def test_a_centre_with_a_data_directory_survives_a_restart_with_its_keys_encrypted(tmp_path: Path) -> None:
    db = tmp_path / "centre.sqlite3"
    with pytest.raises(KeysLocked):
        Centre(Store(db))
    centre = Centre(Store(db), passphrase=b"correct horse")
    iid = centre.create_institution(name="示例银行", uscc=f.BANK_USCC, licence_no="B1", district="340121")
    key_id = centre.keys.centre_key_id
    centre.store.close()
    raw = (
        db.read_bytes() + (tmp_path / "centre.sqlite3-wal").read_bytes()
        if (tmp_path / "centre.sqlite3-wal").exists()
        else db.read_bytes()
    )
    assert b"BEGIN PRIVATE KEY" not in raw and b"BEGIN ENCRYPTED PRIVATE KEY" in raw
    with pytest.raises(KeysLocked):
        Centre(Store(db), passphrase=b"wrong")
    again = Centre(Store(db), passphrase=b"correct horse")
    assert again.keys.centre_key_id == key_id and again.profile(iid).uscc == f.BANK_USCC
    assert again.store.all("SELECT COUNT(*) AS n FROM units")[0]["n"] == 300  # seeded once


def test_admin_cli_on_a_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGBRIDGE_SANDBOX_SECRET", "cli secret")
    data = tmp_path / "centre"
    Centre(Store(data / "centre.sqlite3"), passphrase=b"cli secret")  # what `serve --data` creates
    runner = CliRunner()
    made = runner.invoke(cli, ["sandbox", "admin", "create-institution", "--name", "示例银行", "--uscc", f.BANK_USCC,
                               "--licence-no", "B1", "--data", str(data)])  # fmt: skip
    assert made.exit_code == 0, made.output
    iid = made.output.strip()
    bad = runner.invoke(cli, ["sandbox", "admin", "create-institution", "--name", "x", "--uscc", "91340100781081199A",
                              "--licence-no", "B1", "--data", str(data)])  # fmt: skip
    assert bad.exit_code != 0 and "check" in bad.output.lower()
    op = runner.invoke(cli, ["sandbox", "admin", "create-operator", iid, "--name", "李经办", "--data", str(data)])
    assert op.exit_code == 0 and op.output.strip().startswith("op_")
    out = tmp_path / "bundle.json"
    made_bundle = runner.invoke(cli, ["sandbox", "admin", "bundle", iid, "--out", str(out), "--data", str(data)])
    assert made_bundle.exit_code == 0, made_bundle.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    bundle = verify_bundle(json.loads(out.read_text(encoding="utf-8")))
    assert bundle["institution_id"] == iid and bundle["api_base_url"] == "http://127.0.0.1:8600"
    listed = runner.invoke(cli, ["sandbox", "admin", "list-institutions", "--data", str(data)])
    assert iid in listed.output and "open" in listed.output
    monkeypatch.delenv("REGBRIDGE_SANDBOX_SECRET")
    locked = runner.invoke(cli, ["sandbox", "admin", "list-institutions", "--data", str(data),
                                 "--secret-file", str(tmp_path / "nope")])  # fmt: skip
    assert locked.exit_code != 0


def test_generated_keys_are_distinct_per_centre() -> None:
    a, b = CentreKeys.generate("甲"), CentreKeys.generate("乙")
    assert a.centre_key_id != b.centre_key_id
    assert hashlib.sha256(a.ca_pem.encode()).digest() != hashlib.sha256(b.ca_pem.encode()).digest()


def test_sign_expired_and_future_signatures(sandbox: Running, bank: Bank) -> None:
    signer = KeySigner(bank.key_id, bank.key)
    with httpx.Client() as http:
        expired = httpx.Request("GET", f"{sandbox.url}/v1/institution")
        # expires has the same ±300 s tolerance as created (issue 17 item 6): an expires 60 s past is
        # accepted; one before its own created is expired whatever the clocks say
        sign_request(expired, signer, now=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120), lifetime=-1)
        assert http.send(expired).json()["code"] == "signature_expired"
        future = httpx.Request("GET", f"{sandbox.url}/v1/institution")
        sign_request(future, signer, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=900))
        assert http.send(future).json()["code"] == "clock_skew"


def test_admin_scripts_over_http(sandbox: Running, bank: Bank) -> None:
    with admin(sandbox) as a:
        assert a.put("/admin/v1/scripts/LN-S1/review", json={"outcome": "refused"}).status_code == 422
        assert a.put("/admin/v1/scripts/LN-S1/nowhere", json={"outcome": "hold"}).status_code == 404
        assert a.put("/admin/v1/scripts/LN-S1/examination", json={"outcome": "hold"}).status_code == 204
        record = lodge(bank, f.application_dict("mortgage_first", "LN-S1", n=12, complete=True))
        held = settle(bank.client, record.application_id, "under_review")
        time.sleep(0.3)
        assert bank.client.applications.get(record.application_id).status is S.UNDER_REVIEW
        advanced = a.post(f"/admin/v1/applications/{held.application_id}/advance")
        assert advanced.status_code == 200 and advanced.json()["status"] == "recorded"
        assert a.delete("/admin/v1/scripts/LN-S1/examination").status_code == 204
        audit = a.get("/admin/v1/audit", params={"limit": 1000}).json()
        assert any(r["actor"] == "admin:test" and r["action"].startswith("POST /admin/v1/applications") for r in audit)


def test_admin_cli_lists_and_revokes_an_institution_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """break19 finding 9: the admin could revoke a bank certificate only over HTTP, and `credentials` named no
    certificate."""
    from sdk.csr import build_request, read_certificate
    from sdk.models import Enrolment

    monkeypatch.setenv("REGBRIDGE_SANDBOX_SECRET", "cli secret")
    data = tmp_path / "centre"
    centre = Centre(Store(data / "centre.sqlite3"), passphrase=b"cli secret")
    iid = centre.create_institution(name="示例银行", uscc=f.BANK_USCC, licence_no="B1", district="340121")
    bundle = centre.enrolment_bundle(iid, "http://127.0.0.1:8600", valid_for=dt.timedelta(hours=1))
    key = generate_private_key("ed25519")
    enrolment = Enrolment(token=bundle["bundle"]["token"], public_key=jwk_from_public_key(key.public_key()),
                          certificate_request=build_request(KeySigner("k", key), {"common_name": "agent"}))  # fmt: skip
    serial = read_certificate(centre.credentials.enroll(enrolment).certificate or "").serial_hex
    runner = CliRunner()
    listed = runner.invoke(cli, ["sandbox", "admin", "credentials", iid, "--data", str(data)])
    assert listed.exit_code == 0 and f"certificate {serial} valid" in listed.output
    bad = runner.invoke(cli, ["sandbox", "admin", "revoke-certificate", "abc123", "--data", str(data)])
    assert bad.exit_code != 0 and "no institution certificate" in bad.output
    done = runner.invoke(cli, ["sandbox", "admin", "revoke-certificate", str(serial), "--data", str(data)])
    assert done.exit_code == 0 and done.output.strip().endswith("revoked"), done.output
    listed = runner.invoke(cli, ["sandbox", "admin", "credentials", iid, "--data", str(data)])
    assert f"certificate {serial} revoked" in listed.output
