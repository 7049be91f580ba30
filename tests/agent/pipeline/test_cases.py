"""Every case in tests/data/cases/ingest/ (copied from the shared cases: made-up people and numbers) through the
real ingest of an enrolled agent: each gives the outcome a user expects (tests/data/cases/README.md)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from agent.demo import samples
from sandbox import register

from ..conftest import Branch, drop

CASES = Path(__file__).resolve().parents[2] / "data" / "cases" / "ingest"
INBOX_OF = {".xlsx": "presale", ".dat": "legacy", ".csv": "corebank"}
CO_OWNED = next(n for n in register.HOMES if len(register.owners_of(n)) == 2)
LOANS = {
    "corebank": [(f"CB-{n}", "mortgage_first") for n in (501, 602, 801, 802, 803, 804)],
    "presale": [(f"PRE-{n}", "purchase_and_mortgage_notice") for n in (*range(100, 110), *range(200, 210))],
    "legacy": [("LEG-601", "mortgage_discharge")],
}


def _ingest(branch: Branch, name: str) -> tuple[list[Any], list[dict[str, Any]], dict[str, Any]]:
    """Drop one case into its inbox (its materials beside it), scan, and return what the agent made of it."""
    source = CASES / name
    inbox = INBOX_OF[source.suffix]
    for loan, kind in LOANS[inbox]:
        samples.write_materials(branch.inbox(inbox) / "materials", loan, kind)
    samples.write_esignatures(branch.inbox(inbox), _signers(source))
    agent = branch.agent()
    try:
        drop(branch.inbox(inbox), name, source.read_bytes())
        assert agent.scan() == 1
        assert not (branch.inbox(inbox) / name).exists()
        apps = agent.store.applications()
        quarantined = agent.store.quarantined()
        [file] = [f for f in agent.store.files() if f["path"] == name]
        return apps, quarantined, file
    finally:
        agent.close()


def _signers(source: Path) -> list[tuple[str, str, str, str]]:
    """The applicants' signed 申请书 a case names (the case files carry the declaration's columns since issue 18):
    what the signing platform left beside the export."""
    if source.suffix == ".csv":
        try:
            text = source.read_bytes().decode("gb18030").lstrip("\ufeff")
        except UnicodeDecodeError:
            return []
        found = list(csv.DictReader(io.StringIO(text)))
        return samples.corebank_signers(found) if found and "电子签名文件" in found[0] else []
    if source.suffix == ".xlsx":
        book = load_workbook(source)  # not read-only: that trusts a declared dimension (A1)
        try:
            sheet = book.active
            assert sheet is not None
            rows: list[list[Any]] = [list(r) for r in sheet.iter_rows(min_row=2, values_only=True)]
        finally:
            book.close()
        return samples.presale_signers(rows)
    return []  # the legacy batch here is the bank's own discharge: no applicant signs


def _errors(quarantined: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for q in quarantined for e in q["errors"]]


def test_every_case_file_has_a_test_here() -> None:
    named = {n for n in globals() if n.startswith("test_")}
    for path in CASES.iterdir():
        slug = path.stem.replace("-", "_").lower()
        assert any(slug in n for n in named), f"{path.name} has no test"


def test_presale_declared_dimension_a1(branch: Branch) -> None:
    """The sheet declares its size as A1 (WPS): every row is read anyway, 4 rows → 2 combined applications."""
    apps, quarantined, file = _ingest(branch, "presale-declared-dimension-A1.xlsx")
    assert quarantined == []
    assert sorted(a.type for a in apps) == ["purchase_and_mortgage_notice"] * 2
    assert sorted(len(json.loads(json.dumps(a.source))[0]["rows"]) for a in apps) == [2, 2]
    assert file["status"] == "done"


def test_presale_id_as_excel_number(branch: Branch) -> None:
    """身份证号 cells stored as numbers: refused with the cause, never queued as a different person's number."""
    apps, quarantined, _ = _ingest(branch, "presale-id-as-excel-number.xlsx")
    assert apps == []
    errors = _errors(quarantined)
    assert errors and all(e["field"] == "借款人证件号" for e in errors)
    assert all("15" in e["expected"] and "文本" in e["expected"] for e in errors)
    assert all("*" in e["value"] for e in errors), "the ID number is masked in the report"


def test_corebank_gb18030_with_bom(branch: Branch) -> None:
    """The GB 18030 byte-order mark is removed: the row is queued and the encoding is recorded."""
    apps, quarantined, file = _ingest(branch, "corebank-gb18030-with-bom.csv")
    assert quarantined == []
    assert [a.loan_no for a in apps] == ["CB-501"]
    assert file["encoding"] == "gb18030 (BOM)"


def test_corebank_utf8_bom_into_gb18030_profile(branch: Branch) -> None:
    """A UTF-8 file under a GB18030 profile: refused, naming UTF-8 and what to change."""
    apps, quarantined, file = _ingest(branch, "corebank-utf8-bom-into-gb18030-profile.csv")
    assert apps == [] and file["status"] == "quarantined"
    [error] = _errors(quarantined)
    assert "UTF-8" in error["expected"] and "encoding" in error["expected"]


def test_corebank_nul_in_name(branch: Branch) -> None:
    """A NUL in a name is refused by the SDK's rule, reported on the 抵押人 cell."""
    apps, quarantined, _ = _ingest(branch, "corebank-nul-in-name.csv")
    assert apps == []
    [error] = _errors(quarantined)
    assert error["field"] == "抵押人" and error["row"] == 2
    assert "U+0000" in error["expected"] and "\x00" not in error["value"]


def test_legacy_nul_padded(branch: Branch) -> None:
    """NUL bytes padding fixed-width fields are padding: the discharge is queued with clean values."""
    apps, quarantined, _ = _ingest(branch, "legacy-nul-padded.dat")
    assert quarantined == []
    [app] = apps
    assert app.loan_no == "LEG-601" and app.type == "mortgage_discharge"
    assert "\x00" not in json.dumps(app.payload)
    assert app.payload["mortgage_certificate"] == "皖(2024)长丰县不动产证明第0000015号"


def test_corebank_amount_units(branch: Branch) -> None:
    """贷款金额(万元): ¥150.00, 150万 and 1.5E+02 are 150万元; 1500000 is held ("did you mean 元?") on its column."""
    apps, quarantined, _ = _ingest(branch, "corebank-amount-units.csv")
    assert {a.loan_no: a.payload["terms"]["secured_amount"] for a in apps} == {
        "CB-802": "1500000.00",
        "CB-803": "1500000.00",
        "CB-804": "1500000.00",
    }
    [error] = _errors(quarantined)
    assert error["row"] == 2 and error["field"] == "贷款金额(万元)"
    assert "did you mean 元?" in error["expected"]


@pytest.mark.parametrize("amount", ["abc", "¥-5"])
def test_an_unreadable_amount_is_reported_once_on_its_own_column(branch: Branch, amount: str) -> None:
    """The cross-field rule (一般抵押 needs secured_amount) is about the amount column, not the last date column."""
    source = (CASES / "corebank-amount-units.csv").read_bytes().decode("gb18030")
    header, first = source.splitlines()[:2]
    cells = first.split(",")
    cells[8] = amount
    samples.write_materials(branch.inbox() / "materials", "CB-801", "mortgage_first")
    agent = branch.agent()
    try:
        drop(branch.inbox(), "one.csv", f"{header}\r\n{','.join(cells)}\r\n".encode("gb18030"))
        agent.scan()
        errors = _errors(agent.store.quarantined())
    finally:
        agent.close()
    assert [e["field"] for e in errors] == ["贷款金额(万元)"]


def test_an_exact_duplicate_line_of_a_co_owned_loan_is_refused_naming_both_rows(branch: Branch) -> None:
    """A repeated line made a second, identical mortgagor; the sealed certificate listed the borrower twice."""
    rows = samples.mortgage_rows("DUP-1", CO_OWNED, amount="150")
    assert len(rows) == 2
    inbox = branch.inbox()
    samples.write_materials(inbox / "materials", "DUP-1", "mortgage_first")
    agent = branch.agent()
    try:
        drop(inbox, "dup.csv", samples.corebank_csv([rows[0], rows[1], rows[1]]))
        agent.scan()
        assert agent.store.applications() == []
        [error] = _errors(agent.store.quarantined())
        assert error["field"] == "(整行)"
        assert error["row"] == 4 and "第3行" in error["expected"]
        [file] = agent.store.files()
        assert file["records"] == 3 and file["rows_quarantined"] == 3
    finally:
        agent.close()


def test_rows_are_numbered_as_a_spreadsheet_shows_them_with_the_physical_line_where_it_differs(branch: Branch) -> None:
    from agent.state.status import snapshot

    first = samples.mortgage_rows("ROW-1", 1, amount="150")[0]
    second = {**samples.mortgage_rows("ROW-2", 2, amount="150")[0], "贷款金额(万元)": "一百五十"}
    first["坐落"] = first["坐落"] + "\n（两行）"  # a quoted line break: one row, two lines
    inbox = branch.inbox()
    for loan in ("ROW-1", "ROW-2"):
        samples.write_materials(inbox / "materials", loan, "mortgage_first")
    agent = branch.agent()
    try:
        drop(inbox, "lines.csv", samples.corebank_csv([first, second]))
        agent.scan()
        [error] = _errors(agent.store.quarantined())
        assert (error["row"], error["line"]) == (3, 4)
        shown = json.dumps(snapshot(agent.store), ensure_ascii=False)
        assert "第3行（文件第4行） 字段 贷款金额(万元)" in shown
        report = next((inbox / "quarantine").glob("lines.csv.*.txt")).read_text(encoding="utf-8")
        assert "第3行（文件第4行）" in report and "金额（单位万元）" in report
    finally:
        agent.close()
