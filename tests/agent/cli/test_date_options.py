"""Review of issue 24: every date option on the command line (query --signed-at/--valid-from/--valid-until, filing's
licence validity, audit export --from/--to) takes the dates branch staff type, by the one parser the batch file and
the exports use, and says a wrong one in Chinese with what was expected. The options themselves are run against a
centre in tests/agent/cli/test_centre_unreachable.py (:func:`staff_dates_on_every_option`), on its branch."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from agent.cli import app as cli
from agent.cli.common import parse_day, parse_moment
from sandbox import register

from ..conftest import Branch

CHINA = ZoneInfo("Asia/Shanghai")


def test_the_cli_date_parser_takes_what_staff_type() -> None:
    for typed in ("2026-12-31", "2026/12/31", "2026年12月31日", "2026.12.31", "20261231", "２０２６/12/31"):
        assert parse_day(typed) == date(2026, 12, 31), typed
    for typed in ("2026/11/30 09:05", "2026年11月30日 9:05", "2026-11-30T09:05:00+08:00", "2026-11-30 09:05"):
        assert parse_moment(typed) == (datetime(2026, 11, 30, 9, 5, tzinfo=CHINA), False), typed
    assert parse_moment("2026/11/30") == (datetime(2026, 11, 30, tzinfo=CHINA), True)  # a day alone: its start
    for wrong in ("31/12/2026", "2026/13/01", "明天", "2026/11/30 25:00"):
        with pytest.raises(ValueError, match=r"日期或时间，如 2026-11-30"):
            parse_moment(wrong)
    with pytest.raises(ValueError, match="日期，如 2026-12-31"):
        parse_day("2026/11/30 09:00")  # a time where a day is asked


def staff_dates_on_every_option(branch: Branch, tmp_path: Path) -> None:
    """Every date option, as staff type it, against a running centre (the agent secret in the environment)."""
    owner = register.owners_of(10)[0]
    config = str(branch.config)
    yesterday = datetime.now(CHINA) - timedelta(days=1)
    common = ["query", "--unit", register.unit_id(10), "--auth-ref", "SQ-D1", "--authoriser-name", owner.name,
              "--authoriser-id", owner.id_number, "--signature-id", "e-d1", "--config", config]  # fmt: skip
    # the day it was signed, as written on the authorisation: today's date is not "in the future" at 08:00
    ok = CliRunner().invoke(cli, [
        *common, "--signed-at", datetime.now(CHINA).strftime("%Y年%m月%d日"),
        "--valid-from", yesterday.strftime("%Y/%m/%d"), "--valid-until", "2030.12.31",
    ])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    [trace] = branch.centre.centre.query_trace(institution_id=branch.institution_id)
    assert trace["outcome"] == "answered"
    wrong = CliRunner().invoke(cli, [*common, "--signed-at", "昨天", "--valid-until", "2030/13/01"])
    assert wrong.exit_code == 2
    assert "--signed-at（签署时间）值 '昨天' 无效：应为日期或时间，如 2026-11-30、2026/11/30" in wrong.output
    assert "--valid-until（有效期止）值 '2030/13/01' 无效：应为日期，如 2026-12-31" in wrong.output
    assert "缺少 --signed-at" not in wrong.output and "未发送任何查询" in wrong.output
    licence = tmp_path / "licence.pdf"
    licence.write_bytes(b"%PDF-1.4\n")
    filing = CliRunner().invoke(cli, [
        "filing", "--business-licence", str(licence), "--financial-licence", str(licence),
        "--financial-licence-number", "B0001H234010001", "--business-licence-valid-until", "2030年13月1日",
        "--config", config,
    ])  # fmt: skip
    assert filing.exit_code == 2, filing.output
    assert "--business-licence-valid-until 值 '2030年13月1日' 无效：应为日期，如 2026-12-31" in filing.output
    day = datetime.now(CHINA).strftime("%Y年%m月%d日")
    exported = CliRunner().invoke(cli, ["audit", "export", "--from", day, "--to", day, "--format", "jsonl",
                                        "--config", config])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert '"property.query"' in exported.output  # today's query, by a 年月日 --from/--to
    before = CliRunner().invoke(cli, ["audit", "export", "--to", yesterday.strftime("%Y/%m/%d"), "--config", config])
    assert before.exit_code == 0 and "property.query" not in before.output
    bad = CliRunner().invoke(cli, ["audit", "export", "--from", "last week", "--config", config])
    assert bad.exit_code == 2 and "--from 值 'last week' 无效：应为日期或时间" in bad.output
