"""Receipts a loan system imports without surprises (issue 23 item 2): local time with its offset, batches
numbered per inbox, a line for an export refused as a whole, rows as 第N行 everywhere."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from agent.demo import samples
from sandbox.local import LocalCentre

from ..conftest import drop, make_branch


def _lines(folder: Path) -> dict[str, list[dict[str, str]]]:
    out = {}
    for path in sorted(folder.glob("receipts-*.csv")):
        out[path.name] = list(csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030"))))
    return out


def test_receipts_speak_local_time_number_batches_per_inbox_and_account_for_a_refused_export(
    centre: LocalCentre, tmp_path: Path
) -> None:
    branch = make_branch(centre, tmp_path / "branch")
    agent = branch.agent()
    inbox, legacy = branch.inbox(), branch.inbox("legacy")
    (legacy / "receipts").mkdir(parents=True, exist_ok=True)
    (legacy / "receipts" / "receipts-000041.csv").write_bytes(b"from an older agent\r\n")  # not overwritten
    try:
        samples.write_materials(inbox / "materials", "TZ-001", "mortgage_first")
        samples.write_materials(inbox / "materials", "TZ-002", "mortgage_first", skip=("main_contract",))
        rows = samples.mortgage_rows("TZ-001", 1, amount="150") + samples.mortgage_rows("TZ-002", 2, amount="90")
        drop(inbox, "a.csv", samples.corebank_csv(rows))
        assert agent.run_until_idle(timeout=60)
        drop(inbox, "empty.csv", samples.corebank_csv([]))  # a header and no record: refused as a whole
        drop(legacy, "b.dat", b"")
        assert agent.run_until_idle(timeout=60)
    finally:
        agent.close()
    files = _lines(inbox / "receipts")
    names = sorted(files)
    assert names[0] == "receipts-000001.csv" and len(names) >= 2
    assert [int(n[9:15]) for n in names] == list(range(1, len(names) + 1))  # this inbox's own sequence
    for name, lines in files.items():
        assert {line["批次号"] for line in lines} == {str(int(name[9:15]))}
    every = [line for lines in files.values() for line in lines]
    for line in every:
        assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+08:00", line["时间"]), line["时间"]
        assert line["行号"] == "" or re.fullmatch(r"第\d+行(、第\d+行)*", line["行号"]), line["行号"]
    by = {(line["业务编号"], line["事件"]): line for line in every}
    assert by[("TZ-001-DYSC", "registered")]["行号"] == "第2行"
    assert by[("TZ-002-DYSC", "quarantined")]["行号"] == "第3行"
    refused = [line for line in every if line["源文件"] == "empty.csv"]
    assert len(refused) == 1 and refused[0]["事件"] == "file_read" and "整个文件隔离" in refused[0]["状态"]
    assert refused[0]["原因"]
    # the other inbox counts its own batches, above the numbered file an older agent left there
    legacy_files = sorted((legacy / "receipts").glob("receipts-*.csv"))
    assert [p.name for p in legacy_files] == ["receipts-000041.csv", "receipts-000042.csv"]
    assert legacy_files[0].read_bytes() == b"from an older agent\r\n"


def test_the_time_zone_of_receipts_is_configurable(centre: LocalCentre, tmp_path: Path) -> None:
    branch = make_branch(centre, tmp_path / "branch", timezone="Europe/London")
    agent = branch.agent()
    try:
        drop(branch.inbox(), "empty.csv", samples.corebank_csv([]))
        assert agent.run_until_idle(timeout=60)
    finally:
        agent.close()
    [lines] = _lines(branch.inbox() / "receipts").values()
    assert re.search(r"(\+00:00|\+01:00)$", lines[0]["时间"])
