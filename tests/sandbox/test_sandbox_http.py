"""The SDK against the sandbox centre over real HTTP on loopback."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

import sdk
from sdk.models import ApplicationStatus, EventType
from sdk.signing import KeySigner, generate_private_key, jwk_from_public_key, sign_request
from tests import factories as f

from .conftest import Bank, Running, settle


def test_enrol_create_upload_submit_and_follow_the_feed(sandbox: Running, bank: Bank) -> None:
    profile = bank.client.institution.get()
    assert profile.institution_id == bank.institution_id and profile.channel.status == "open"
    app = f.application("mortgage_first")
    draft = bank.client.applications.create(app, idempotency_key="LN2026-0001:create")
    assert draft.status is ApplicationStatus.DRAFT
    with pytest.raises(sdk.ValidationFailed) as exc:
        bank.client.applications.submit(draft.application_id, idempotency_key="LN2026-0001:submit-early")
    assert exc.value.errors[0].pointer == "/materials/0"
    for m in app.materials:  # the 申请书 and each applicant's signed copy of it (checked at submit)
        bank.client.applications.upload_material(draft.application_id, m, f.sample_content(m, app.client_reference))
    submitted = bank.client.applications.submit(draft.application_id, idempotency_key="LN2026-0001:submit")
    assert submitted.status is ApplicationStatus.SUBMITTED
    assert bank.client.applications.find("LN2026-0001").application_id == draft.application_id  # type: ignore[union-attr]
    assert bank.client.applications.find("LN-NONE") is None
    # one material only: the centre asks for the rest (补正), naming each missing checklist item
    record = settle(bank.client, draft.application_id, "correction_required")
    assert record.status is ApplicationStatus.CORRECTION_REQUIRED and record.correction is not None
    asked = {i.code for i in record.correction.items}
    assert asked == {"applicant_identity", "title_certificate", "main_contract"}
    pager = bank.client.events.pager()
    events = list(pager)
    statuses = [e.status for e in events if e.type is EventType.APPLICATION_STATUS_CHANGED]
    assert statuses == [ApplicationStatus.SUBMITTED, ApplicationStatus.CORRECTION_REQUIRED]
    assert events[0].data == {}
    requested = [e for e in events if e.type is EventType.CORRECTION_REQUESTED]
    assert len(requested) == 1 and {i["code"] for i in requested[0].data["items"]} == asked
    assert list(bank.client.events.pager(after=pager.cursor)) == []
    listed = bank.client.applications.list(statuses=[ApplicationStatus.CORRECTION_REQUIRED])
    assert [r.application_id for r in listed] == [draft.application_id]


def test_idempotent_replay_and_conflict(bank: Bank) -> None:
    app = f.application("mortgage_first", ref="LN-IDEM")
    first = bank.client.applications.create(app, idempotency_key="k-idem")
    again = bank.client.applications.create(app, idempotency_key="k-idem")
    assert again.application_id == first.application_id
    other = f.application("mortgage_first", ref="LN-OTHER")
    with pytest.raises(sdk.IdempotencyConflict):
        bank.client.applications.create(other, idempotency_key="k-idem")
    with pytest.raises(sdk.Conflict) as exc:
        bank.client.applications.create(app, idempotency_key="k-new-key-same-reference")
    assert exc.value.code == "duplicate_reference"
    assert len(bank.client.applications.list()) == 1


def test_upload_must_match_its_declaration(sandbox: Running, bank: Bank) -> None:
    app = f.application("mortgage_first", ref="LN-UP")
    draft = bank.client.applications.create(app)
    with pytest.raises(ValueError, match="declared as"):  # the SDK refuses before sending …
        bank.client.applications.upload_material(draft.application_id, app.materials[0], b"other content")
    url = f"{sandbox.url}/v1/applications/{draft.application_id}/materials/m1"
    request = httpx.Request("PUT", url, content=b"other content", headers={"Content-Type": "application/pdf"})
    sign_request(request, KeySigner(bank.key_id, bank.key))
    with httpx.Client() as http:
        response = http.send(request)  # … and the centre refuses what gets past a careless client
    assert response.status_code == 422 and response.json()["code"] == "payload_mismatch"
    assert bank.client.applications.get(draft.application_id).materials_received == []


def _raw(
    sandbox: Running,
    bank: Bank,
    *,
    key: object | None = None,
    key_id: str | None = None,
    now: dt.datetime | None = None,
    body: bytes = b"",
    tamper: bytes | None = None,
) -> httpx.Response:
    request = httpx.Request("GET", f"{sandbox.url}/v1/institution", content=body)
    sign_request(request, KeySigner(key_id or bank.key_id, key or bank.key), now=now)  # type: ignore[arg-type]
    if tamper is not None:
        request = httpx.Request("GET", request.url, headers=request.headers, content=tamper)
    with httpx.Client() as http:
        return http.send(request)


def test_each_bad_request_is_refused_with_its_own_code(sandbox: Running, bank: Bank) -> None:
    assert _raw(sandbox, bank).status_code == 200
    request = httpx.Request("GET", f"{sandbox.url}/v1/institution")
    sign_request(request, KeySigner(bank.key_id, bank.key))
    with httpx.Client() as http:
        assert http.send(request).status_code == 200
        replay = http.send(request)
    codes = {
        "replayed_nonce": replay,
        "digest_mismatch": _raw(sandbox, bank, body=b"a", tamper=b"b"),
        "clock_skew": _raw(sandbox, bank, now=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=900)),
        "unknown_key": _raw(sandbox, bank, key_id="key_unknown"),
        "signature_invalid": _raw(sandbox, bank, key=generate_private_key()),
    }
    for code, response in codes.items():
        assert response.status_code == 401, (code, response.text)
        assert response.json()["code"] == code
        assert response.headers["X-Request-Id"] == response.json()["request_id"]
    unsigned = httpx.get(f"{sandbox.url}/v1/institution")
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "signature_missing"


def test_suspended_channel_and_revoked_key(sandbox: Running, bank: Bank) -> None:
    sandbox.centre.set_channel(bank.institution_id, "suspended", "材料不规范，限期整改")
    with pytest.raises(sdk.ChannelSuspended, match="限期整改"):
        bank.client.applications.create(f.application())
    sandbox.centre.set_channel(bank.institution_id, "open")
    assert bank.client.institution.get().channel.status == "open"
    sandbox.store.execute("UPDATE keys SET status = 'revoked' WHERE key_id = ?", bank.key_id)
    with pytest.raises(sdk.AuthenticationFailed) as exc:
        bank.client.institution.get()
    assert exc.value.code == "key_revoked"


def test_enrolment_token_is_one_time(sandbox: Running) -> None:
    iid = sandbox.centre.create_institution(name="示例银行二", uscc=f.uscc(), licence_no="B2", district="340121")
    token = sandbox.centre.issue_enrolment_token(iid)
    jwk = jwk_from_public_key(generate_private_key().public_key())
    other = jwk_from_public_key(generate_private_key().public_key())
    with sdk.Client(sandbox.url) as anon:
        first = anon.credentials.enroll(token, jwk)
        # the same enrolment again (its answer was lost) gets the same answer; nothing new is registered
        assert anon.credentials.enroll(token, jwk).key_id == first.key_id
        with pytest.raises(sdk.AuthenticationFailed) as exc:
            anon.credentials.enroll(token, other)
    assert exc.value.code == "enrolment_token_invalid"
    assert [k.key_id for k in sandbox.centre.list_credentials(iid)] == [first.key_id]


def test_schema_errors_come_all_at_once_with_pointers(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first")
    data["terms"]["secured_amount"] = "1.001"
    data["properties"][0]["unit_id"] = "bad"
    request = httpx.Request(
        "POST", f"{sandbox.url}/v1/applications", json=data, headers={"Idempotency-Key": "k-schema"}
    )
    sign_request(request, KeySigner(bank.key_id, bank.key))
    with httpx.Client() as http:
        response = http.send(request)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_failed"
    pointers = {e["pointer"] for e in problem["errors"]}
    assert {"/terms/secured_amount", "/properties/0/unit_id"} <= pointers
