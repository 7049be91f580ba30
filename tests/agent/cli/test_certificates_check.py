"""``regbridge certificates check`` (issue 20 item 4, seed 003 (四)): stored certificates and sealed notices
re-checked online and locally; a superseded one marked in the store, its sidecar and the receipts; a revoked
seal found by the local check with today's CRL and named in the store, an alert and the receipts; the report
in Chinese with an exit code for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.pipeline.recheck import recheck_certificates

from ..conftest import SECRET, Branch, drop, mortgage_export


def test_certificates_check_marks_superseded_and_revoked_ones(branch: Branch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        drop(inbox, "a.csv", mortgage_export(inbox, {"RC-1": 1, "RC-2": 2}))
        assert agent.run_until_idle(timeout=90)
        stored = agent.store.certificates(stage="stored")
        assert len(stored) == 2
        results = recheck_certificates(agent.context)
        kinds = sorted((r["kind"], r["loan_no"]) for r in results)
        # both certificates and both 受理凭证 stored beside them
        assert kinds == [("certificate", "RC-1"), ("certificate", "RC-2"), ("notice", "RC-1"), ("notice", "RC-2")]
        assert all(r["verdict"] == "valid" for r in results), results

        # a notice changed at rest is found: its digest is not the one the centre sealed; and the centre
        # supersedes RC-1's certificate (a later registration), the agent has not read the event yet
        notice = next(r for r in results if r["kind"] == "notice" and r["loan_no"] == "RC-1")
        names = agent.documents.keys()  # a DocumentStore's names, not a mapping
        key = next(k for k in names if agent.documents.metadata(k).get("notice_id") == notice["document_id"])
        path = agent.config.resolve(agent.config.documents.root) / key
        path.write_bytes(path.read_bytes() + b"\n")
        first = next(c for c in stored if c["reference"] == "RC-1-DYSC")
        branch.centre.centre.supersede(first["certificate_number"], None)
        rows = {r["kind"]: r for r in recheck_certificates(agent.context, loan_no="RC-1")}
        assert rows["notice"]["verdict"] == "invalid" and any("changed at rest" in x for x in rows["notice"]["reasons"])
        assert rows["certificate"]["online"] == "superseded" and rows["certificate"]["verdict"] == "superseded"
        marked = agent.store.certificate(first["certificate_id"])
        assert marked is not None and marked["supersede_pending"] == 1
    finally:
        agent.close()

    # the seal certificate is revoked: the command line re-checks with today's CRL and says so, in Chinese
    branch.centre.centre.revoke_seal()
    runner = CliRunner()
    result = runner.invoke(app, ["certificates", "check", "RC-1", "--config", str(branch.config)])
    assert result.exit_code == 1, result.output
    assert "印章证书已吊销，不得使用" in result.output and "核验未通过，不得使用" in result.output
    assert "受理凭证" in result.output and "RC-2" not in result.output
    result = runner.invoke(app, ["certificates", "check", "RC-2", "--json", "--config", str(branch.config)])
    assert result.exit_code == 1, result.output
    rows = {r["kind"]: r for r in json.loads(result.output)}
    assert rows["certificate"]["verdict"] == "revoked" and any("revoked" in x for x in rows["certificate"]["reasons"])
    assert any(x.startswith("印章证书已吊销：") for x in rows["certificate"]["reasons"])  # Chinese first (break20)
    assert rows["notice"]["verdict"] == "revoked"  # the notices were sealed with the same seal
    agent = branch.agent()
    try:
        cid = rows["certificate"]["document_id"]
        second = agent.store.certificate(cid)
        assert second is not None and "revoked" in second["error"]
        alerted = {a["kind"] for a in agent.store.alerts()}
        assert f"certificate:{cid}" in alerted and f"notice:{rows['notice']['document_id']}" in alerted
        superseded = agent.store.certificate(first["certificate_id"])
        assert superseded is not None and superseded["superseded_at"] is not None  # its sidecar marked
        sidecar = json.loads(Path(superseded["location"]).with_suffix(".json").read_text(encoding="utf-8"))
        assert sidecar["status"] == "superseded"

        # another loan's certificate copied over RC-2's, then the file gone (break20): each found by the local
        # check itself, with its own reason in Chinese — never "cannot be checked now, try later"
        path = Path(second["location"])
        path.write_bytes(Path(superseded["location"]).read_bytes())
        row = next(r for r in recheck_certificates(agent.context, loan_no="RC-2") if r["kind"] == "certificate")
        assert row["verdict"] == "invalid" and any("入库后被改动或替换" in x for x in row["reasons"]), row
        path.unlink()
        row = next(r for r in recheck_certificates(agent.context, loan_no="RC-2") if r["kind"] == "certificate")
        assert row["verdict"] == "invalid" and any("文件已不在文档库中" in x for x in row["reasons"]), row
        gone = agent.store.certificate(cid)
        assert gone is not None and "文件已不在文档库中" in gone["error"]  # the console will not hand it out
        # RC-2's 受理凭证 deleted too: still re-checked (its receipt line says it was stored), reported missing
        notice_id = rows["notice"]["document_id"]
        names = agent.documents.keys()  # a DocumentStore's names, not a mapping
        key = next(k for k in names if agent.documents.metadata(k).get("notice_id") == notice_id)
        notice_path = agent.config.resolve(agent.config.documents.root) / key
        notice_path.unlink()
        row = next(r for r in recheck_certificates(agent.context, loan_no="RC-2") if r["kind"] == "notice")
        assert row["verdict"] == "invalid" and any("文件已不在文档库中" in x for x in row["reasons"]), row
    finally:
        agent.close()
    receipts = "".join(p.read_bytes().decode("gb18030") for p in (branch.inbox() / "receipts").glob("*.csv"))
    assert "recheck_failed" in receipts and "superseded" in receipts and "受理凭证复核未通过" in receipts
