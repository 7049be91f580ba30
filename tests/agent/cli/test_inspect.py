"""``regbridge status | show | search | quarantine | logs | audit export`` and SIGHUP: what bank IT asks at 2 a.m."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.demo import samples
from sandbox import register

from ..conftest import SECRET, Branch, drop

runner = CliRunner()
ID_IN_FULL = re.compile(r"\d{17}[\dX]")


@pytest.fixture
def ran(branch: Branch, monkeypatch: pytest.MonkeyPatch) -> Branch:
    """DEMO-001 registered (a certificate), DEMO-002 quarantined (a material missing)."""
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        samples.write_materials(inbox / "materials", "DEMO-001", "mortgage_first")
        samples.write_materials(inbox / "materials", "DEMO-002", "mortgage_first", skip=("main_contract",))
        rows = samples.mortgage_rows("DEMO-001", 1, amount="150") + samples.mortgage_rows("DEMO-002", 7, amount="98")
        drop(inbox, "a.csv", samples.corebank_csv(rows))
        assert agent.run_until_idle(timeout=60)
    finally:
        agent.close()
    return branch


def cli(branch: Branch, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(branch.config)])
    return result.exit_code, result.output


def test_status_opens_with_the_process_paths_contact_alerts_and_the_loans_needing_a_person(ran: Branch) -> None:
    code, out = cli(ran, "status")
    assert code == 0, out
    first = out.splitlines()[0]
    assert first.startswith("not running")  # no daemon holds the lock
    assert str(ran.config.resolve()) in out and str(ran.root / "var" / "agent.log") in out
    assert "last contact with the centre: 20" in out and "+08:00" in out  # local time, with its offset
    assert "Queues per inbox" in out and "corebank" in out
    assert "Loans needing a person" in out and "DEMO-002" in out and "main_contract" in out
    assert not ID_IN_FULL.search(out)
    code, raw = cli(ran, "status", "--json")
    snap = json.loads(raw)
    assert snap["agent"]["running"] is False
    assert snap["inboxes"]["corebank"] == {"done": 1}
    [need] = snap["needing_person"]
    assert need["loan_no"] == "DEMO-002" and need["why"].startswith("quarantine #")


def test_status_says_running_with_pid_version_and_uptime_and_each_alert_has_its_fix(ran: Branch) -> None:
    agent = ran.agent()
    try:
        agent.lock_instance()  # what `regbridge run` holds for its life
        agent.store.set_meta(
            "daemon", json.dumps({"pid": os.getpid(), "version": "9.9", "started_at": "2026-01-01T00:00:00+00:00"})
        )
        # a file name and values (data, not the agent's) that read as Rich markup are shown as they are: "[red]"
        # restyles nothing and "[/]", closing no tag, breaks nothing
        drop(ran.inbox(), "[red]b.csv", "贷款编号,业务类型\n[/]x,[red]y\n".encode("gb18030"))
        agent.scan()
        agent.store.raise_alert("inbox:corebank", "the inbox folder is gone")
        code, out = cli(ran, "status")
    finally:
        agent.close()
    assert code == 0, out
    assert out.splitlines()[0].startswith(f"running  pid {os.getpid()}  version 9.9  up ")
    assert "inbox:corebank" in out and "fix: the inbox folder is gone: reconnect the share" in out
    assert "[red]b.csv" in out and "[/]x" in out, out


def test_show_prints_a_loans_whole_history_and_search_finds_it_by_every_key(ran: Branch) -> None:
    agent = ran.agent()
    try:
        [app_row] = agent.store.applications("done")
        [cert] = agent.store.certificates(reference=app_row.reference)
    finally:
        agent.close()
    code, out = cli(ran, "show", "DEMO-001")
    assert code == 0, out
    # branch staff read it in Chinese (the codes stay in --raw for bank IT)
    for expected in ("贷款编号 DEMO-001", "DEMO-001-DYSC", "a.csv 第2行", cert["certificate_number"], "时间线",
                     "排队待提交", "登记证明", "回执", "已提交登记中心"):  # fmt: skip
        assert expected in out, expected
    stamps = re.findall(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d \+08:00", out)
    assert stamps == sorted(stamps) and len(stamps) > 5  # every event with its local time, in order
    code, raw = cli(ran, "show", "DEMO-001", "--raw")
    for expected in ("timeline", "queued", "certificate", "receipt", "application.submitted"):
        assert expected in raw, expected
    owner = register.owners_of(1)[0].id_number
    assert owner not in out and register.owners_of(1)[0].name not in out
    keys = {
        "loan_no": "DEMO-001",
        "reference": "DEMO-001-DYSC",
        "application_id": app_row.application_id,
        "certificate_number": cert["certificate_number"],
        "unit": register.unit_id(1),
        "person": owner,
    }
    for by, value in keys.items():
        assert value
        code, out = cli(ran, "search", value)
        assert code == 0, (by, out)
        assert "DEMO-001\tDEMO-001-DYSC" in out and f"(by {by})" in out, (by, out)
        assert owner not in out
    code, out = cli(ran, "search", owner, "--json")
    assert owner not in out and json.loads(out)["matches"][0]["by"] == "person"
    code, out = cli(ran, "search", "110101199003077777")  # a well-formed ID of nobody here
    assert code == 1 and "110101199003077777" not in out
    # the ID number is neither stored nor in any log: only its keyed hash is
    db = (ran.root / "var" / "state.db").read_bytes()
    assert owner.encode() not in db
    assert owner not in (ran.root / "var" / "audit.log").read_text()


def test_quarantine_list_show_dismiss_and_the_audit_export_names_who(ran: Branch, tmp_path: Path) -> None:
    code, out = cli(ran, "quarantine", "list")
    assert code == 0 and "DEMO-002" in out and "main_contract" in out and "a.csv 第3行" in out
    item = re.search(r"#(\d+)", out)
    assert item
    code, out = cli(ran, "quarantine", "show", item.group(1))
    assert code == 0 and "regbridge requeue" in out and "+08:00" in out
    result = runner.invoke(
        app,
        [
            "quarantine",
            "dismiss",
            item.group(1),
            "--reason",
            "贷款已撤销",
            "--by",
            "zhang.wei",
            "--config",
            str(ran.config),
        ],
    )
    assert result.exit_code == 0 and "dismissed" in result.output
    again = runner.invoke(app, ["quarantine", "dismiss", item.group(1), "--reason", "x", "--config", str(ran.config)])
    assert again.exit_code == 1 and "already dismissed" in again.output
    code, out = cli(ran, "quarantine", "list")
    assert "nothing in quarantine" in out
    code, out = cli(ran, "quarantine", "list", "--all")
    assert "dismissed" in out
    # the auditors' export: the dismissal with its person, the centre's decisions with the 经办人
    out_file = tmp_path / "audit.csv"
    code, out = cli(ran, "audit", "export", "--from", "2000-01-01", "--to", "2999-12-31", "--out", str(out_file))
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out_file.read_bytes().decode("utf-8-sig"))))
    dismissed = [r for r in rows if r["action"] == "quarantine.dismissed"]
    assert dismissed and dismissed[0]["operator"] == "zhang.wei" and "贷款已撤销" in dismissed[0]["detail"]
    decided = [r for r in rows if r["action"] == "centre.status" and r["outcome"] == "completed"]
    assert decided and decided[0]["operator"] == samples.OPERATOR and decided[0]["at_local"].endswith("+08:00")
    code, out = cli(ran, "audit", "export", "--from", "2000-01-01", "--to", "2000-01-02", "--format", "jsonl")
    assert code == 0 and out.strip().endswith("0 record(s) exported; audit chain intact")
    code, out = cli(ran, "audit", "export", "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(records) == len(rows) and {"seq", "at_local", "operator"} <= set(records[0])


def test_logs_prints_the_last_lines_readably(ran: Branch) -> None:
    log = ran.root / "var" / "agent.log"
    log.write_text(
        json.dumps({"at": "2026-11-30T07:00:00+00:00", "level": "warning", "msg": "hello", "file": "a.csv"}) + "\n"
    )
    code, out = cli(ran, "logs", "-n", "5")
    assert code == 0 and "WARNING hello file=a.csv" in out
    assert "2026-11-30T15:00:00.000+08:00 WARNING" in out  # in the agent's zone; --raw as written
    assert "2026-11-30T07:00:00+00:00" in cli(ran, "logs", "--raw")[1]


def test_sighup_reloads_the_profile_and_the_daemon_keeps_running(
    branch: Branch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile changed on disk, `kill -HUP`: the next export is read with it; the daemon is still there."""
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    profile = tmp_path / "bank.toml"
    shipped = (Path(__file__).resolve().parents[3] / "config" / "mappings" / "corebank_csv.toml").read_text()
    profile.write_text(shipped)
    text = branch.config.read_text().replace('profile = "corebank_csv"', f'profile = "{profile}"', 1)
    text = text.replace("[metrics]", '[logging]\nlevel = "info"\n\n[metrics]', 1)
    branch.config.write_text(text)
    env = {**os.environ, "REGBRIDGE_AGENT_SECRET": SECRET.decode()}
    err = open(tmp_path / "agent.stderr", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(branch.config)],
                            env=env, stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    inbox = branch.inbox()
    try:
        _wait(lambda: (branch.root / "var" / "agent.lock").exists() and b"agent running" in _read(tmp_path))
        # the bank's loan system renamed a column: with the old profile, the row is quarantined
        samples.write_materials(inbox / "materials", "HUP-001", "mortgage_first")
        drop(inbox, "before.csv", _renamed_column(samples.mortgage_rows("HUP-001", 2, amount="120")))
        _wait(lambda: _quarantined(branch))
        # the profile is fixed, the daemon told
        profile.write_text(shipped.replace('"主合同编号"', '"借款合同号"'))
        assert '"借款合同号"' in profile.read_text()
        proc.send_signal(signal.SIGHUP)
        _wait(lambda: b"config and profiles reloaded" in _read(tmp_path))
        assert proc.poll() is None, "SIGHUP must not stop the daemon"
        samples.write_materials(inbox / "materials", "HUP-002", "mortgage_first")
        drop(inbox, "after.csv", _renamed_column(samples.mortgage_rows("HUP-002", 3, amount="120")))
        _wait(lambda: _stage(branch, "HUP-002-DYSC") not in (None, "queued"), timeout=60)
        assert proc.poll() is None
        # and the kept copy of the first export is read again with the fixed profile
        code, out = cli(branch, "requeue", "--all")
        assert code == 0, out
        _wait(lambda: _stage(branch, "HUP-001-DYSC") not in (None, "queued"), timeout=60)
        with urllib.request.urlopen(_metrics_url(branch), timeout=5) as r:  # `/` answers on the metrics port
            page = r.read().decode()
        assert r.status == 200 and "/metrics" in page and "/healthz" in page
    except AssertionError:
        err.flush()
        print(_read(tmp_path).decode()[-4000:])  # the daemon's log, for whoever reads the failure
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        err.close()
    assert b'"agent.reloaded"' in (branch.root / "var" / "audit.log").read_bytes()


def _renamed_column(rows: list[dict[str, str]]) -> bytes:
    """The export with its 主合同编号 column renamed 借款合同号 (as a loan system's upgrade might)."""
    data = samples.corebank_csv(rows)
    old, new = "主合同编号".encode("gb18030"), "借款合同号".encode("gb18030")
    head, _, body = data.partition(b"\r\n")
    assert old in head
    return head.replace(old, new) + b"\r\n" + body


def _read(tmp_path: Path) -> bytes:
    return (tmp_path / "agent.stderr").read_bytes()


def _wait(check: object, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _quarantined(branch: Branch) -> bool:
    _, out = cli(branch, "quarantine", "list")
    return "HUP-001" in out


def _stage(branch: Branch, reference: str) -> str | None:
    code, out = cli(branch, "search", reference, "--json")
    matches = json.loads(out)["matches"] if code == 0 else []
    return str(matches[0]["stage"]) if matches else None


def _metrics_url(branch: Branch) -> str:
    for line in (branch.root / "var" / "agent.log").read_text().splitlines():
        if "metrics and health endpoint" in line:
            return str(json.loads(line)["url"]) + "/"
    raise AssertionError("the metrics endpoint's address is not in the log")
