"""Every business type through its whole life, over real HTTP on loopback, with the SDK.

The sandbox is instant here; each test drives the centre only through the public API (and the
admin's scripts where a test needs a particular path). Every test runs against a centre of each
crypto suite: ``intl`` (Ed25519, sha-256) and ``gm`` (SM2 with SM3, sm3 digests; issue 19) with the
personal-field envelope on (each party's name, ID number and phone SM4-GCM-encrypted to the
centre's SM2 encryption key; a centre asking for it refuses them in the clear).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

import sdk
from sandbox import register
from sdk._operations import encode_json
from sdk.models import Application, ApplicationRecord, ApplicationStatus, EventType, Payment, Supplement
from sdk.signing import public_key_from_jwk
from tests import factories as f

from .conftest import Bank, Running, both_suites, settle

S = ApplicationStatus
_APP = TypeAdapter(Application)

suite = pytest.fixture(params=["intl", "gm+SM4-GCM"])(both_suites)


def lodge(bank: Bank, data: dict[str, Any], *, upload: bool = True) -> ApplicationRecord:
    """Create, upload every declared material, submit: what the agent does for one loan operation."""
    app = _APP.validate_python(data)
    ref = app.client_reference
    draft = bank.client.applications.create(app, idempotency_key=f"{ref}:create")
    if upload:
        for m in app.materials:
            content = f.sample_content(m, ref)
            bank.client.applications.upload_material(draft.application_id, m, content)
    return bank.client.applications.submit(draft.application_id, idempotency_key=f"{ref}:submit")


def pay_and_finish(bank: Bank, record: ApplicationRecord) -> ApplicationRecord:
    """Pay the fee notice when there is one to pay, then wait for 办结."""
    record = settle(bank.client, record.application_id, "recorded")
    if record.fee_status == "unpaid":
        notice = bank.client.fees.get(record.application_id)
        assert notice.total > 0 and notice.total == sum(i.amount for i in notice.items)
        key = f"{record.client_reference}:pay"
        receipt = bank.client.fees.pay(record.application_id, Payment(amount=notice.total), idempotency_key=key)
        again = bank.client.fees.pay(record.application_id, Payment(amount=notice.total), idempotency_key=key)
        assert again.payment_id == receipt.payment_id and again.receipt_number == receipt.receipt_number
        assert bank.client.fees.receipt(receipt.payment_id) == receipt
    return settle(bank.client, record.application_id)


def check_certificate(sandbox: Running, bank: Bank, certificate_id: str) -> sdk.models.CertificateMetadata:
    signed = bank.client.certificates.get(certificate_id)
    meta = signed.metadata
    # the metadata is the centre's: its signature verifies with the centre key from the bundle
    key = public_key_from_jwk(sandbox.centre.keys.centre_jwk)
    assert signed.signature.alg == sandbox.centre.suite.default_algorithm
    key.verify(base64.b64decode(signed.signature.value), encode_json(meta.model_dump(mode="json")))  # type: ignore[call-arg]
    content = bank.client.certificates.download(certificate_id, expected_sha256=meta.sha256)
    # the intl suite's certificates are PDF/PAdES, the gm suite's OFD (a ZIP package, GB/T 33190)
    media = "application/ofd" if sandbox.centre.suite.name == "gm" else "application/pdf"
    magic = b"PK\x03\x04" if media == "application/ofd" else b"%PDF"
    assert meta.media_type == media and content.startswith(magic) and len(content) == meta.size
    sdk.identifiers.check_licence_id(meta.licence_id)
    assert sdk.identifiers.parse_certificate_number(meta.certificate_number).is_proof
    assert meta.issuing_authority == sandbox.centre.name and meta.qr_payload.endswith(meta.licence_id)
    return meta


EXPECTED_FEES = {
    "mortgage_first": Decimal("80.00"),
    "mortgage_change": Decimal("80.00"),
    "mortgage_discharge": Decimal("0"),
    "purchase_notice": Decimal("80.00"),
    "mortgage_notice": Decimal("80.00"),
    "purchase_and_mortgage_notice": Decimal("160.00"),
    "mortgage_notice_conversion": Decimal("0"),
    "maximum_determination": Decimal("80.00"),
    "mortgage_first_with_determination": Decimal("160.00"),
}
CERTIFICATES = {"mortgage_discharge": 0, "purchase_and_mortgage_notice": 2}


@pytest.mark.parametrize("kind", f.ALL_TYPES)
def test_every_business_type_through_its_whole_life(sandbox: Running, bank: Bank, kind: str) -> None:
    if kind == "mortgage_notice":  # a 抵押权预告 needs the purchase notice on the register first
        first = lodge(bank, f.application_dict("purchase_notice", "LN-PRE", n=f.DEFAULT_UNIT[kind], complete=True))
        assert pay_and_finish(bank, first).status is S.COMPLETED
    record = lodge(bank, f.application_dict(kind, f"LN-{kind}", complete=True))
    done = pay_and_finish(bank, record)
    assert done.status is S.COMPLETED, (done.decision, done.correction)
    path = [h.status for h in done.history]
    assert path[:5] == [S.DRAFT, S.SUBMITTED, S.ACCEPTED, S.UNDER_REVIEW, S.RECORDED]
    assert path[-1] is S.COMPLETED
    notice = bank.client.fees.get(done.application_id)
    assert notice.total == EXPECTED_FEES[kind]
    assert notice.status == ("paid" if notice.total else "waived")
    assert len(done.certificate_ids) == CERTIFICATES.get(kind, 1)
    for cid in done.certificate_ids:
        meta = check_certificate(sandbox, bank, cid)
        assert meta.unit_ids == [p.unit_id for p in done.application.properties]
        assert bank.client.certificates.verify(licence_id=meta.licence_id).result == "valid"
    events = [e for e in bank.client.events.pager() if e.application_id == done.application_id]
    kinds = {e.type for e in events}
    assert EventType.FEE_ASSESSED in kinds
    assert (EventType.CERTIFICATE_ISSUED in kinds) == bool(done.certificate_ids)
    statuses = [e.status for e in events if e.type is EventType.APPLICATION_STATUS_CHANGED]
    assert statuses == path[1:]


def test_a_correction_answered_by_a_supplement(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first", "LN-FIX", complete=True)
    complete = data["materials"]
    data["materials"] = [m for m in complete if m["code"] != "main_contract"]
    record = settle(bank.client, lodge(bank, data).application_id, "correction_required")
    assert record.status is S.CORRECTION_REQUIRED and record.correction is not None
    assert [(i.code, i.pointer) for i in record.correction.items] == [("main_contract", "/materials")]
    assert record.correction.deadline > record.correction.requested_at
    missing = next(sdk.models.Material.model_validate(m) for m in complete if m["code"] == "main_contract")
    answered = bank.client.applications.supplement(
        record.application_id, Supplement(materials=[missing], note="补交主债权合同"), idempotency_key="LN-FIX:sup1"
    )
    assert missing.id not in answered.materials_received
    bank.client.applications.upload_material(
        record.application_id, missing, f.material_content("main_contract", "LN-FIX")
    )
    again = bank.client.applications.submit(record.application_id, idempotency_key="LN-FIX:submit2")
    assert again.status is S.SUBMITTED and again.correction is None
    done = pay_and_finish(bank, again)
    assert done.status is S.COMPLETED
    assert [h.status for h in done.history].count(S.SUBMITTED) == 2


def test_a_field_correction_takes_a_corrected_application(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first", "LN-FIELD", n=3, complete=True)
    data["properties"][0]["title_certificate"] = "皖(2024)长丰县不动产权第9999999号"
    record = settle(bank.client, lodge(bank, data).application_id, "correction_required")
    assert record.correction is not None
    assert [i.pointer for i in record.correction.items] == ["/properties/0/title_certificate"]
    fixed = f.application_dict("mortgage_first", "LN-FIELD", n=3, complete=True)
    corrected = _APP.validate_python(fixed)
    bank.client.applications.supplement(
        record.application_id, Supplement(corrected=corrected), idempotency_key="LN-FIELD:sup"
    )
    wrong = _APP.validate_python(f.application_dict("mortgage_first", "LN-OTHER-REF", n=3, complete=True))
    with pytest.raises(sdk.ValidationFailed):
        bank.client.applications.supplement(
            record.application_id, Supplement(corrected=wrong), idempotency_key="LN-FIELD:sup-wrong"
        )
    done = pay_and_finish(bank, bank.client.applications.submit(record.application_id, idempotency_key="LN-FIELD:s2"))
    assert done.status is S.COMPLETED


def test_an_unanswered_correction_is_cancelled_after_its_deadline(sandbox: Running, bank: Bank) -> None:
    sandbox.centre.workflow.timing.correction_days = 1.5 / 86400  # 1.5 seconds
    data = f.application_dict("mortgage_first", "LN-LATE")  # one material only → 补正
    record = settle(bank.client, lodge(bank, data).application_id, "cancelled", timeout=30)
    assert record.status is S.CANCELLED
    kinds = [e.type for e in bank.client.events.pager() if e.application_id == record.application_id]
    assert EventType.CORRECTION_DEADLINE_NEAR in kinds and EventType.CORRECTION_REQUESTED in kinds
    with pytest.raises(sdk.Conflict):
        bank.client.applications.submit(record.application_id, idempotency_key="LN-LATE:again")


def test_discharge_of_a_mortgage_that_does_not_exist_is_not_accepted(bank: Bank) -> None:
    data = f.application_dict("mortgage_discharge", "LN-NOPE", n=16, complete=True)  # unit 16 has no mortgage
    data["mortgage_certificate"] = "皖(2024)长丰县不动产证明第7777777号"
    record = settle(bank.client, lodge(bank, data).application_id)
    assert record.status is S.NOT_ACCEPTED and record.decision is not None
    assert record.decision.code == "mortgage_not_found"
    assert record.decision.notice_number and "不予受理告知书" in record.decision.notice_number
    assert "7777777" in record.decision.reason


@pytest.mark.parametrize(
    ("unit", "tamper", "code"),
    [
        (register.SEIZED_UNIT, None, "property_seized"),
        (7, "stranger", "mortgagor_not_owner"),  # unit 7 is jointly owned by two people
    ],
)
def test_review_refuses_what_the_register_forbids(bank: Bank, unit: int, tamper: str | None, code: str) -> None:
    data = f.application_dict("mortgage_first", f"LN-REF-{unit}", n=unit, complete=True)
    if tamper == "stranger":
        data["mortgagors"] = data["mortgagors"][:1]  # one of two co-owners cannot mortgage alone
        data["declaration"]["signatures"] = data["declaration"]["signatures"][:1]
    record = settle(bank.client, lodge(bank, data).application_id)
    assert record.status is S.REFUSED and record.decision is not None
    assert record.decision.code == code
    assert "不予登记告知书" in (record.decision.notice_number or "")


def test_a_mortgage_on_a_property_under_objection_is_recorded_with_a_note(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first", "LN-OBJ", n=register.OBJECTION_UNIT, complete=True)
    done = pay_and_finish(bank, lodge(bank, data))
    assert done.status is S.COMPLETED
    meta = bank.client.certificates.get(done.certificate_ids[0]).metadata
    assert "异议登记" in meta.notes


def test_change_and_discharge_supersede_the_earlier_certificate(sandbox: Running, bank: Bank) -> None:
    first = pay_and_finish(bank, lodge(bank, f.application_dict("mortgage_first", "LN-SUP", n=21, complete=True)))
    original = bank.client.certificates.get(first.certificate_ids[0]).metadata
    assert original.other.count("抵押顺位: 1") == 1
    change = f.application_dict("mortgage_change", "LN-SUP-CHG", n=21, complete=True)
    change["mortgage_certificate"] = original.certificate_number
    changed = pay_and_finish(bank, lodge(bank, change))
    assert changed.status is S.COMPLETED
    newer = bank.client.certificates.get(changed.certificate_ids[0]).metadata
    assert Decimal("1200000.00") == newer.secured_amount
    old = bank.client.certificates.get(first.certificate_ids[0]).metadata
    assert old.status.value == "2" and old.superseded_by == newer.certificate_id
    assert bank.client.certificates.verify(licence_id=original.licence_id).result == "superseded"
    assert bank.client.certificates.verify(sha256=newer.sha256).result == "valid"
    assert bank.client.certificates.verify(sha256="0" * 64).result == "unknown"
    superseded = [e for e in bank.client.events.pager() if e.type is EventType.CERTIFICATE_SUPERSEDED]
    assert [e.data["certificate_id"] for e in superseded] == [original.certificate_id]

    # a change of the mortgage as it was (not current any more) is refused
    stale = f.application_dict("mortgage_change", "LN-SUP-STALE", n=21, complete=True)
    stale["mortgage_certificate"] = original.certificate_number
    refused = settle(bank.client, lodge(bank, stale).application_id)
    assert refused.status is S.REFUSED and refused.decision and refused.decision.code == "mortgage_not_current"

    discharge = f.application_dict("mortgage_discharge", "LN-SUP-DIS", n=21, complete=True)
    discharge["mortgage_certificate"] = newer.certificate_number
    ended = pay_and_finish(bank, lodge(bank, discharge))
    assert ended.status is S.COMPLETED and ended.certificate_ids == []
    assert bank.client.certificates.verify(licence_id=newer.licence_id).result == "superseded"


def test_withdrawal_before_recording(sandbox: Running, bank: Bank) -> None:
    sandbox.centre.workflow.set_script("LN-WD", "examination", {"outcome": "hold"})
    record = lodge(bank, f.application_dict("mortgage_first", "LN-WD", n=4, complete=True))
    held = settle(bank.client, record.application_id, "under_review")
    assert held.status is S.UNDER_REVIEW
    out = bank.client.applications.withdraw(record.application_id, "借款人取消贷款", idempotency_key="LN-WD:withdraw")
    assert out.status is S.WITHDRAWN and out.history[-1].note == "撤回: 借款人取消贷款"
    with pytest.raises(sdk.Conflict):
        bank.client.applications.withdraw(record.application_id, "again", idempotency_key="x2")


def test_scripted_outcomes(sandbox: Running, bank: Bank) -> None:
    sandbox.centre.workflow.set_script(
        "LN-SCR", "acceptance", {"outcome": "not_accepted", "reason": "申请材料不齐全且无法补正"}
    )
    record = settle(
        bank.client, lodge(bank, f.application_dict("mortgage_first", "LN-SCR", n=6, complete=True)).application_id
    )
    assert record.status is S.NOT_ACCEPTED and record.decision and record.decision.reason == "申请材料不齐全且无法补正"


def test_fee_must_be_paid_in_full_before_the_certificate(sandbox: Running, bank: Bank) -> None:
    record = settle(
        bank.client,
        lodge(bank, f.application_dict("mortgage_first", "LN-FEE", n=8, complete=True)).application_id,
        "recorded",
    )
    assert record.status is S.RECORDED and record.fee_status == "unpaid" and not record.certificate_ids
    with pytest.raises(sdk.ValidationFailed) as exc:
        bank.client.fees.pay(record.application_id, Payment(amount=Decimal("79.99")), idempotency_key="LN-FEE:short")
    assert exc.value.errors[0].pointer == "/amount"
    assert bank.client.applications.get(record.application_id).status is S.RECORDED
    done = pay_and_finish(bank, record)
    assert done.status is S.COMPLETED and done.fee_status == "paid"


def test_property_query_answers_rights_and_restrictions_and_is_recorded(sandbox: Running, bank: Bank) -> None:
    owner = register.owners_of(register.SEIZED_UNIT)[0]
    query = sdk.models.PropertyQuery.model_validate(
        {
            "unit_id": register.unit_id(register.SEIZED_UNIT),
            "authorisation": {
                "reference": "SQ-2026-001",
                "applicant": owner.model_dump(mode="json"),
                "signed_at": (datetime.now(UTC) - timedelta(days=10)).isoformat(),  # within its validity period
                "signature_id": "esig-1",
            },
            "operator_id": "op-001",
        }
    )
    result = bank.client.properties.query(query, idempotency_key="q1")
    assert result.seized and not result.objection and not result.mortgaged
    assert {r.kind for r in result.rights} == {"ownership", "seizure"}
    mortgaged = bank.client.properties.query(
        query.model_copy(update={"unit_id": register.unit_id(10), "authorisation": query.authorisation.model_copy(
            update={"applicant": register.owners_of(10)[0]})}),
        idempotency_key="q2",
    )  # fmt: skip
    ranks = sorted(r.rank for r in mortgaged.rights if r.kind == "mortgage" and r.rank)
    assert mortgaged.mortgaged and ranks == [1, 2]
    stranger = query.authorisation.model_copy(update={"applicant": f.person("路人甲", 777)})
    with pytest.raises(sdk.PermissionDenied):
        bank.client.properties.query(query.model_copy(update={"authorisation": stranger}), idempotency_key="q3")
    logged = sandbox.store.all("SELECT * FROM queries WHERE institution_id = ?", bank.institution_id)
    assert [r["authorisation_reference"] for r in logged] == ["SQ-2026-001", "SQ-2026-001"]
