from __future__ import annotations

from pathlib import Path

import pytest

from agent.mapping import load_profile, map_records, normalise_name, parse_amount, parse_date
from connectors.readers import SourceRecord
from sdk.identifiers import normalise_code


@pytest.mark.parametrize(
    "text", ["2026-03-05", "2026/3/5", "2026年3月5日", "2026.03.05", "20260305", "２０２６-０３-０５"]
)
def test_dates_in_the_forms_loan_systems_write(text: str) -> None:
    assert parse_date(text, ["%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d", "%Y%m%d"]) == "2026-03-05"


def test_impossible_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="a date such as"):
        parse_date("2026-13-45", ["%Y-%m-%d"])


@pytest.mark.parametrize(
    ("text", "unit", "yuan"),
    [
        ("1,234.56", "元", "1234.56"),
        ("１２３４．５", "元", "1234.50"),
        ("150", "万元", "1500000.00"),
        ("98.5万元", "元", "985000.00"),
        ("1，500，000元", "万元", "1500000.00"),
        ("0.0001", "万元", "1.00"),
    ],
)
def test_amounts_are_exact_in_yuan_from_any_unit_and_separator(text: str, unit: str, yuan: str) -> None:
    assert parse_amount(text, unit) == yuan


@pytest.mark.parametrize("text", ["一百万", "1.234", "-5", "0.0000001万元", "NaN"])
def test_amounts_that_are_not_exact_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(text, "元")


def test_names_and_ids_are_normalised() -> None:
    assert normalise_name(" 合肥示例置业有限公司(长丰分公司) ") == "合肥示例置业有限公司（长丰分公司）"
    assert normalise_name("王 伟") == "王伟" and normalise_name("ＪＯＨＮ  SMITH") == "JOHN SMITH"
    assert normalise_code("９１３４０１００７８１０８１１９９ｋ（1-1）") == "91340100781081199K"
    assert normalise_code("340121 19800101 123x") == "34012119800101123X"


def _records(*rows: dict[str, str]) -> list[SourceRecord]:
    return [SourceRecord(i + 2, r) for i, r in enumerate(rows)]


def test_co_owner_rows_group_into_one_application_and_disagreements_are_errors() -> None:
    profile = load_profile("corebank_csv")
    base = {
        "贷款编号": "LN-1",
        "业务类型": "抵押首次",
        "不动产单元号": "340121261006GB00014F00010007",
        "坐落": "x",
        "不动产权证书号": "",
        "抵押方式": "一般",
        "贷款金额(万元)": "10",
        "最高债权额(万元)": "",
        "起始日期": "2026/3/5",
        "到期日期": "2036/3/4",
        "担保范围": "",
        "主合同编号": "HT",
        "原证明号": "",
        "变更原因": "",
        "经办人": "op-1",
        "电子签名": "E1",
        "签署日期": "2026-03-05",
    }
    [app] = map_records(
        _records({**base, "抵押人": "甲", "证件号码": "1"}, {**base, "抵押人": "乙", "证件号码": "2"}), profile, "f.csv"
    )
    assert app.type == "mortgage_first" and app.reference == "LN-1-DYSC" and app.rows == [2, 3]
    assert [m["name"] for m in app.data["mortgagors"]] == ["甲", "乙"]
    assert app.data["terms"]["secured_amount"] == "100000.00" and app.signature_ids == ["E1", "E1"]
    [bad] = map_records(
        _records(
            {**base, "抵押人": "甲", "证件号码": "1"}, {**base, "抵押人": "乙", "证件号码": "2", "贷款金额(万元)": "11"}
        ),
        profile,
        "f.csv",
    )
    assert [(e.row, e.field) for e in bad.errors] == [(3, "贷款金额(万元)")]
    assert "rows of one application must agree" in bad.errors[0].expected


def test_every_error_of_a_row_is_reported_with_file_row_field_value_and_expectation() -> None:
    profile = load_profile("corebank_csv")
    row = {
        "贷款编号": "LN 2",
        "业务类型": "抵押重组",
        "不动产单元号": "X",
        "坐落": "x",
        "不动产权证书号": "",
        "抵押人": "张三",
        "证件号码": "340121198001011234",
        "抵押方式": "一般",
        "贷款金额(万元)": "abc",
        "最高债权额(万元)": "",
        "起始日期": "2026-02-30",
        "到期日期": "",
        "担保范围": "",
        "主合同编号": "",
        "原证明号": "",
        "变更原因": "",
        "经办人": "",
        "电子签名": "",
        "签署日期": "",
    }
    [app] = map_records(_records(row), profile, "export.csv")
    fields = {e.field for e in app.errors}
    assert fields == {"贷款编号", "业务类型", "经办人"}  # the type is unknown, so its fields are not mapped yet
    assert all(e.file == "export.csv" and e.row == 2 for e in app.errors)
    assert "抵押首次" in next(e.expected for e in app.errors if e.field == "业务类型")


def test_value_maps_combine_rules_and_constants(tmp_path: Path) -> None:
    profile = load_profile("presale_xlsx")
    common = {
        "借据号": "P-1",
        "单元号": "340121261006GB00014F00130003",
        "房屋坐落": "x",
        "借款人": "钱多多",
        "借款人证件号": "1",
        "开发商": "D",
        "开发商信用代码": "2",
        "备案合同号": "YS",
        "成交价(元)": "2,000,000.00",
        "贷款金额(元)": "1,500,000.00",
        "放款日": "2026年3月5日",
        "到期日": "2046年3月4日",
        "借款合同号": "JK",
        "客户经理": "op-2",
        "签名编号": "S",
        "签约日期": "2026年3月5日",
    }
    [app] = map_records(
        _records({**common, "登记事项": "预告登记"}, {**common, "登记事项": "抵押权预告登记"}), profile, "p.xlsx"
    )
    assert app.type == "purchase_and_mortgage_notice" and not app.errors
    assert app.data["terms"] == {
        "method": "1",
        "secured_amount": "1500000.00",
        "debt_start": "2026-03-05",
        "debt_end": "2046-03-04",
    }
    assert app.data["price"] == "2000000.00" and app.operator == "op-2"


def test_a_broken_profile_is_refused_with_its_problem(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "x"\nfields = []\n[source]\nformat = "csv"\n[identity]\nloan_no = "a"\n[type]\n'
        'constant = "mortgage_zzz"\n',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="unknown application type 'mortgage_zzz'"):
        load_profile(path)
    with pytest.raises(FileNotFoundError):
        load_profile("no_such_profile")


def test_a_field_routed_by_another_columns_value(tmp_path: Path) -> None:
    """One amount column is 被担保主债权数额 for 一般抵押 and 最高债权额 for 最高额抵押 (route_by / routes)."""
    text = (Path(__file__).resolve().parents[3] / "config" / "mappings" / "corebank_csv.toml").read_text("utf-8")
    routed = text.replace(
        '[[fields]]\ntarget = "terms.secured_amount"\ncolumn = "贷款金额(万元)"',
        '[[fields]]\ncolumn = "贷款金额(万元)"\nroute_by = "抵押方式"\nroutes = { "一般" = "terms.secured_amount", '
        '"最高额" = "terms.maximum_amount" }',
        1,
    ).replace('[[fields]]\ntarget = "terms.maximum_amount"\ncolumn = "最高债权额(万元)"', '[[fields]]\ntarget = "x"', 1)
    leftover = '[[fields]]\ntarget = "x"\nkind = "amount"\nunit = "万元"\ntypes = ["mortgage_first"]\n'
    routed = routed.replace(leftover, "")
    path = tmp_path / "routed.toml"
    path.write_text(routed, encoding="utf-8")
    profile = load_profile(path)
    base = {
        "贷款编号": "LN-R",
        "业务类型": "抵押首次",
        "不动产单元号": "340121261006GB00014F00010007",
        "坐落": "x",
        "抵押人": "甲",
        "证件号码": "1",
        "贷款金额(万元)": "150",
        "起始日期": "2026/3/5",
        "到期日期": "2036/3/4",
        "主合同编号": "HT",
        "经办人": "op-1",
        "电子签名": "E1",
    }
    [general] = map_records(_records({**base, "抵押方式": "一般"}), profile, "f.csv")
    assert general.data["terms"] == {**general.data["terms"], "method": "1", "secured_amount": "1500000.00"}
    assert "maximum_amount" not in general.data["terms"]
    [maximum] = map_records(_records({**base, "抵押方式": "最高额"}), profile, "f.csv")
    assert maximum.data["terms"]["maximum_amount"] == "1500000.00" and "secured_amount" not in maximum.data["terms"]
    [unknown] = map_records(_records({**base, "抵押方式": "其他"}), profile, "f.csv")
    assert ("抵押方式", "其他") in [(e.field, e.value) for e in unknown.errors]
    bad = path.with_name("bad.toml")
    bad.write_text(routed.replace('"最高额" = "terms.maximum_amount"', '"最高额" = "terms.maximun_amount"'), "utf-8")
    with pytest.raises(ValueError, match=r"bad\.toml:\d+: fields\[\d+\]: unknown target 'terms\.maximun_amount'"):
        load_profile(bad)
