"""The domain model: every business type parses from wire JSON and refuses what is wrong."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from sdk.codes import ApplicantSide, MortgageMethod, RegistrationType
from sdk.models import (
    APPLICATION_TYPES,
    FINAL_STATUSES,
    TRANSITIONS,
    Application,
    ApplicationStatus,
    MortgageDischarge,
    MortgageFirstRegistration,
    NaturalPerson,
    Organisation,
    PropertyQuery,
    PublicJwk,
    Supplement,
)
from tests import factories as f

APP = TypeAdapter(Application)


@pytest.mark.parametrize("kind", f.ALL_TYPES)
def test_every_business_type_round_trips_through_json(kind: str) -> None:
    data = f.application_dict(kind)
    app = APP.validate_python(data)
    assert type(app) is APPLICATION_TYPES[kind]
    assert app.type == kind
    again = APP.validate_json(APP.dump_json(app))
    assert again == app
    assert isinstance(app.registration_type, RegistrationType)
    assert app.business_name


def test_registration_types_follow_the_code_table() -> None:
    assert MortgageFirstRegistration.registration_type is RegistrationType.FIRST
    assert MortgageDischarge.registration_type.value == "400"
    assert APPLICATION_TYPES["mortgage_change"].registration_type.label == "变更登记"


def _errors(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as exc:
        APP.validate_python(data)
    return [dict(e) for e in exc.value.errors()]


def test_all_errors_come_at_once_with_their_location() -> None:
    data = f.application_dict("mortgage_first")
    data["properties"][0]["unit_id"] = "340121261006XB00014F00220045"
    data["mortgagors"][0]["id_number"] = "340104198001011230"
    data["terms"]["secured_amount"] = "12.345"
    errors = _errors(data)
    locations = {tuple(str(p) for p in e["loc"][1:]) for e in errors}
    assert ("properties", "0", "unit_id") in locations
    assert any(loc[:3] == ("mortgagors", "0", "person") for loc in locations)
    assert ("terms", "secured_amount") in locations
    text = json.dumps([e["msg"] for e in errors], ensure_ascii=False)
    assert "ownership" in text and "fractions of a fen" in text and "check character" in text


def test_general_mortgage_needs_a_secured_amount() -> None:
    data = f.application_dict("mortgage_first")
    del data["terms"]["secured_amount"]
    assert "secured_amount" in str(_errors(data))


def test_maximum_mortgage_needs_a_maximum_amount_and_owns_the_determination_period() -> None:
    data = f.application_dict("mortgage_first")
    data["terms"] = {**f.GENERAL_TERMS, "determination_start": "2026-01-01"}
    assert "最高额抵押" in str(_errors(data))
    data["terms"] = {**f.MAXIMUM_TERMS}
    app = APP.validate_python(data)
    assert app.terms.method is MortgageMethod.MAXIMUM  # type: ignore[union-attr]


def test_debt_period_must_be_ordered() -> None:
    data = f.application_dict("mortgage_first")
    data["terms"]["debt_end"] = "2020-01-01"
    assert "before start" in str(_errors(data))


def test_every_applicant_must_have_signed() -> None:
    data = f.application_dict("purchase_notice")
    data["declaration"]["signatures"] = data["declaration"]["signatures"][:1]
    assert "/sellers/0" in str(_errors(data))


def test_discharge_signers_depend_on_who_applies() -> None:
    data = f.application_dict("mortgage_discharge")
    app = APP.validate_python(data)
    assert app.applicant_pointers() == ["/mortgagee/0"]
    data["applicant_side"] = ApplicantSide.JOINT.value
    assert "/mortgagors/0" in str(_errors(data))


def test_commitment_is_required() -> None:
    data = f.application_dict("mortgage_first")
    data["declaration"]["commitment_accepted"] = False
    assert "承诺" in str(_errors(data))


def test_unknown_fields_are_refused_not_dropped() -> None:
    data = f.application_dict("mortgage_first")
    data["terms"]["secured_amont"] = "1.00"
    assert any(e["type"] == "extra_forbidden" for e in _errors(data))


def test_change_kinds_are_typed_and_distinct() -> None:
    data = f.application_dict("mortgage_change")
    app = APP.validate_python(data)
    assert [c.kind for c in app.changes] == ["secured_debt", "rank"]  # type: ignore[union-attr]
    dup = copy.deepcopy(data)
    dup["changes"].append({"kind": "rank", "new_rank": 3})
    assert "once" in str(_errors(dup))
    bad = copy.deepcopy(data)
    bad["changes"] = [{"kind": "colour", "new": "red"}]
    assert "union_tag_invalid" in str(_errors(bad))


def test_determination_goes_with_a_maximum_mortgage() -> None:
    data = f.application_dict("mortgage_first_with_determination")
    data["determined_amount"] = "9000000.00"
    assert "exceeds" in str(_errors(data))


def test_first_registration_needs_title_certificates() -> None:
    data = f.application_dict("mortgage_first")
    del data["properties"][0]["title_certificate"]
    assert "title_certificate" in str(_errors(data))


def test_duplicate_material_ids_are_refused() -> None:
    data = f.application_dict("mortgage_first")
    data["materials"].append(dict(data["materials"][0]))
    assert "repeated: m1" in str(_errors(data))


def test_party_repr_masks_personal_data() -> None:
    p = f.person("张三丰")
    text = repr(p) + str(p)
    assert f.resident_id(123) not in text and "张三丰" not in text
    assert "张**" in text and p.masked.startswith("张** (3401")


def test_party_id_types_fit_the_party() -> None:
    with pytest.raises(ValidationError, match="not for a person"):
        NaturalPerson(name="张三", id_type="8", id_number=f.BANK_USCC)
    with pytest.raises(ValidationError, match="not for an organisation"):
        Organisation(name="某公司", id_type="1", id_number=f.resident_id())
    passport = NaturalPerson(name="John Smith", id_type="3", id_number="E12345678")
    assert passport.id_number == "E12345678"


def test_status_model_is_consistent() -> None:
    assert ApplicationStatus.CORRECTION_REQUIRED.label == "补正"
    assert ApplicationStatus("not_accepted").label == "不予受理"
    for status in FINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset() and status.is_final
    assert set(TRANSITIONS) == set(ApplicationStatus)
    reachable = {ApplicationStatus.DRAFT}
    frontier = [ApplicationStatus.DRAFT]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(ApplicationStatus)


def test_property_query_needs_exactly_one_key() -> None:
    auth = {
        "reference": "SQ-1",
        "applicant": f.person().model_dump(mode="json"),
        "signed_at": "2026-03-05T10:00:00Z",
        "signature_id": "sig-9",
    }
    with pytest.raises(ValidationError, match="exactly one"):
        PropertyQuery.model_validate({"authorisation": auth, "operator_id": "op-1"})
    q = PropertyQuery.model_validate({"authorisation": auth, "operator_id": "op-1", "unit_id": f.unit().unit_id})
    assert q.purpose == "mortgage"


def test_supplement_needs_content() -> None:
    with pytest.raises(ValidationError, match="needs materials"):
        Supplement(note="nothing")
    assert Supplement(materials=[f.material()]).materials[0].id == "m1"


def test_jwk_shapes() -> None:
    with pytest.raises(ValidationError):
        PublicJwk(kty="EC", crv="P-256", x="abc")
    with pytest.raises(ValidationError):
        PublicJwk(kty="OKP", crv="P-256", x="abc")


def test_period_changes_must_be_ordered() -> None:
    from sdk.models import DebtPeriodChange, DeterminationPeriodChange

    with pytest.raises(ValidationError, match="债务履行期限: end"):
        DebtPeriodChange(new_start="2026-01-02", new_end="2026-01-01")
    with pytest.raises(ValidationError, match="债权确定期间: end"):
        DeterminationPeriodChange(new_start="2026-01-02", new_end="2026-01-01")
    assert DebtPeriodChange(new_start="2026-01-01", new_end="2027-01-01").kind == "debt_period"


def test_fee_notice_and_refund_shapes() -> None:
    """seed 001 §3: a notice carries its refunds; a refunded payment names why (docs/api.md §8)."""
    from sdk.models import FeeNotice, PaymentReceipt

    refund = {
        "refund_id": "rf_1", "payment_id": "pay_2", "application_id": "app_1", "amount": "80.00",
        "reason": "duplicate_payment", "refund_number": "R1", "refunded_at": "2026-11-30T10:00:00+08:00",
    }  # fmt: skip
    notice = FeeNotice.model_validate(
        {"application_id": "app_1", "items": [], "total": "80.00", "status": "paid",
         "assessed_at": "2026-11-30T09:00:00+08:00", "payment_id": "pay_1", "refunds": [refund]}
    )  # fmt: skip
    assert notice.refunds[0].reason == "duplicate_payment" and str(notice.refunds[0].amount) == "80.00"
    receipt = PaymentReceipt.model_validate(
        {"payment_id": "pay_2", "application_id": "app_1", "amount": "80.00", "method": "bank_transfer",
         "paid_at": "2026-11-30T10:00:00+08:00", "receipt_number": "X", "status": "refunded", "refund": refund}
    )  # fmt: skip
    assert receipt.status == "refunded" and receipt.refund is not None
    with pytest.raises(ValueError):
        FeeNotice.model_validate({**notice.model_dump(mode="json"), "status": "owed"})
    with pytest.raises(ValueError):
        PaymentReceipt.model_validate({**receipt.model_dump(mode="json"), "refund": {**refund, "reason": "goodwill"}})


def test_voided_is_final_and_only_after_recording() -> None:
    from sdk.models import TRANSITIONS, UNSUCCESSFUL_STATUSES
    from sdk.models import ApplicationStatus as S

    assert S.VOIDED.is_final and S.VOIDED.label == "撤销" and S.VOIDED in UNSUCCESSFUL_STATUSES
    assert [s for s, nxt in TRANSITIONS.items() if S.VOIDED in nxt] == [S.RECORDED]
    assert S.COMPLETED not in UNSUCCESSFUL_STATUSES


def test_operator_and_fee_error_codes_map_to_their_exceptions() -> None:
    import sdk

    problem = {"type": "t", "title": "t", "status": 403, "code": "operator_not_authorised"}
    err = sdk.errors.error_from_response(403, problem)
    assert isinstance(err, sdk.OperatorNotAuthorised) and isinstance(err, sdk.PermissionDenied)
    err = sdk.errors.error_from_response(409, {"type": "t", "title": "t", "status": 409, "code": "fee_not_due"})
    assert isinstance(err, sdk.FeeNotDue) and not err.retryable
