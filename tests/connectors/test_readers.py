from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest
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
        # the row a spreadsheet shows (header = 1; a quoted line break does not start a row), and the physical line
        assert [(r.row, r.line) for r in result.records] == [(2, 2), (3, 4)]


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
    assert ws is not None
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


# --- issue 16: readers that read what a person sees -------------------------------------------------------

CSV_TEXT = "贷款编号,抵押人\r\nLN-1,𠮷䶮\r\n"


@pytest.mark.parametrize(
    ("codec", "declared", "recorded"),
    [
        ("utf-8-sig", "utf-8", "utf-8 (BOM)"),
        ("utf-16", "utf-16", None),
        ("utf-16-le", "utf-16", "utf-16-le (BOM)"),
        ("utf-16-be", "utf-16", "utf-16-be (BOM)"),
        ("utf-32-le", "utf-32", "utf-32-le (BOM)"),
        ("utf-32-be", "utf-32", "utf-32-be (BOM)"),
        ("gb18030", "gb18030", "gb18030 (BOM)"),
        ("gb18030", "gbk", "gb18030 (BOM)"),
    ],
)
def test_every_byte_order_mark_is_recognised_and_removed(codec: str, declared: str, recorded: str | None) -> None:
    body = CSV_TEXT.encode(codec.replace("-sig", ""))
    marks = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff", "utf-32-le": b"\xff\xfe\x00\x00"}
    marks |= {"utf-32-be": b"\x00\x00\xfe\xff", "gb18030": b"\x84\x31\x95\x33", "utf-8-sig": b"\xef\xbb\xbf"}
    data = body if codec == "utf-16" else marks[codec] + body  # Python's utf-16 writes its own mark
    result = read_export(Path("x.csv"), {"format": "csv", "encoding": declared}, data)
    assert result.file_error is None, result.file_error
    assert [r.values for r in result.records] == [{"贷款编号": "LN-1", "抵押人": "𠮷䶮"}]
    assert result.encoding == (recorded or "utf-16-le (BOM)")


@pytest.mark.parametrize(
    ("data", "declared", "evident"),
    [
        (b"\xef\xbb\xbf" + CSV_TEXT.encode(), "gb18030", "UTF-8"),
        (CSV_TEXT.encode("utf-8"), "gb18030", None),  # UTF-8 bytes can be valid GB18030; nothing to say then
        (CSV_TEXT.encode("gb18030"), "utf-8", "GB18030"),
        (b"\xff\xfe" + CSV_TEXT.encode("utf-16-le"), "gb18030", "UTF-16"),
        (CSV_TEXT.encode("utf-16-le"), "utf-8", "UTF-16LE"),
        (b"\x84\x31\x95\x33" + CSV_TEXT.encode("gb18030"), "utf-8", "GB18030"),
    ],
)
def test_a_file_not_in_the_declared_encoding_is_refused_naming_the_one_it_is_in(
    data: bytes, declared: str, evident: str | None
) -> None:
    result = read_export(Path("x.csv"), {"format": "csv", "encoding": declared}, data)
    if evident is None:
        return
    assert result.records == [] and result.file_error
    assert f"显然是 {evident}" in result.file_error and declared in result.file_error


def test_gb18030_beyond_gbk_passes_and_edition_dependent_and_private_use_characters_are_flagged() -> None:
    text = "贷款编号,抵押人,坐落\r\nLN-1,𠮷䶮,甲\r\nLN-2,王\ue000,乙\r\nLN-3,李四,︐号\r\n"
    result = read_export(Path("x.csv"), {"format": "csv", "encoding": "gb18030"}, text.encode("gb18030"))
    assert [r.values["抵押人"] for r in result.records] == ["𠮷䶮", "王\ue000", "李四"]
    assert [[c for c, _ in r.problems] for r in result.records] == [[], ["抵押人"], ["坐落"]]
    assert "私用区" in result.records[1].problems[0][1] and "2022" in result.records[2].problems[0][1]
    # bytes A6 D9: a private-use character under GB 18030-2005, U+FE10 under -2022
    raw = "贷款编号,坐落\r\nLN-1,".encode("gb18030") + b"\xa6\xd9\r\n"
    [record] = read_export(Path("x.csv"), {"format": "csv", "encoding": "gb18030"}, raw).records
    assert record.problems and record.problems[0][0] == "坐落"


def test_nul_padding_in_fixed_width_fields_is_padding() -> None:
    fields = [{"name": "A", "start": 0, "width": 6}, {"name": "B", "start": 6, "width": 6}]
    data = b"AB\x00\x00\x00\x00\xb2\xe2\x00\x00\x00\x00\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\r\n"
    result = read_export(Path("x.dat"), {"format": "fixed", "encoding": "gb18030", "fields": fields}, data)
    assert [r.values for r in result.records] == [{"A": "AB", "B": "测"}] and result.errors == []


def test_keep_as_text_spellings_are_unwrapped() -> None:
    data = "证件号码,单元号,姓名\r\n=\"340121199007030306\",'340121261006GB00014F00010001,'张三\r\n".encode()
    [record] = read_export(Path("x.csv"), {"format": "csv"}, data).records
    assert record.values == {
        "证件号码": "340121199007030306",
        "单元号": "340121261006GB00014F00010001",
        "姓名": "'张三",
    }


def _workbook(rows: list[list[object]], *, dimension: str | None = None, east_asian_dates: bool = False) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "S"
    for row in rows:
        ws.append(row)
    for cell in ws["B"][1:]:
        if isinstance(cell.value, int):
            cell.number_format = "yyyy-mm-dd"
    buf = io.BytesIO()
    wb.save(buf)
    if dimension is None and not east_asian_dates:
        return buf.getvalue()
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            part = src.read(info)
            if dimension and info.filename == "xl/worksheets/sheet1.xml":
                part = re.sub(rb'<dimension ref="[^"]*"/>', f'<dimension ref="{dimension}"/>'.encode(), part)
            if east_asian_dates and info.filename == "xl/styles.xml":
                # an East Asian built-in date format (numFmtId 31: yyyy"年"m"月"d"日"), not written out in the file
                part = re.sub(rb"<numFmts.*?</numFmts>", b"", part, flags=re.S).replace(
                    b'numFmtId="164"', b'numFmtId="31"'
                )
            dst.writestr(info, part)
    return out.getvalue()


def test_xlsx_ignores_the_declared_dimension_and_marks_numeric_cells() -> None:
    rows: list[list[object]] = [["借据号", "放款日", "证件号"], ["P-1", 46086, 340121199007030306], ["P-2", 46087, "x"]]
    for data, east_asian in ((_workbook(rows, dimension="A1"), False), (_workbook(rows, east_asian_dates=True), True)):
        result = read_export(Path("x.xlsx"), {"format": "xlsx"}, data)
        assert [r.values["借据号"] for r in result.records] == ["P-1", "P-2"]
        first = result.records[0]
        assert first.numbers["证件号"] == "", "an ID number stored as a number is marked (it is no date either)"
        assert "证件号" not in result.records[1].numbers
        if east_asian:  # openpyxl does not know built-in format 31 is a date: the serial comes as a number
            assert first.values["放款日"] == "46086" and first.numbers["放款日"] == "2026-03-05"
        else:
            assert first.values["放款日"] == "2026-03-05"


BILLION_LAUGHS = (
    '<?xml version="1.0" encoding="{enc}"?>\n<!DOCTYPE r [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>\n<r><x>&j;</x></r>"
)


@pytest.mark.parametrize("enc", ["utf-8", "utf-16", "gb18030"])
def test_an_xml_entity_bomb_is_refused_in_any_encoding(enc: str) -> None:
    data = BILLION_LAUGHS.format(enc=enc).encode(enc)
    result = read_export(Path("x.xml"), {"format": "xml", "records": "./x"}, data)
    assert result.records == [] and "DOCTYPE" in (result.file_error or "")


def _bombs(folder: Path) -> list[tuple[Path, str]]:
    """Bombs written to files: a workbook whose sheet unpacks to 1 GB of spaces (about 1 MB packed), one whose
    shared strings pack 1000:1, one with an entity bomb in UTF-16 as a part, and a UTF-16 XML entity bomb."""
    good = _workbook([["a"], ["b"]])
    src = zipfile.ZipFile(io.BytesIO(good))
    out: list[tuple[Path, str]] = []
    for size, part in ((1 << 30, "xl/worksheets/sheet1.xml"), (40 << 20, "xl/sharedStrings.xml")):
        path = folder / f"bomb-{size}.xlsx"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if info.filename != part:
                    dst.writestr(info.filename, src.read(info.filename))
            entry = zipfile.ZipInfo(part)
            entry.compress_type = zipfile.ZIP_DEFLATED
            with dst.open(entry, "w", force_zip64=True) as sink:
                chunk = b" " * (1 << 20)
                for _ in range(size >> 20):
                    sink.write(chunk)
        out.append((path, "xlsx"))
    path = folder / "entities.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/workbook.xml":
                data = BILLION_LAUGHS.format(enc="utf-16").encode("utf-16")
            dst.writestr(info.filename, data)
    out.append((path, "xlsx"))
    path = folder / "entities.xml"
    path.write_bytes(BILLION_LAUGHS.format(enc="utf-16").encode("utf-16"))
    out.append((path, "xml"))
    return out


BOMB_SCRIPT = r"""
import sys
from pathlib import Path
from connectors.readers import read_export

for arg in sys.argv[1:]:
    path, fmt = arg.rsplit(":", 1)
    print(read_export(Path(path), {"format": fmt}).file_error)
# VmHWM is this process's own peak: ru_maxrss would also count the parent's resident set, which the
# kernel carries over at fork/exec (a pytest worker of 300 MB made this test fail for no fault of the reader)
print(next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
           if line.startswith("VmHWM:")) // 1024)
"""


def test_bombs_are_quarantined_within_a_fixed_memory_budget(tmp_path: Path) -> None:
    """A decompression bomb and entity bombs (UTF-16 too) are refused by a reader process that stays under
    256 MB resident (its own peak, measured by the kernel: VmHWM)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    args = [f"{path}:{fmt}" for path, fmt in _bombs(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT, *args], capture_output=True, text=True, cwd=root, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    *outcomes, peak = done.stdout.splitlines()
    assert int(peak) < 256, f"peak resident memory {peak} MB"
    assert len(outcomes) == 4 and all(o and o != "None" for o in outcomes), outcomes
    assert "压缩炸弹" in outcomes[0] and "压缩炸弹" in outcomes[1]
    assert "DOCTYPE" in outcomes[2] and "DOCTYPE" in outcomes[3]
