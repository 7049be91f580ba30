"""``regbridge profile check``: every record's outcome, the encoding and the accounting, changing nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.demo import samples

from ..conftest import SECRET, Branch

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = {
    "corebank_gb18030.csv": ("corebank_csv", "corebank"),
    "presale_loans.xlsx": ("presale_xlsx", "presale"),
    "legacy_batch.dat": ("legacy_fixed", "legacy"),
}
CLI = CliRunner(env={"REGBRIDGE_AGENT_SECRET": SECRET.decode()})


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content's digest (the state database and its WAL included)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_each_shipped_sample_is_checked_with_its_table_and_nothing_changes(branch: Branch, sample: str) -> None:
    profile, inbox = SAMPLES[sample]
    agent = branch.agent()  # a branch with state: the check reads it, and must not write it
    agent.close()
    export = branch.inbox(inbox) / sample
    shutil.copy(ROOT / "config" / "samples" / sample, export)
    before = _tree(branch.root)
    args = ["profile", "check", str(export), "--profile", profile, "--config", str(branch.config), "--inbox", inbox]
    table = CLI.invoke(app, args)
    as_json = CLI.invoke(app, [*args, "--json"])
    assert _tree(branch.root) == before, "profile check changed a file"
    assert table.exit_code == 0 and as_json.exit_code == 0, table.output
    report = json.loads(as_json.output)
    assert set(report) == {"file", "profile", "encoding", "records", "accounting", "rows"}
    assert report["file"] == sample and report["profile"] == profile and report["encoding"]
    assert set(report["accounting"]) == {"queue", "supplement", "duplicate", "quarantine"}
    assert report["records"] == len(report["rows"]) == sum(report["accounting"].values()) > 0
    for row in report["rows"]:
        assert set(row) == {"record", "line", "loan", "outcome", "errors", "values"}
        assert row["outcome"] in report["accounting"]
        assert all(set(e) == {"column", "value", "message"} for e in row["errors"])
        assert (row["outcome"] == "quarantine") == bool(row["errors"]) or row["outcome"] == "quarantine"
        for path, value in row["values"].items():
            if path.endswith("id_number") and isinstance(value, str) and len(value) == 18:
                assert "*" in value, "an ID number in clear"
    assert "读取" in table.output and str(report["records"]) in table.output


def test_a_good_export_would_queue_and_a_repeat_is_a_duplicate(branch: Branch, tmp_path: Path) -> None:
    inbox = branch.inbox()
    samples.write_materials(inbox / "materials", "CHK-1", "mortgage_first")
    rows = samples.mortgage_rows("CHK-1", 1, amount="150")
    samples.write_esignatures(inbox, samples.corebank_signers(rows))  # the applicant's signed 申请书
    export = tmp_path / "check.csv"  # outside the inbox: the daemon's scan must not take it
    export.write_bytes(samples.corebank_csv(rows))
    args = ["profile", "check", str(export), "-p", "corebank_csv", "-c", str(branch.config), "--inbox", "corebank"]
    report = json.loads(CLI.invoke(app, [*args, "--json"]).output)
    assert report["accounting"] == {"queue": len(rows), "supplement": 0, "duplicate": 0, "quarantine": 0}
    [row] = report["rows"][:1]
    assert row["values"]["terms.secured_amount"] == "1500000.00"
    assert "*" in row["values"]["mortgagors[0].id_number"]
    agent = branch.agent()
    try:
        shutil.copy(export, inbox / "real.csv")
        agent.scan()
    finally:
        agent.close()
    second = CLI.invoke(app, [*args, "--json"])
    assert second.exit_code == 0, (second.output, second.exception)
    again: dict[str, Any] = json.loads(second.output)
    assert again["accounting"]["duplicate"] == len(rows) and export.exists()
    export.unlink()  # the test's own input (the privacy scan allows inputs only in an inbox)


def test_exit_codes_refused_file_bad_arguments_and_invalid_profile(tmp_path: Path) -> None:
    case = ROOT / "tests" / "data" / "cases" / "ingest" / "corebank-utf8-bom-into-gb18030-profile.csv"
    refused = CLI.invoke(app, ["profile", "check", str(case), "--profile", "corebank_csv", "--json"])
    assert refused.exit_code == 1
    body = json.loads(refused.output)
    assert body["records"] == 0 and "UTF-8" in body["error"]
    assert CLI.invoke(app, ["profile", "check", str(tmp_path / "nothing.csv"), "-p", "corebank_csv"]).exit_code == 2
    assert CLI.invoke(app, ["profile", "check", str(case), "-p", "no_such_profile"]).exit_code == 2
    text = (ROOT / "config" / "mappings" / "corebank_csv.toml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        text.replace('target = "terms.secured_amount"', 'target = "terms.securd_amount"', 1).replace(
            '"一般" = "1"', '"一般" = "3"'
        ),
        encoding="utf-8",
    )
    invalid = CLI.invoke(app, ["profile", "check", str(case), "-p", str(bad), "--json"])
    assert invalid.exit_code == 3
    problems = json.loads(invalid.output)
    assert set(problems) == {"profile", "profile_errors"}
    lines = text.splitlines()
    by_line = {p["line"]: p["message"] for p in problems["profile_errors"]}
    assert any("terms.securd_amount" in m for m in by_line.values())
    assert all(0 < n <= len(lines) for n in by_line)
    [target_line] = [n for n, m in by_line.items() if "securd" in m]
    assert "terms.securd_amount" in bad.read_text(encoding="utf-8").splitlines()[target_line - 1]
    [map_line] = [n for n, m in by_line.items() if "'3'" in m]
    assert '"一般" = "3"' in bad.read_text(encoding="utf-8").splitlines()[map_line - 1]


def test_a_column_the_export_lacks_is_a_profile_error_naming_its_line(tmp_path: Path) -> None:
    data = samples.corebank_csv(samples.mortgage_rows("CHK-2", 1, amount="150"))
    text = data.decode("gb18030").replace("经办人", "经手人", 1)
    export = tmp_path / "renamed.csv"
    export.write_bytes(text.encode("gb18030"))
    result = CLI.invoke(app, ["profile", "check", str(export), "-p", "corebank_csv", "--json"])
    assert result.exit_code == 3
    export.unlink()  # the test's own input (the privacy scan allows inputs only in an inbox)
    [problem] = json.loads(result.output)["profile_errors"]
    profile_lines = (ROOT / "config" / "mappings" / "corebank_csv.toml").read_text(encoding="utf-8").splitlines()
    assert "经办人" in profile_lines[problem["line"] - 1] and "经办人" in problem["message"]


def _defaulted_profile(folder: Path) -> Path:
    """The core banking profile as it was before issue 18: the declaration's 询问笔录 answers and 承诺 left to the
    defaults, signature ids instead of signed files, and no 领证方式."""
    text = (ROOT / "config" / "mappings" / "corebank_csv.toml").read_text(encoding="utf-8")
    text = (
        text[: text.index("# The applicants' own declaration")]
        + '[declaration]\noperator = "经办人"\nsignatures = "电子签名"\n\n'
        + text[text.index("[materials]") :]
    )
    explicit = '[[fields]]\ntarget = "delivery.method"\nvalue = "electronic"\n'
    assert explicit in text
    path = folder / "defaulted.toml"
    path.write_text(text.replace(explicit, ""), encoding="utf-8")
    return path


def test_a_profile_leaving_the_declaration_or_the_delivery_unmapped_fails_check_and_doctor(branch: Branch) -> None:
    """Issue 18 item 2: the 询问笔录 answers, the 承诺, the e-signatures and the 领证方式 come from the loan system;
    `profile check` (exit 3) and `doctor` (✗ profile) name the profile, each unmapped part and what is expected, in
    Chinese; the daemon does not load such a profile; every shipped profile maps them all."""
    from agent.mapping import ProfileInvalid, load_profile
    from installer.doctor import diagnose

    for name in ("corebank_csv", "presale_xlsx", "legacy_fixed"):
        load_profile(name)  # complete: it would raise otherwise
    profile = _defaulted_profile(branch.root)
    export = branch.root / "a.csv"
    shutil.copy(ROOT / "config" / "samples" / "corebank_gb18030.csv", export)
    result = CLI.invoke(app, ["profile", "check", str(export), "--profile", str(profile)])
    assert result.exit_code == 3, result.output
    out = result.output.replace("\n", "")
    line = profile.read_text(encoding="utf-8").splitlines().index("[declaration]") + 1
    assert f"defaulted.toml:{line}: [declaration] 未从导出文件映射询问笔录的回答" in out
    for expected in ("column", "承诺", "commitment 须为列名", "电子签名文件", "esignatures 须为列名", "领证方式",
                     'target = "delivery.method"'):  # fmt: skip
        assert expected in out, expected
    as_json = json.loads(CLI.invoke(app, ["profile", "check", str(export), "--profile", str(profile), "--json"]).output)
    assert len(as_json["profile_errors"]) == 4
    with pytest.raises(ProfileInvalid, match="询问笔录"):
        load_profile(profile)
    config = branch.config.read_text(encoding="utf-8")
    branch.config.write_text(config.replace('profile = "corebank_csv"', f'profile = "{profile}"'), encoding="utf-8")
    findings = [f for f in diagnose(branch.config) if f.check == "profile" and f.status == "fail"]
    assert len(findings) == 4 and all("inbox corebank: " in f.detail and "defaulted.toml" in f.detail for f in findings)
    assert any("询问笔录" in f.detail for f in findings) and any("领证方式" in f.detail for f in findings)
    export.unlink()  # the loan system's own export (names in the clear), not something the agent wrote


def _query_row(**cells: str) -> list[dict[str, str]]:
    """A 登记资料查询 row of the core banking export (as the shipped sample's DEMO-014), with ``cells`` changed."""
    [row] = [r for r in samples.corebank_rows() if r["业务类型"] == "登记资料查询"]
    return [{**row, **cells}]


def test_query_rows_are_checked_as_the_queries_they_are(tmp_path: Path) -> None:
    """Issue 24: `profile check` validates the rows asking for a 登记资料查询 — a good one would be queried, a row the
    query cannot be formed from or whose authorisation the agent would refuse is named with its reason; an export with
    query rows but without the authorisation's columns, or a profile leaving a query's columns unmapped, is a profile
    error naming its line."""
    rows = [
        *_query_row(贷款编号="Q-OK"),
        *_query_row(贷款编号="Q-EXPIRED", 授权有效期止="2020-01-01"),
        *_query_row(贷款编号="Q-NO-UNIT", 不动产单元号="", 不动产权证书号="", 坐落=""),
        *_query_row(贷款编号="Q-NO-AUTH", 查询授权书编号=""),
        *samples.mortgage_rows("Q-APP", 1, amount="150", authorised=True),
    ]
    export = tmp_path / "inbox" / "queries.csv"  # a loan-system export: input, allowed to hold names
    export.parent.mkdir()
    export.write_bytes(samples.corebank_csv(rows))
    result = CLI.invoke(app, ["profile", "check", str(export), "-p", "corebank_csv", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    by_loan = {r["loan"]: r for r in report["rows"]}
    assert report["records"] == len(report["rows"]) == 5
    assert by_loan["Q-OK"]["outcome"] == "queue" and by_loan["Q-OK"]["errors"] == []
    assert by_loan["Q-OK"]["values"]["query"]["authorisation"] == "SQ-DEMO-014"
    assert "query" not in by_loan["Q-APP"]["values"]  # an application row stays one
    expired = by_loan["Q-EXPIRED"]
    assert expired["outcome"] == "quarantine"
    assert "本机将拒绝查询：授权书已于 2020-01-01 过期" in expired["errors"][0]["message"]
    [no_unit] = by_loan["Q-NO-UNIT"]["errors"]
    assert no_unit["column"] == "不动产单元号" and "登记资料查询须指明不动产" in no_unit["message"]
    [no_auth] = by_loan["Q-NO-AUTH"]["errors"]
    assert no_auth["column"] == "查询授权书编号" and "查询授权书" in no_auth["message"]
    table = CLI.invoke(app, ["profile", "check", str(export), "-p", "corebank_csv"])
    assert "将做登记资料查询" in table.output and "查询行有误，不会查询" in table.output
    # the export lacks the authorisation's columns: a profile error at the [authorisation] line
    text = export.read_bytes().decode("gb18030").replace("授权有效期止", "有效期", 1)
    export.write_bytes(text.encode("gb18030"))
    lacking = CLI.invoke(app, ["profile", "check", str(export), "-p", "corebank_csv", "--json"])
    assert lacking.exit_code == 3, lacking.output
    [problem] = json.loads(lacking.output)["profile_errors"]
    profile_text = (ROOT / "config" / "mappings" / "corebank_csv.toml").read_text(encoding="utf-8")
    assert profile_text.splitlines()[problem["line"] - 1] == 'valid_until = "授权有效期止"'
    assert "登记资料查询行须附申请人的查询授权书" in problem["message"]
    # a profile asking for query rows without mapping who authorises: exit 3, the query_types line named
    unmapped = tmp_path / "unmapped.toml"
    block = '[[fields]]\ntarget = "mortgagors[].id_number"\ncolumn = "证件号码"\nkind = "id"\n\n'
    assert block in profile_text
    unmapped.write_text(profile_text.replace(block, ""), encoding="utf-8")
    gaps = CLI.invoke(app, ["profile", "check", str(export), "-p", str(unmapped), "--json"])
    assert gaps.exit_code == 3
    messages = [p["message"] for p in json.loads(gaps.output)["profile_errors"]]
    assert any("登记资料查询行需要授权人证件号码" in m for m in messages), messages
    export.unlink()
