from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

from openpyxl import Workbook

from connectors.readers import read_export


def test_csv_in_utf8_utf8_bom_and_gb18030_with_quoted_commas_and_newlines() -> None:
    text = '贷款编号,坐落\r\nLN-1,"合肥市, 长丰县\n双凤大道88号"\r\nLN-2,示例花园\r\n'
    for encoding, data in (
        ("utf-8", text.encode()),
        ("utf-8-sig", text.encode("utf-8-sig")),
        ("gb18030", text.encode("gb18030")),
    ):
        result = read_export(Path("x.csv"), {"format": "csv", "encoding": ["utf-8-sig", "gb18030"]}, data)
        assert result.file_error is None, encoding
        assert [r.values["贷款编号"] for r in result.records] == ["LN-1", "LN-2"]
        assert result.records[0].values["坐落"] == "合肥市, 长丰县\n双凤大道88号"
        assert [r.row for r in result.records] == [2, 4]  # the row a spreadsheet shows (header = 1)


def test_csv_in_the_wrong_encoding_names_the_byte_and_line() -> None:
    data = "a,b\n1,2\n3,张三\n".encode("gb18030")
    result = read_export(Path("x.csv"), {"format": "csv", "encoding": "utf-8"}, data)
    assert result.records == [] and "line 3" in (result.file_error or "") and "utf-8" in (result.file_error or "")


def test_csv_bad_records_are_reported_and_the_others_go_on() -> None:
    data = b"a,b\n1,2\n3\n4,5\n"
    result = read_export(Path("x.csv"), {"format": "csv"}, data)
    assert [r.values["a"] for r in result.records] == ["1", "4"]
    assert [(e.row, "1 fields" in e.message) for e in result.errors] == [(3, True)]
    assert read_export(Path("x.csv"), {"format": "csv"}, b"a,a\n1,2\n").file_error == "the header repeats column(s): a"
    assert "empty" in (read_export(Path("x.csv"), {"format": "csv"}, b"").file_error or "")


def test_xlsx_dates_numbers_and_sheets() -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "台账"
    ws.append(["借据号", "放款日", "金额", "期数"])
    ws.append(["P-1", date(2026, 3, 5), 1234567.5, 240])
    ws.append([None, None, None, None])
    ws.append(["P-2", datetime(2026, 3, 5, 10, 30), 0.1, 12])
    buf = io.BytesIO()
    wb.save(buf)
    result = read_export(Path("x.xlsx"), {"format": "xlsx", "sheet": "台账"}, buf.getvalue())
    assert [r.values for r in result.records] == [
        {"借据号": "P-1", "放款日": "2026-03-05", "金额": "1234567.5", "期数": "240"},
        {"借据号": "P-2", "放款日": "2026-03-05T10:30:00", "金额": "0.1", "期数": "12"},
    ]
    assert [r.row for r in result.records] == [2, 4]
    assert "no sheet '别的'" in (
        read_export(Path("x.xlsx"), {"format": "xlsx", "sheet": "别的"}, buf.getvalue()).file_error or ""
    )
    assert "not a readable XLSX" in (
        read_export(Path("x.xlsx"), {"format": "xlsx"}, b"PK\x03\x04junk").file_error or ""
    )


def test_json_jsonl_and_xml_flatten_nested_records() -> None:
    data = b'{"loans": [{"id": "J-1", "amount": 12.50, "borrowers": [{"name": "A"}, {"name": "B"}]}, 7]}'
    result = read_export(Path("x.json"), {"format": "json", "records": "loans"}, data)
    assert result.records[0].values == {
        "id": "J-1",
        "amount": "12.50",
        "borrowers.0.name": "A",
        "borrowers.1.name": "B",
    }
    assert result.errors[0].row == 2 and "object" in result.errors[0].message
    lines = read_export(Path("x.jsonl"), {"format": "jsonl"}, b'{"id": 1}\n\n{broken\n{"id": 3}\n')
    assert [r.values["id"] for r in lines.records] == ["1", "3"] and lines.errors[0].row == 3
    xml = (
        "<贷款清单><贷款 编号='X-1'><借款人><姓名>甲</姓名></借款人><借款人><姓名>乙</姓名></借款人>"
        "<金额>10</金额></贷款></贷款清单>"
    )
    result = read_export(Path("x.xml"), {"format": "xml", "records": "./贷款"}, xml.encode())
    assert result.records[0].values == {"@编号": "X-1", "借款人[0]/姓名": "甲", "借款人[1]/姓名": "乙", "金额": "10"}
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    assert "DOCTYPE" in (read_export(Path("x.xml"), {"format": "xml"}, bomb).file_error or "")


def test_fixed_width_is_measured_in_gb18030_bytes() -> None:
    fields = [
        {"name": "no", "start": 0, "width": 6},
        {"name": "name", "start": 6, "width": 6},
        {"name": "amt", "start": 12, "width": 4},
    ]
    good = b"L-1   " + "张三".encode("gb18030") + b"  " + b"  10"
    cut = b"L-2   AAA" + "张三".encode("gb18030") + b"  20"  # 三 straddles the name field's end
    short = b"L-3"
    result = read_export(
        Path("x.dat"), {"format": "fixed", "fields": fields}, b"\r\n".join([good, cut, short]) + b"\r\n"
    )
    assert [r.values for r in result.records] == [{"no": "L-1", "name": "张三", "amt": "10"}]
    assert [e.row for e in result.errors] == [2, 3]
    assert "cut by the field boundary" in result.errors[0].message and "3 bytes long" in result.errors[1].message
