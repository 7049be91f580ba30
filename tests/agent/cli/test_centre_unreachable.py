"""Review of issue 24: a command that calls the centre says an unreachable centre (refused connection, TLS
failure) in one Chinese line and an exit status, never a traceback; a ``query --batch`` goes on with its other
rows and ends with a count. On the same branch, first, while its centre answers: every date option takes the dates
staff type (tests/agent/cli/test_date_options.py)."""

from __future__ import annotations

import csv
import io
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app as cli
from agent.cli.common import EXIT_UNREACHABLE
from sandbox import register
from sdk.retries import set_testing

from ..conftest import SECRET, Branch
from .test_date_options import staff_dates_on_every_option

UNIT = 10


@pytest.fixture
def no_waits() -> Iterator[None]:
    set_testing(True)  # the retries' waits off, the retries themselves kept
    try:
        yield
    finally:
        set_testing(False)


def _point_at(config: Path, url: str) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(re.sub(r'(?m)^url = "https?://127\.0\.0\.1:\d+"', f'url = "{url}"', text, count=1), "utf-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _no_traceback(result: object) -> None:
    exc = getattr(result, "exception", None)
    assert exc is None or isinstance(exc, SystemExit), repr(exc)
    assert "Traceback" not in getattr(result, "output", "")


def test_date_options_then_an_unreachable_centre_is_one_chinese_line_per_row_and_an_exit_status(
    branch: Branch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_waits: None
) -> None:
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    owner = register.owners_of(UNIT)[0]
    now = datetime.now(UTC)
    signed, until = (now - timedelta(days=1)).strftime("%Y/%m/%d"), (now + timedelta(days=30)).strftime("%Y-%m-%d")
    header = ["不动产单元号", "授权书编号", "授权人姓名", "授权人证件号码", "签署时间", "有效期止", "电子签名"]
    rows = [
        [register.unit_id(UNIT), "SQ-U1", owner.name, owner.id_number, signed, until, "e1"],
        [register.unit_id(UNIT), "SQ-U2", owner.name, "110101199003077777", signed, until, "e2"],  # a bad row
        [register.unit_id(UNIT), "SQ-U3", owner.name, owner.id_number, signed, until, "e3"],
    ]
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    batch = tmp_path / "inbox" / "queries.csv"  # a loan-system export: input, allowed to hold names
    batch.parent.mkdir()
    batch.write_text(buf.getvalue(), encoding="utf-8")
    config = str(branch.config)
    staff_dates_on_every_option(branch, tmp_path)  # the centre answering (one query answered, in its trace)
    answered = branch.centre.centre.query_trace(institution_id=branch.institution_id)

    # the centre's port answers plain HTTP: an https URL to it fails its TLS handshake
    _point_at(branch.config, f"https://127.0.0.1:{branch.centre.port}")
    tls = CliRunner().invoke(cli, ["query", "--batch", str(batch), "--config", config])
    _no_traceback(tls)
    assert tls.exit_code == EXIT_UNREACHABLE, tls.output
    lines = tls.output.splitlines()
    for n in (2, 4):  # every good row said in one line, the batch went on
        [said] = [line for line in lines if line.startswith(f"queries.csv:{n}: ")]
        assert "登记中心无法连接，未查询（TLS 握手失败" in said, said
    assert any(line.startswith("queries.csv:3: 行无效") for line in lines)  # the bad row still accounted for
    assert "2 条未查询" in tls.output and "共 3 条，已答复 0 条" in tls.output
    assert owner.id_number not in tls.output

    _point_at(branch.config, f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    single = CliRunner().invoke(cli, [
        "query", "--unit", register.unit_id(UNIT), "--auth-ref", "SQ-U4", "--authoriser-name", owner.name,
        "--authoriser-id", owner.id_number, "--signed-at", (now - timedelta(days=1)).isoformat(),
        "--signature-id", "e4", "--config", config,
    ])  # fmt: skip
    _no_traceback(single)
    assert single.exit_code == EXIT_UNREACHABLE
    assert "登记中心无法连接，未查询（连接被拒绝：服务未运行或端口不对" in single.output, single.output
    for args, said in (
        (["filing"], "银行信息备案：登记中心无法连接，未能查看（连接被拒绝"),
        (["keys", "rotate"], "rotation: 登记中心无法连接，密钥未轮换（连接被拒绝"),
    ):
        out = CliRunner().invoke(cli, [*args, "--config", config])
        _no_traceback(out)
        assert out.exit_code == EXIT_UNREACHABLE and said in out.output, out.output
    shown = CliRunner().invoke(cli, ["keys", "show", "--config", config])
    assert shown.exit_code == 0 and "登记中心无法连接，未能核对本机密钥在中心的状态（连接被拒绝" in shown.output
    assert branch.centre.centre.query_trace(institution_id=branch.institution_id) == answered  # nothing reached it
