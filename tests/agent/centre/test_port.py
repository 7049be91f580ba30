"""The lifecycle scenarios through the centre port, against both adapters (issue 21, "Must show").

Every scenario drives :class:`agent.centre.port.CentrePort` only — what the agent's stages use — and
runs against each side (one centre or platform per side, shared by the module):

- ``api``: ``ApiCentre`` speaking RegBridge's contract (the SDK) to one sandbox centre of the ``intl``
  suite (Ed25519, PDF certificates);
- ``api-gm``: the same against a centre of the ``gm`` suite (SM2 with SM3, OFD certificates) asking
  for the personal-field envelope (each party's name, ID number and phone SM4-GCM-encrypted; issue 19);
- ``province``: ``ProvinceCentre`` speaking the provincial platform's envelope (SM4/SM2, TD/T 1066
  names) to a platform before two county centres; its applications are 肥西县's (340123), so the
  platform routes them past 长丰县.

Every business type goes through its whole life; a 补正 is answered by a supplement (materials, or a
corrected application); an unanswered one is cancelled at its deadline; the register refuses what it
forbids; change and discharge supersede the earlier certificate; a withdrawal before 登簿; scripted
outcomes; the fee paid in full before the certificate; 登记资料查询. The centre's admin acts (scripts,
the correction deadline) and its query trace are the sandbox's own, read from the county centre the
side's applications land at. The platform has no event feed (``events`` answers an empty page), so the
feed's assertions hold on the sides that have one.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

import sdk
from agent.centre.api import ApiCentre
from agent.centre.port import CentrePort
from agent.centre.province import ProvinceCentre
from config import load_dialect, load_districts
from sandbox import register
from sandbox.centre import Centre
from sandbox.local import LocalCentre
from sandbox.platform import ProvincePlatform
from sandbox.register import CHANGFENG, FEIXI, County
from sandbox.store import Store
from sdk._operations import encode_json
from sdk.certificates import TrustAnchors, verify_query_result
from sdk.dialects.province import PlatformClient
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.models import (
    Application,
    ApplicationRecord,
    ApplicationStatus,
    CertificateMetadata,
    Event,
    EventType,
    Material,
    Payment,
    PropertyQuery,
    Supplement,
)
from sdk.signing import generate_private_key, jwk_from_public_key, public_key_from_jwk
from sdk.suites import Suite, suite_named
from tests import factories as f

S = ApplicationStatus
_APP: TypeAdapter[Application] = TypeAdapter(Application)


@dataclass
class Side:
    name: str
    port: CentrePort
    county: County  # where this side's applications go
    centre_key: dict[str, Any]  # the JWK the certificates' metadata is signed with (the trust anchor)
    centre_key_id: str
    centre: Centre  # the county centre this side's applications land at (its admin acts, its records)
    store: Store
    institution_id: str  # the bank at that centre
    suite: Suite
    feed: bool  # the centre has an event feed (the platform has none)


def _api_side(name: str, suite: Suite) -> Iterator[Side]:
    with LocalCentre(suite=suite) as local:
        iid, _ = local.bank()
        centre = local.centre
        token = centre.issue_enrolment_token(iid)
        key = generate_private_key(suite.default_algorithm)  # type: ignore[arg-type]
        # a centre asking for the personal-field envelope: wrap to its key, and register the bank's own
        # SM2 encryption key, to which it seals the personal fields of its answers (opened by the client)
        mine = Sm2PrivateKey.generate() if suite.envelope else None
        with sdk.Client(local.url) as anon:
            enrolled = anon.credentials.enroll(
                token, jwk_from_public_key(key.public_key()),
                encryption_key=jwk_from_public_key(mine.public) if mine else None,
            )  # fmt: skip
        envelope = None
        if suite.envelope:
            recipient = centre.keys.encryption_key(local.store).public
            envelope = sdk.FieldEncryption(recipient, suite.envelope, decryption_key=mine)
        port = ApiCentre(sdk.Client(local.url, sdk.Credential(enrolled.key_id, key), envelope=envelope))
        try:
            yield Side(name, port, CHANGFENG, dict(centre.keys.centre_jwk), centre.keys.centre_key_id, centre,
                       local.store, iid, suite, True)  # fmt: skip
        finally:
            port.close()


def _province_side() -> Iterator[Side]:
    signer, decryption = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    with ProvincePlatform() as platform:
        enrolment = platform.enrol("BANK-AH-PORT", signing_key=signer.public, encryption_key=decryption.public)
        client = PlatformClient(
            enrolment.url, app_id="BANK-AH-PORT", signer=signer, decryption_key=decryption,
            platform_app_id=enrolment.platform_app_id, platform_key=enrolment.platform_signing_key,
            platform_encryption_key=enrolment.platform_encryption_key,
        )  # fmt: skip
        port = ProvinceCentre(client, load_dialect("province"), tuple(load_districts("province")))
        local = platform.centres[FEIXI.district]
        iid = platform.banks["BANK-AH-PORT"].institutions[FEIXI.district]
        anchors = enrolment.centre_keys[FEIXI.district]
        try:
            yield Side(
                "province", port, FEIXI, anchors["jwk"], anchors["key_id"], local.centre, local.store, iid,
                local.centre.suite, False,
            )  # fmt: skip
        finally:
            port.close()


@pytest.fixture(scope="module", params=["api", "api-gm", "province"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    if request.param == "province":
        yield from _province_side()
    else:
        yield from _api_side(request.param, suite_named("gm", envelope="SM4-GCM") if request.param == "api-gm" else
                             suite_named("intl"))  # fmt: skip


# --- what the agent does for one loan operation, through the port ---------------------------------


def _data(side: Side, kind: str, ref: str, n: int | None = None) -> dict[str, Any]:
    """A complete application of ``kind`` about seeded unit ``n`` of the side's county."""
    return f.application_dict(kind, f"{ref}-{side.name}", n, complete=True, county=side.county)


def _lodge(port: CentrePort, data: dict[str, Any], *, upload: bool = True) -> ApplicationRecord:
    """Create, upload every declared material, submit."""
    app = _APP.validate_python(data)
    ref = app.client_reference
    draft = port.create(app, idempotency_key=f"{ref}:create")
    if upload:
        for m in app.materials:
            port.upload_material(draft.application_id, m, f.sample_content(m, ref))
    return port.submit(draft.application_id, idempotency_key=f"{ref}:submit")


def _settle(port: CentrePort, application_id: str, *until: str, timeout: float = 30.0) -> ApplicationRecord:
    """Read (quickly: the test centres are instant) until one of ``until`` or a final status."""
    deadline = time.monotonic() + timeout
    while True:
        record = port.application(application_id)
        if record.status.value in until or record.is_final:
            return record
        assert time.monotonic() < deadline, f"{application_id} stuck in {record.status.value}, wanted {until}"
        time.sleep(0.03)


def _finish(side: Side, record: ApplicationRecord) -> ApplicationRecord:
    """Pay the fee notice when there is one to pay (the same key twice: one payment), then wait for 办结."""
    port = side.port
    record = _settle(port, record.application_id, "recorded")
    if record.fee_status == "unpaid":
        notice = port.fee_notice(record.application_id)
        assert notice.total > 0 and notice.total == sum(i.amount for i in notice.items)
        key = f"{record.client_reference}:pay"
        receipt = port.pay(record.application_id, Payment(amount=notice.total), idempotency_key=key)
        again = port.pay(record.application_id, Payment(amount=notice.total), idempotency_key=key)
        assert again.payment_id == receipt.payment_id and again.receipt_number == receipt.receipt_number
        assert port.receipt(receipt.payment_id) == receipt
        assert receipt.receipt_number.startswith(side.county.district)  # the county's own 票据号
    return _settle(port, record.application_id)


def _feed(port: CentrePort) -> list[Event]:
    events: list[Event] = []
    after: str | None = None
    while True:
        page = port.events(after=after, limit=200)
        events += page.events
        if not page.has_more:
            return events
        after = page.next_cursor


def _check_certificate(side: Side, certificate_id: str) -> CertificateMetadata:
    signed = side.port.certificate(certificate_id)
    meta = signed.metadata
    # the metadata is the county centre's: it verifies with the key from enrolment, not from the answer
    key = public_key_from_jwk(side.centre_key)
    assert signed.signature.alg == side.suite.default_algorithm
    key.verify(base64.b64decode(signed.signature.value), encode_json(meta.model_dump(mode="json")))  # type: ignore[call-arg]
    content = side.port.download_certificate(certificate_id, expected_sha256=meta.sha256)
    # the intl suite's certificates are PDF/PAdES, the gm suite's OFD (a ZIP package, GB/T 33190)
    media = "application/ofd" if side.suite.name == "gm" else "application/pdf"
    magic = b"PK\x03\x04" if media == "application/ofd" else b"%PDF"
    assert meta.media_type == media and content.startswith(magic) and len(content) == meta.size
    sdk.identifiers.check_licence_id(meta.licence_id)
    assert sdk.identifiers.parse_certificate_number(meta.certificate_number).is_proof
    assert f"{side.county.name}不动产证明第" in meta.certificate_number
    assert meta.issuing_authority == side.centre.name and meta.qr_payload.endswith(meta.licence_id)
    return meta


# --- the scenarios ------------------------------------------------------------------------------------


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
def test_every_business_type_through_its_whole_life(side: Side, kind: str) -> None:
    if kind == "mortgage_notice":  # a 抵押权预告 needs the purchase notice on the register first
        first = _lodge(side.port, _data(side, "purchase_notice", "LN-PRE", f.DEFAULT_UNIT[kind]))
        assert _finish(side, first).status is S.COMPLETED
    done = _finish(side, _lodge(side.port, _data(side, kind, f"LN-{kind}")))
    assert done.status is S.COMPLETED, (done.decision, done.correction)
    path = [h.status for h in done.history]
    assert path[:5] == [S.DRAFT, S.SUBMITTED, S.ACCEPTED, S.UNDER_REVIEW, S.RECORDED]
    assert path[-1] is S.COMPLETED
    notice = side.port.fee_notice(done.application_id)
    assert notice.total == EXPECTED_FEES[kind]
    assert notice.status == ("paid" if notice.total else "waived")
    assert len(done.certificate_ids) == CERTIFICATES.get(kind, 1)
    for cid in done.certificate_ids:
        meta = _check_certificate(side, cid)
        assert meta.unit_ids == [p.unit_id for p in done.application.properties]
        assert all(u.startswith(side.county.district) for u in meta.unit_ids)
        assert side.port.verify_certificate(meta.licence_id).result == "valid"
    if side.feed:
        events = [e for e in _feed(side.port) if e.application_id == done.application_id]
        kinds = {e.type for e in events}
        assert EventType.FEE_ASSESSED in kinds
        assert (EventType.CERTIFICATE_ISSUED in kinds) == bool(done.certificate_ids)
        statuses = [e.status for e in events if e.type is EventType.APPLICATION_STATUS_CHANGED]
        assert statuses == path[1:]


def test_the_same_key_answers_the_same_record_and_find_knows_it(side: Side) -> None:
    app = _APP.validate_python(_data(side, "mortgage_first", "LN-PORT-IDEM", 32))
    first = side.port.create(app, idempotency_key=f"idem-{side.name}")
    again = side.port.create(app, idempotency_key=f"idem-{side.name}")
    assert again.application_id == first.application_id and first.status is S.DRAFT
    found = side.port.find(app.client_reference)
    assert found is not None and found.application_id == first.application_id
    assert side.port.find("LN-NOBODY") is None
    with pytest.raises(sdk.NotFound):
        side.port.application("app-does-not-exist")


def test_a_correction_answered_by_a_supplement(side: Side) -> None:
    data = _data(side, "mortgage_first", "LN-FIX", 9)
    ref = data["client_reference"]
    complete = data["materials"]
    data["materials"] = [m for m in complete if m["code"] != "main_contract"]
    record = _settle(side.port, _lodge(side.port, data).application_id, "correction_required")
    assert record.status is S.CORRECTION_REQUIRED and record.correction is not None
    assert [(i.code, i.pointer) for i in record.correction.items] == [("main_contract", "/materials")]
    assert record.correction.deadline > record.correction.requested_at
    missing = next(Material.model_validate(m) for m in complete if m["code"] == "main_contract")
    answered = side.port.supplement(
        record.application_id, Supplement(materials=[missing], note="补交主债权合同"), idempotency_key=f"{ref}:sup1"
    )
    assert missing.id not in answered.materials_received
    side.port.upload_material(record.application_id, missing, f.material_content("main_contract", ref))
    again = side.port.submit(record.application_id, idempotency_key=f"{ref}:submit2")
    assert again.status is S.SUBMITTED and again.correction is None
    done = _finish(side, again)
    assert done.status is S.COMPLETED
    assert [h.status for h in done.history].count(S.SUBMITTED) == 2


def test_a_field_correction_takes_a_corrected_application(side: Side) -> None:
    data = _data(side, "mortgage_first", "LN-FIELD", 3)
    ref = data["client_reference"]
    data["properties"][0]["title_certificate"] = f"皖(2024){side.county.name}不动产权第9999999号"
    record = _settle(side.port, _lodge(side.port, data).application_id, "correction_required")
    assert record.correction is not None
    assert [i.pointer for i in record.correction.items] == ["/properties/0/title_certificate"]
    corrected = _APP.validate_python(_data(side, "mortgage_first", "LN-FIELD", 3))
    side.port.supplement(record.application_id, Supplement(corrected=corrected), idempotency_key=f"{ref}:sup")
    wrong = _APP.validate_python(_data(side, "mortgage_first", "LN-OTHER-REF", 3))
    with pytest.raises(sdk.ValidationFailed):
        side.port.supplement(record.application_id, Supplement(corrected=wrong), idempotency_key=f"{ref}:sup-wrong")
    done = _finish(side, side.port.submit(record.application_id, idempotency_key=f"{ref}:s2"))
    assert done.status is S.COMPLETED


def test_an_unanswered_correction_is_cancelled_after_its_deadline(side: Side) -> None:
    timing = side.centre.workflow.timing
    before = timing.correction_days
    timing.correction_days = 1.5 / 86400  # 1.5 seconds
    try:
        data = f.application_dict("mortgage_first", f"LN-LATE-{side.name}", 11, county=side.county)  # 1 material → 补正
        record = _settle(side.port, _lodge(side.port, data).application_id, "cancelled")
    finally:
        timing.correction_days = before
    assert record.status is S.CANCELLED
    assert S.CORRECTION_REQUIRED in [h.status for h in record.history]
    if side.feed:
        kinds = [e.type for e in _feed(side.port) if e.application_id == record.application_id]
        assert EventType.CORRECTION_DEADLINE_NEAR in kinds and EventType.CORRECTION_REQUESTED in kinds
    with pytest.raises(sdk.Conflict):
        side.port.submit(record.application_id, idempotency_key=f"LN-LATE-{side.name}:again")


def test_discharge_of_a_mortgage_that_does_not_exist_is_not_accepted(side: Side) -> None:
    data = _data(side, "mortgage_discharge", "LN-NOPE", 16)  # unit 16 has no mortgage
    data["mortgage_certificate"] = f"皖(2024){side.county.name}不动产证明第7777777号"
    record = _settle(side.port, _lodge(side.port, data).application_id)
    assert record.status is S.NOT_ACCEPTED and record.decision is not None
    assert record.decision.code == "mortgage_not_found"
    assert record.decision.notice_number and "不予受理告知书" in record.decision.notice_number
    assert record.decision.notice_number.startswith(f"{side.county.short}不动产")  # the county's own numbering
    assert "7777777" in record.decision.reason


@pytest.mark.parametrize(
    ("unit", "tamper", "code"),
    [
        (register.SEIZED_UNIT, None, "property_seized"),
        (7, "stranger", "mortgagor_not_owner"),  # unit 7 is jointly owned by two people
    ],
)
def test_review_refuses_what_the_register_forbids(side: Side, unit: int, tamper: str | None, code: str) -> None:
    data = _data(side, "mortgage_first", f"LN-REF-{unit}", unit)
    if tamper == "stranger":
        data["mortgagors"] = data["mortgagors"][:1]  # one of two co-owners cannot mortgage alone
        data["declaration"]["signatures"] = data["declaration"]["signatures"][:1]
    record = _settle(side.port, _lodge(side.port, data).application_id)
    assert record.status is S.REFUSED and record.decision is not None
    assert record.decision.code == code
    assert "不予登记告知书" in (record.decision.notice_number or "")
    assert (record.decision.notice_number or "").startswith(f"{side.county.short}不动产")


def test_refusals_come_back_as_sdk_errors_and_decisions(side: Side) -> None:
    data = _data(side, "mortgage_first", "LN-PORT-NO", 34)
    data["properties"][0]["unit_id"] = f"{side.county.district}261006GB00014F99999999"  # not in the register
    record = _settle(side.port, _lodge(side.port, data).application_id)
    assert record.status is S.NOT_ACCEPTED and record.decision is not None
    assert "op-001" in {op.operator_id for op in side.port.operators()}
    assert side.port.channel_open()


def test_a_mortgage_on_a_property_under_objection_is_recorded_with_a_note(side: Side) -> None:
    done = _finish(side, _lodge(side.port, _data(side, "mortgage_first", "LN-OBJ", register.OBJECTION_UNIT)))
    assert done.status is S.COMPLETED
    assert "异议登记" in side.port.certificate(done.certificate_ids[0]).metadata.notes


def test_change_and_discharge_supersede_the_earlier_certificate(side: Side) -> None:
    port = side.port
    first = _finish(side, _lodge(port, _data(side, "mortgage_first", "LN-SUP", 21)))
    original = port.certificate(first.certificate_ids[0]).metadata
    assert original.other.count("抵押顺位: 1") == 1
    change = _data(side, "mortgage_change", "LN-SUP-CHG", 21)
    change["mortgage_certificate"] = original.certificate_number
    changed = _finish(side, _lodge(port, change))
    assert changed.status is S.COMPLETED
    newer = port.certificate(changed.certificate_ids[0]).metadata
    assert Decimal("1200000.00") == newer.secured_amount
    old = port.certificate(first.certificate_ids[0]).metadata
    assert old.status.value == "2" and old.superseded_by == newer.certificate_id
    assert port.verify_certificate(original.licence_id).result == "superseded"
    assert port.verify_certificate(sha256=newer.sha256).result == "valid"
    assert port.verify_certificate(sha256="0" * 64).result == "unknown"
    if side.feed:
        mine = {original.certificate_id, newer.certificate_id}
        superseded = [e.data["certificate_id"] for e in _feed(port) if e.type is EventType.CERTIFICATE_SUPERSEDED]
        assert [c for c in superseded if c in mine] == [original.certificate_id]

    # a change of the mortgage as it was (not current any more) is refused
    stale = _data(side, "mortgage_change", "LN-SUP-STALE", 21)
    stale["mortgage_certificate"] = original.certificate_number
    refused = _settle(port, _lodge(port, stale).application_id)
    assert refused.status is S.REFUSED and refused.decision and refused.decision.code == "mortgage_not_current"

    discharge = _data(side, "mortgage_discharge", "LN-SUP-DIS", 21)
    discharge["mortgage_certificate"] = newer.certificate_number
    ended = _finish(side, _lodge(port, discharge))
    assert ended.status is S.COMPLETED and ended.certificate_ids == []
    assert port.verify_certificate(newer.licence_id).result == "superseded"


def test_withdrawal_before_recording(side: Side) -> None:
    data = _data(side, "mortgage_first", "LN-WD", 4)
    ref = data["client_reference"]
    side.centre.workflow.set_script(ref, "examination", {"outcome": "hold"})
    record = _lodge(side.port, data)
    held = _settle(side.port, record.application_id, "under_review")
    assert held.status is S.UNDER_REVIEW
    out = side.port.withdraw(record.application_id, "借款人取消贷款", idempotency_key=f"{ref}:withdraw")
    assert out.status is S.WITHDRAWN and out.history[-1].note == "撤回: 借款人取消贷款"
    with pytest.raises(sdk.Conflict):
        side.port.withdraw(record.application_id, "again", idempotency_key=f"{ref}:x2")


def test_scripted_outcomes(side: Side) -> None:
    data = _data(side, "mortgage_first", "LN-SCR", 6)
    reason = "申请材料不齐全且无法补正"
    side.centre.workflow.set_script(
        data["client_reference"], "acceptance", {"outcome": "not_accepted", "reason": reason}
    )
    record = _settle(side.port, _lodge(side.port, data).application_id)
    assert record.status is S.NOT_ACCEPTED and record.decision and record.decision.reason == reason


def test_fee_must_be_paid_in_full_before_the_certificate(side: Side) -> None:
    data = _data(side, "mortgage_first", "LN-FEE", 8)
    record = _settle(side.port, _lodge(side.port, data).application_id, "recorded")
    assert record.status is S.RECORDED and record.fee_status == "unpaid" and not record.certificate_ids
    with pytest.raises(sdk.ValidationFailed) as exc:
        side.port.pay(
            record.application_id, Payment(amount=Decimal("79.99")), idempotency_key=f"{data['client_reference']}:short"
        )
    assert exc.value.errors[0].pointer == "/amount"
    assert side.port.application(record.application_id).status is S.RECORDED
    done = _finish(side, record)
    assert done.status is S.COMPLETED and done.fee_status == "paid"


def test_an_application_to_its_verified_certificate(side: Side) -> None:
    record = _lodge(side.port, _data(side, "mortgage_first", "LN-PORT", 31))
    done = _finish(side, record)
    assert done.status is S.COMPLETED, (done.decision, done.correction)
    assert done.application.properties[0].unit_id.startswith(side.county.district)
    assert side.port.fee_notice(done.application_id).status == "paid"
    (cid,) = done.certificate_ids
    meta = _check_certificate(side, cid)
    with pytest.raises(sdk.DigestMismatch):
        side.port.download_certificate(cid, expected_sha256="0" * 64)
    # 在线核验 (issue 20: checked online before use), relayed by the platform to the county centre that issued it
    online = side.port.verify_certificate(meta.licence_id)
    assert online.result == "valid" and online.certificate_number == meta.certificate_number
    assert side.port.verify_certificate("1.2.156.3005.2.nobody").result == "unknown"


def test_property_query_answers_rights_and_restrictions_and_is_recorded(side: Side) -> None:
    owner = register.owners_of(register.SEIZED_UNIT)[0]
    query = PropertyQuery.model_validate(
        {
            "unit_id": register.unit_id(register.SEIZED_UNIT, side.county),
            "authorisation": {
                "reference": "SQ-2026-001",
                "applicant": owner.model_dump(mode="json"),
                "signed_at": (datetime.now(UTC) - timedelta(days=10)).isoformat(),  # within its validity period
                "signature_id": "esig-1",
            },
            "operator_id": "op-001",
        }
    )
    result = side.port.query_property(query, idempotency_key="q1")
    # the county centre's signed 查询结果, exactly as it signed it (relayed through the platform's names)
    trust = TrustAnchors(seal_ca_pem="", centre_key_id=side.centre_key_id, centre_key=side.centre_key)
    verify_query_result(result, trust)
    assert result.seized and not result.objection and not result.mortgaged
    assert result.unit_id == query.unit_id
    assert {r.kind for r in result.rights} == {"ownership", "seizure"}
    # its sealed 查询结果, numbered by the county centre that answered, relayed as a notice
    assert result.document_id is not None
    sealed = side.port.notice(result.document_id).metadata
    assert sealed.kind == "query_result" and sealed.notice_number.startswith(f"{side.county.short}不动产查询")
    mortgaged = side.port.query_property(
        query.model_copy(update={"unit_id": register.unit_id(10, side.county), "authorisation":
            query.authorisation.model_copy(update={"applicant": register.owners_of(10)[0]})}),
        idempotency_key="q2",
    )  # fmt: skip
    ranks = sorted(r.rank for r in mortgaged.rights if r.kind == "mortgage" and r.rank)
    assert mortgaged.mortgaged and ranks == [1, 2]
    stranger = query.authorisation.model_copy(update={"applicant": f.person("路人甲", 777)})
    with pytest.raises(sdk.PermissionDenied):
        side.port.query_property(query.model_copy(update={"authorisation": stranger}), idempotency_key="q3")
    logged = side.store.all("SELECT * FROM queries WHERE institution_id = ?", side.institution_id)
    assert [r["authorisation_reference"] for r in logged] == ["SQ-2026-001", "SQ-2026-001"]
