"""A dialect's field dictionary (config/dialects/province.toml, issue 21 item 1): TD/T 1066 names, code
tables and 万元 amounts to and from the SDK's models, exactly, for every business type."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from config import load_dialect, load_districts
from sdk.dialects.fields import FieldDictionary
from sdk.models import APPLICATION_TYPES, MortgageFirstRegistration
from tests import factories as f

PROVINCE = load_dialect("province")


@pytest.mark.parametrize("kind", sorted(APPLICATION_TYPES))
def test_every_business_type_goes_out_in_td_t_1066_names_and_comes_back_exactly(kind: str) -> None:
    application = f.application(kind, "LN-DIALECT-1")
    message = PROVINCE.application_to_dialect(application)
    assert message["YWLX"] == PROVINCE.to_dialect_code("YWLX", kind) and "type" not in message
    assert message["DJLX"] == type(application).registration_type.value
    assert message["BDCDY"][0]["BDCDYH"] == application.properties[0].unit_id
    assert "properties" not in message and "unit_id" not in str(message)
    assert PROVINCE.application_from_dialect(message) == application


def test_amounts_travel_in_wan_yuan_exact_and_dates_and_codes_by_their_names() -> None:
    application = f.application("mortgage_first", "LN-DIALECT-2")
    message = PROVINCE.application_to_dialect(application)
    terms = message["DYQ"]
    assert isinstance(application, MortgageFirstRegistration)
    assert application.terms.secured_amount == Decimal("1500000.00")
    assert terms["BDBZZQSE"] == "150" and isinstance(terms["BDBZZQSE"], str)
    assert terms["DYFS"] == "1" and terms["ZWLXQSSJ"] == "2026-03-05" and terms["ZWLXJSSJ"] == "2046-03-04"
    assert message["DYQR"]["ZJZL"] == "8" and message["DYR"][0]["ZJH"]
    # a fen in 万元 is 0.000001: exact both ways
    terms["BDBZZQSE"] = "150.000001"
    back = PROVINCE.application_from_dialect(message)
    assert isinstance(back, MortgageFirstRegistration) and back.terms.secured_amount == Decimal("1500000.01")



def test_a_purchase_notice_goes_in_the_names_of_td_t_1066_预告登记() -> None:
    message = PROVINCE.application_to_dialect(f.application("purchase_notice", "LN-DIALECT-YG"))
    assert message["YGDJZL"] == "1"  # 预售商品房买卖预告登记
    assert message["QDJG"] == "200" and message["QLR"][0]["ZJH"] and message["YWR"][0]["ZJZL"] == "8"  # 取得价格 万元
    assert not {"buyers", "sellers", "price", "notice_kind"} & set(message)

def test_change_discharge_notice_and_determination_members_go_in_dialect_names() -> None:
    """plat6: sale_contract_number, changes, reason and determination_fact went under the SDK's names. `reason` is
    named by business type (变更原因 BGYY, 注销抵押原因 ZXDYYY); a 补正 item's reason in a record keeps its name."""
    from sdk.models import ApplicationRecord

    named = {"mortgage_change": {"BGNR", "BGYY"}, "mortgage_discharge": {"ZXDYYY"}, "purchase_notice": {"MMHTBH"},
             "purchase_and_mortgage_notice": {"MMHTBH"}, "maximum_determination": {"ZGZQQDSS"},
             "mortgage_first_with_determination": {"ZGZQQDSS"}}  # fmt: skip
    for kind, names in named.items():
        application = f.application(kind, f"LN-NAMES-{kind}")
        message = PROVINCE.application_to_dialect(application)
        assert names <= set(message), kind
        assert not {"sale_contract_number", "changes", "reason", "determination_fact"} & set(message), kind
    change = f.application("mortgage_change", "LN-NAMES-CH")
    now = "2026-03-05T08:00:00+00:00"
    record = ApplicationRecord.model_validate({
        "application_id": "app_1", "client_reference": "LN-NAMES-CH", "type": "mortgage_change",
        "status": "correction_required", "created_at": now, "updated_at": now,
        "application": change.model_dump(mode="json", exclude_none=True),
        "correction": {"requested_at": now, "deadline": now, "items": [{"code": "field", "reason": "证明号不符"}]},
    })  # fmt: skip
    answered = PROVINCE.record_to_dialect(record)
    assert "BGYY" in answered["application"] and "reason" not in answered["application"]
    assert answered["correction"]["items"][0]["reason"] == "证明号不符"  # not 变更原因
    assert PROVINCE.record_from_dialect(answered) == record


@pytest.mark.parametrize(
    ("member", "value", "says"),
    [
        ("BDBZZQSE", "150.0000001", "BDBZZQSE"),  # below the fen
        ("BDBZZQSE", 150.5, "not float"),  # a float cannot say an amount exactly
        ("DYFS", "7", "DYFS code '7'"),
    ],
)
def test_a_bad_amount_or_code_is_refused_naming_the_field(member: str, value: Any, says: str) -> None:
    message = PROVINCE.application_to_dialect(f.application("mortgage_first", "LN-DIALECT-3"))
    message["DYQ"][member] = value
    with pytest.raises(ValueError, match=says):
        PROVINCE.application_from_dialect(message)


def test_a_registration_type_that_is_not_the_business_types_is_refused() -> None:
    message = PROVINCE.application_to_dialect(f.application("mortgage_first", "LN-DIALECT-4"))
    message["DJLX"] = "400"
    with pytest.raises(ValueError, match="DJLX '400'"):
        PROVINCE.application_from_dialect(message)
    del message["YWLX"]
    with pytest.raises(ValueError, match="YWLX"):
        PROVINCE.application_from_dialect(message)


def test_status_and_notice_tables_cover_the_sdk() -> None:
    from sdk.models import ApplicationStatus

    assert {PROVINCE.to_sdk_code("YWZT", c) for c in PROVINCE.codes["YWZT"]} == {s.value for s in ApplicationStatus}
    assert set(PROVINCE.codes["TZLX"].values()) == {"seizure", "seizure_release", "objection", "ownership_change"}
    assert PROVINCE.codes["QSZT"]["1"] == "current"
    assert load_districts("province") == {"340121": "长丰县不动产登记中心", "340123": "肥西县不动产登记中心"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[dialect]\nname="x"\n[fields]\nunit_id="BDCDYH"\nlocation="BDCDYH"\n', "BDCDYH to two SDK members"),
        ('[dialect]\nname="x"\n[fields]\nunit_id="location"\n', "location are SDK members left unmapped"),
        ('[dialect]\nname="x"\n[fields]\nsecured_amount={name="A", unit="元"}\n', "unit '元'"),
        ('[dialect]\nname="x"\n[fields]\n"terms.method"={name="DYFS", codes="DYFS"}\n', "table 'DYFS' is not defined"),
        ('[dialect]\nname="x"\n[codes.T]\n"1"="a"\n"2"="a"\n', r"\[codes.T\] maps two dialect codes"),
        ("[dialect\n", "not TOML"),
    ],
)
def test_a_wrong_dialect_file_is_refused_naming_the_entry(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        FieldDictionary.from_toml(text, source="config/dialects/x.toml")
    assert "config/dialects/x.toml" in str(caught.value)


def test_an_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="no dialect 'atlantis'"):
        load_dialect("atlantis")
