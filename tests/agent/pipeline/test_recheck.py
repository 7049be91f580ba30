"""The daemon re-checks a certificate at hand-over (issue 20 item 4, seed 003 (四)): the seal, its chain and CRL
as they are when the file goes to the document store and the receipts, and the centre's 在线核验 then. A seal
revoked after the certificate was issued (and announced) is found then: quarantined with its reason,
alerted, named in the receipts — never stored."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from ..conftest import Branch, drop, mortgage_export


def _issued_not_fetched(branch: Branch, agent: Any, loan: str, n: int) -> dict[str, Any]:
    """Drive the agent until the centre issued (sealed, announced) the loan's certificate; not fetched yet."""
    inbox = branch.inbox()
    drop(inbox, f"{loan}.csv", mortgage_export(inbox, {loan: n}))
    deadline = time.monotonic() + 60
    while not agent.store.certificates(stage="pending") and time.monotonic() < deadline:
        agent.scan()
        agent.poll()
        agent.work(deliver=False)  # everything but the hand-over
        time.sleep(0.1)
    [pending] = agent.store.certificates(stage="pending")
    return dict(pending)


def _receipt_rows(branch: Branch) -> list[dict[str, str]]:
    return [
        r
        for p in sorted((branch.inbox() / "receipts").glob("receipts-*.csv"))
        for r in csv.DictReader(io.StringIO(p.read_bytes().decode("gb18030")))
    ]


def test_a_certificate_whose_seal_was_revoked_before_hand_over_is_quarantined_not_stored(branch: Branch) -> None:
    agent = branch.agent()
    try:
        pending = _issued_not_fetched(branch, agent, "HO-1", 1)
        branch.centre.centre.revoke_seal()  # the seal certificate goes onto the seal CA's CRL
        assert agent.run_until_idle(timeout=60)
        cert = agent.store.certificate(pending["certificate_id"])
        assert cert is not None and cert["stage"] == "quarantined" and "revoked" in cert["error"]
        assert cert["location"] is None
        # no certificate file in the document store (only notices, whose sidecars name a notice_id, may be there)
        names = agent.documents.keys()  # a DocumentStore's names, not a mapping
        assert all(agent.documents.metadata(k).get("notice_id") for k in names)
        alerts = {a["kind"]: a["message"] for a in agent.store.alerts()}
        assert "revoked" in alerts[f"certificate:{pending['certificate_id']}"]
        [item] = [q for q in agent.store.quarantined() if q["kind"] == "certificate"]
        assert any("revoked" in e["expected"] for e in item["errors"])
    finally:
        agent.close()
    rows = _receipt_rows(branch)
    assert any(r["事件"] == "quarantined" and "revoked" in r["原因"] for r in rows)
    assert not any(r["事件"] == "registered" for r in rows)


def test_a_certificate_the_centres_online_verification_no_longer_knows_is_quarantined_at_hand_over(
    branch: Branch,
) -> None:
    """Its file and signed metadata still verify, but the centre's 在线核验 (the 电子证照 library) does not know
    its 电子证照标识 any more (withdrawn there): not handed over."""
    agent = branch.agent()
    try:
        pending = _issued_not_fetched(branch, agent, "HO-2", 2)
        branch.centre.centre.store.execute(
            "UPDATE certificates SET licence_id = 'withdrawn' WHERE id = ?", pending["certificate_id"]
        )
        assert agent.run_until_idle(timeout=60)
        cert = agent.store.certificate(pending["certificate_id"])
        assert cert is not None and cert["stage"] == "quarantined" and "在线核验" in cert["error"]
        assert f"certificate:{pending['certificate_id']}" in {a["kind"] for a in agent.store.alerts()}
    finally:
        agent.close()
    assert any(r["事件"] == "quarantined" and "在线核验" in r["原因"] for r in _receipt_rows(branch))
    assert not any(r["事件"] == "registered" for r in _receipt_rows(branch))
