"""The register's rules as a real centre applies them (issue 18 item 5), over loopback HTTP with the SDK.

注销 by the mortgagor alone stands only on an effective court or arbitration document (seed 004); the
bank's 营业执照 and 金融许可证 are filed once (银行信息备案, seed 001 §5.2), never sent per application.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

import sdk
from sandbox import register
from sandbox.review import china_today
from sdk.models import FILING_KINDS, Application, ApplicationStatus
from sdk.signing import generate_private_key, jwk_from_public_key
from tests import factories as f

from .conftest import Bank, Running, file_documents, lodge, pay_and_finish, settle

S = ApplicationStatus


def _unilateral(ref: str, document: dict[str, Any] | None) -> dict[str, Any]:
    """A discharge of seeded unit 15's mortgage applied for by its owner alone, the bank as agent."""
    data = f.application_dict("mortgage_discharge", ref, complete=True)
    data["applicant_side"] = "mortgagor"
    data["declaration"]["signatures"] = [
        {"party": f"/mortgagors/{i}", "signature_id": f"sig-{i}", "signed_at": "2026-11-22T09:00:00+08:00"}
        for i in range(len(data["mortgagors"]))
    ]
    data["materials"] = f.complete_materials("mortgage_discharge", data)
    form = next(m["id"] for m in data["materials"] if m["code"] == "application_form")
    f.esign_materials(data, document_id=form)  # the mortgagors apply: each signs the 申请书
    if document is not None:
        court = next(m for m in data["materials"] if m["code"] == "court_document")
        data["court_document"] = {**document, "material_id": court["id"]}
    return data


JUDGMENT = {"kind": "judgment", "issuing_body": "长丰县人民法院", "document_number": "(2026)皖0121民初1234号"}


def test_a_mortgagor_alone_discharges_only_with_an_effective_court_document(sandbox: Running, bank: Bank) -> None:
    bare = settle(bank.client, lodge(bank, _unilateral("LN-ZX-1", None)).application_id)
    assert bare.status is S.NOT_ACCEPTED and bare.decision is not None
    assert bare.decision.code == "court_document_required"
    assert "生效法律文书" in bare.decision.reason and bare.decision.notice_number

    tomorrow = (china_today() + timedelta(days=1)).isoformat()
    early = settle(bank.client, lodge(bank, _unilateral("LN-ZX-2", {**JUDGMENT, "effective_date": tomorrow}))
                   .application_id)  # fmt: skip
    assert early.status is S.NOT_ACCEPTED and early.decision is not None
    assert early.decision.code == "court_document_not_effective"
    assert "尚未生效" in early.decision.reason and tomorrow in early.decision.reason

    today = china_today().isoformat()
    award = {"kind": "arbitration_award", "issuing_body": "合肥仲裁委员会", "document_number": "(2026)合仲字第88号"}
    done = settle(bank.client, lodge(bank, _unilateral("LN-ZX-3", {**award, "effective_date": today})).application_id)
    assert done.status is S.COMPLETED, done.decision
    assert done.application.court_document is not None  # type: ignore[union-attr]
    assert done.application.court_document.document_number == "(2026)合仲字第88号"  # type: ignore[union-attr]


def test_the_joint_and_the_mortgagees_discharge_need_no_court_document(sandbox: Running, bank: Bank) -> None:
    own = settle(bank.client, lodge(bank, f.application_dict("mortgage_discharge", "LN-ZX-B", complete=True))
                 .application_id)  # fmt: skip
    assert own.status is S.COMPLETED
    joint = f.application_dict("mortgage_discharge", "LN-ZX-J", n=25, complete=True)
    joint["mortgage_certificate"] = register.seed_mortgage_certificate(25)
    joint["applicant_side"] = "joint"
    joint["declaration"]["signatures"] = [
        *({"party": f"/mortgagors/{i}", "signature_id": f"sig-{i}", "signed_at": "2026-11-22T09:00:00+08:00"}
          for i in range(len(joint["mortgagors"]))),
        {"party": "/mortgagee/0", "signature_id": "seal", "signed_at": "2026-11-22T09:00:00+08:00"},
    ]  # fmt: skip
    joint["materials"] = f.complete_materials("mortgage_discharge", joint)
    form = next(m["id"] for m in joint["materials"] if m["code"] == "application_form")
    f.esign_materials(joint, document_id=form)  # the mortgagors sign the 申请书; the bank signs its request
    assert settle(bank.client, lodge(bank, joint).application_id).status is S.COMPLETED


def test_the_court_document_is_checked_as_data() -> None:
    adapter = TypeAdapter(Application)
    good = _unilateral("LN-ZX-M", {**JUDGMENT, "effective_date": "2026-10-01"})
    assert adapter.validate_python(good).court_document is not None  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="names no material of code court_document"):
        adapter.validate_python({**good, "court_document": {**good["court_document"], "material_id": "m1"}})
    with pytest.raises(ValidationError, match="仲裁委员会"):
        adapter.validate_python({**good, "court_document": {**good["court_document"], "kind": "arbitration_award"}})
    with pytest.raises(ValidationError, match="人民法院"):
        adapter.validate_python(
            {**good, "court_document": {**good["court_document"], "issuing_body": "合肥仲裁委员会"}}
        )


# --- 银行信息备案 (seed 001 §5.2) ----------------------------------------------------------------


def _new_bank(sandbox: Running, uscc: str, licence_no: str) -> sdk.Client:
    iid = sandbox.centre.create_institution(name="示例银行三", uscc=uscc, licence_no=licence_no, district="340121")
    sandbox.centre.create_operator(iid, "王经办", operator_id=f"op-{uscc[-4:]}")
    token = sandbox.centre.issue_enrolment_token(iid)
    key = generate_private_key(sandbox.centre.suite.default_algorithm)  # type: ignore[arg-type]
    with sdk.Client(sandbox.url) as anon:
        enrolled = anon.credentials.enroll(token, jwk_from_public_key(key.public_key()))
    return sdk.Client(sandbox.url, sdk.Credential(enrolled.key_id, key))


def test_applications_need_the_filing_once_and_never_its_documents(sandbox: Running) -> None:
    uscc = f.uscc()
    with _new_bank(sandbox, uscc, "B0009H234010009") as client:
        state = client.institution.get().filing_state
        assert state.status == "missing" and "营业执照" in (state.reason or "")
        data = f.application_dict("mortgage_first", "LN-BA-1", n=31, complete=True)
        data["mortgagee"] = {**data["mortgagee"], "id_number": uscc}
        data["declaration"]["operator_id"] = f"op-{uscc[-4:]}"
        app = TypeAdapter(Application).validate_python(data)
        assert not any(m.code in FILING_KINDS for m in app.materials)  # the application never carries them
        counters = sandbox.store.all("SELECT * FROM counters")
        with pytest.raises(sdk.FilingRequired, match="未办理银行信息备案"):
            client.applications.create(app, idempotency_key="ba-1")
        # a filing whose 营业执照 is another institution's is refused, naming the number
        with pytest.raises(sdk.ValidationFailed) as wrong:
            file_documents(client, f.BANK_USCC, "B0009H234010009")
        assert wrong.value.code == "filing_mismatch" and wrong.value.errors[0].pointer == "/documents/0/number"
        # declared but not uploaded: still missing
        filing, contents = f.filing(uscc, "B0009H234010009")
        client.institution.file(filing, idempotency_key="ba-filing")
        with pytest.raises(sdk.FilingRequired, match="尚未上传"):
            client.applications.create(app, idempotency_key="ba-2")
        for doc in filing.documents:
            profile = client.institution.upload_document(doc, contents[doc.id])
        assert profile.filing_state.status == "complete"
        assert {d.code for d in profile.filing} == set(FILING_KINDS)
        draft = client.applications.create(app, idempotency_key="ba-3")
        assert [tuple(r) for r in sandbox.store.all("SELECT * FROM counters")] == [tuple(r) for r in counters]
        # the licence expires (a renewal not filed): create and submit are refused with the reason
        yesterday = china_today() - timedelta(days=1)
        expired = file_documents(client, uscc, "B0009H234010009", valid_until=yesterday)
        assert expired.filing_state.status == "expired" and expired.filing_state.valid_until == yesterday
        for m in app.materials:
            client.applications.upload_material(draft.application_id, m, f.sample_content(m, "LN-BA-1"))
        with pytest.raises(sdk.FilingExpired, match="已过期") as late:
            client.applications.submit(draft.application_id, idempotency_key="ba-submit")
        assert "金融许可证" in late.value.args[0] and yesterday.isoformat() in late.value.args[0]
        # the renewed licence filed: the same draft goes through, with no document of the filing in it
        renewed = file_documents(client, uscc, "B0009H234010009", valid_until=china_today() + timedelta(days=365))
        assert renewed.filing_state.status == "complete"
        done = client.applications.submit(draft.application_id, idempotency_key="ba-submit-2")
        assert settle(client, done.application_id, "recorded").status is S.RECORDED


# --- the bank as 代理人 (seed 001; seed 004 申请人身份证明 = 委托书及代理人身份证件) --------------------------


def _represented(ref: str, n: int, agent_uscc: str = f.BANK_USCC) -> dict[str, Any]:
    data = f.application_dict("mortgage_first", ref, n=n, complete=True)
    poa = next(m for m in data["materials"] if m["code"] == "applicant_identity")
    data["representation"] = {
        "agent": {"institution_name": "中国示例银行股份有限公司合肥分行", "institution_uscc": agent_uscc,
                  "operator_id": "op-001", "name": "李经办", "id_number": f.resident_id(901, birth="19880808")},
        "power_of_attorney": {"material_id": poa["id"], "sha256": poa["sha256"]},
        "principals": [f"/mortgagors/{i}" for i in range(len(data["mortgagors"]))],
    }  # fmt: skip
    return data


def test_the_bank_as_agent_is_data_the_centre_checks(sandbox: Running, bank: Bank) -> None:
    done = settle(bank.client, lodge(bank, _represented("LN-DL-1", 61)).application_id, "recorded")
    assert done.status is S.RECORDED
    held = done.application.representation
    assert held is not None and held.agent.operator_id == "op-001" and held.principals == ["/mortgagors/0"]
    assert "李经办" not in repr(held) and "李*" in repr(held)  # the agent's name and 证件 masked in logs
    # an agent of another institution than the one submitting: 不予受理
    stranger = settle(bank.client, lodge(bank, _represented("LN-DL-2", 62, agent_uscc=f.uscc())).application_id)
    assert stranger.status is S.NOT_ACCEPTED and stranger.decision is not None
    assert stranger.decision.code == "agent_not_institution" and "不是提交申请的机构" in stranger.decision.reason
    adapter = TypeAdapter(Application)
    good = _represented("LN-DL-3", 63)
    # the 委托书 must be among the materials, with the digest the reference gives
    with pytest.raises(ValidationError, match="the 委托书 must be sent"):
        adapter.validate_python(
            {**good, "materials": [m for m in good["materials"] if m["code"] != "applicant_identity"]}
        )
    rep = good["representation"]
    bad = {**rep, "power_of_attorney": {**rep["power_of_attorney"], "sha256": "0" * 64}}
    with pytest.raises(ValidationError, match="the 委托书 must be sent"):
        adapter.validate_python({**good, "representation": bad})
    other = {**good["representation"], "agent": {**good["representation"]["agent"], "operator_id": "op-002"}}
    with pytest.raises(ValidationError, match="not the declaration's operator_id"):
        adapter.validate_python({**good, "representation": other})
    with pytest.raises(ValidationError, match="not applicants"):
        adapter.validate_python({**good, "representation": {**good["representation"], "principals": ["/mortgagee/0"]}})


# --- the applicant's choice of certificate delivery (seed 001 §3) ---------------------------------


def _s10_ok(number: str) -> bool:
    digits, check = number[2:10], int(number[10])
    total = sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    return {10: 0, 11: 5}.get(11 - total % 11, 11 - total % 11) == check and number.endswith("CN")


ADDRESS = {"recipient": "张伟", "phone": "13800000000", "address": "合肥市长丰县水湖镇示例路1号", "postcode": "231100"}


def test_the_delivery_chosen_is_recorded_and_honoured(sandbox: Running, bank: Bank) -> None:
    def finish(ref: str, n: int, delivery: dict[str, Any] | None) -> sdk.models.ApplicationRecord:
        data = f.application_dict("mortgage_first", ref, n=n, complete=True)
        if delivery is not None:
            data["delivery"] = delivery
        return pay_and_finish(bank, lodge(bank, data))

    posted = finish("LN-YJ-1", 81, {"method": "post", "address": ADDRESS})
    assert posted.status is S.COMPLETED and posted.certificate_ids  # the electronic certificate is issued too
    assert posted.application.delivery is not None and posted.application.delivery.method == "post"
    d = posted.dispatch
    assert d is not None and d.method == "post" and d.carrier == "EMS" and d.posted_at is not None
    assert d.tracking_number is not None and _s10_ok(d.tracking_number), d.tracking_number
    assert "运单号 " + d.tracking_number in d.describe()
    assert "张伟" not in repr(posted.application.delivery)  # the recipient is masked in logs
    again = finish("LN-YJ-2", 82, {"method": "post", "address": ADDRESS}).dispatch
    assert again is not None and again.tracking_number != d.tracking_number  # one number per mailing

    counter = finish("LN-ZQ-1", 83, {"method": "collection"}).dispatch
    assert counter is not None and counter.method == "collection" and "5号窗口" in (counter.office or "")
    assert counter.collect_from is not None and counter.collect_until is not None
    assert counter.collect_from.weekday() < 5 and counter.collect_from.hour == 9
    assert counter.collect_until - counter.collect_from == timedelta(days=30) and "窗口领取" in counter.describe()

    for delivery in (None, {"method": "electronic"}):
        plain = finish(f"LN-DZ-{'x' if delivery else 'n'}", 84 if delivery else 85, delivery).dispatch
        assert plain is not None and plain.method == "electronic" and plain.tracking_number is None

    with pytest.raises(ValidationError, match="needs an address"):
        TypeAdapter(Application).validate_python(
            {**f.application_dict("mortgage_first"), "delivery": {"method": "post"}}
        )
    with pytest.raises(ValidationError, match="goes with delivery by post"):
        TypeAdapter(Application).validate_python(
            {**f.application_dict("mortgage_first"), "delivery": {"method": "collection", "address": ADDRESS}}
        )
