"""Sealed notices (issue 20 item 2, seed 003 (四)): the agent stores each beside the loan's certificate and
names it in the receipts; a notice that fails verification is quarantined with its reason, never stored."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sandbox.pki import CentreKeys

from ..conftest import Branch, drop, mortgage_export


def _receipts(branch: Branch) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted((branch.inbox() / "receipts").glob("receipts-*.csv")):
        rows += csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030")))
    return rows


def test_a_notice_is_stored_beside_the_certificate_and_named_in_the_receipts(branch: Branch) -> None:
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        drop(inbox, "a.csv", mortgage_export(inbox, {"NT-1": 1}))
        assert agent.run_until_idle(timeout=90)
        [cert] = agent.store.certificates(stage="stored")
    finally:
        agent.close()
    [line] = [r for r in _receipts(branch) if r["事件"] == "notice_acceptance_receipt"]
    notice = Path(line["证书存放位置"])
    assert notice.parent == Path(cert["location"]).parent  # beside the loan's certificate
    assert notice.is_file() and line["文书编号"] in notice.name and line["状态"] == "受理凭证已入库"
    assert notice.read_bytes().startswith(b"%PDF")  # the intl centre's format


def test_a_notice_sealed_and_signed_by_another_key_is_quarantined(branch: Branch) -> None:
    notices = branch.centre.centre.notices
    genuine = notices.keys
    notices.keys = CentreKeys.generate("冒充的登记中心")  # not the bundle's centre key nor its seal CA
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        drop(inbox, "b.csv", mortgage_export(inbox, {"NT-2": 2}))
        agent.run_until_idle(timeout=90)
        quarantined = [q for q in agent.store.quarantined() if q["kind"] == "notice"]
        assert quarantined and any("centre" in e["expected"] for e in quarantined[0]["errors"])
    finally:
        agent.close()
        notices.keys = genuine
    lines = [r for r in _receipts(branch) if r["事件"] == "quarantined" and r["文书编号"]]
    assert lines and "受理凭证" in lines[0]["文书编号"]
    assert not any(r["事件"] == "notice_acceptance_receipt" for r in _receipts(branch))
