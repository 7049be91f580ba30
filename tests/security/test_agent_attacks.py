"""Attacks on the agent: what arrives from outside is checked, and nothing hostile is stored or run.

- certificates, served through a man in the middle that holds what an attacker could hold (and,
  to reach the deeper checks, the centre's metadata key too): one byte changed inside the sealed
  range, a seal by another CA, a correct seal over another application's fields, metadata changed
  after signing, metadata signed by another key, a file altered in transit. Each is refused with
  an alert, and the document store stays empty; the genuine certificate afterwards is stored.
- webhooks: forged, altered after signing, unsigned, signed by the bank's own key, too old.
- exports: loan numbers and file names built to climb out of their folders, a material that is
  a link to a file outside, spreadsheet formulas in every text field. Nothing is read or written
  outside the agent's folders, and no receipt cell starts a formula.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import httpx

from agent.centre.client import centre_client
from agent.config import load_config
from agent.credentials.custody import custody_for
from agent.daemon import Agent
from agent.daemon.webhook import WebhookReceiver
from agent.demo import samples
from connectors.receipts import _FORMULA_START
from sandbox import certificates as certs
from sandbox.pki import CentreKeys
from sdk.models import CertificateMetadata
from sdk.signing import KeySigner, sign_request
from tests import proof
from tests.agent.conftest import SECRET, Branch, drop, run_until
from tests.stored import stored_certificates

VARIANTS = {
    "one byte changed inside the sealed range": "seal",
    "sealed by another CA": "does not chain",
    "correctly sealed, another application's fields": "义务人",
    "metadata changed after signing": "does not verify",
    "metadata signed by another key": "not the centre's",
    "file altered in transit (digest mismatch)": "digest",
}


class ManInTheMiddle(httpx.BaseTransport):
    """Between the agent and the centre: rewrites what the centre says about a certificate, and its file."""

    def __init__(self, inner: httpx.BaseTransport, branch: Branch) -> None:
        self.inner = inner
        self.centre = branch.centre
        self.variant: str | None = None
        self.forged: dict[str, tuple[dict[str, Any], dict[str, Any], bytes]] = {}
        self.current: str | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        parts = request.url.path.strip("/").split("/")
        if self.variant is None or request.method != "GET":
            return response
        if parts[:2] == ["v1", "certificates"] and len(parts) == 3 and response.status_code == 200:
            response.read()
            response.close()
            doc = json.loads(response.content)
            cid = parts[2]
            if cid not in self.forged:
                self.forged[cid] = self.forge(cid, self.variant)
            meta, sig, _ = self.forged[cid]
            self.current = cid
            doc.update(metadata=meta, signature=sig)
            return httpx.Response(200, json=doc, request=request)
        if parts[:2] == ["v1", "downloads"] and self.current in self.forged and response.status_code == 200:
            response.read()
            response.close()
            return httpx.Response(200, content=self.forged[self.current][2], request=request,
                                  headers={"Content-Type": "application/pdf"})  # fmt: skip
        return response

    def close(self) -> None:
        self.inner.close()

    def forge(self, cid: str, variant: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
        keys: CentreKeys = self.centre.centre.keys
        name = self.centre.centre.name
        row = self.centre.store.one("SELECT metadata, signature, content FROM certificates WHERE id = ?", cid)
        assert row is not None
        meta = CertificateMetadata.model_validate_json(row["metadata"])
        genuine_pdf, genuine_sig = bytes(row["content"]), json.loads(row["signature"])

        def flipped(pdf: bytes) -> bytes:
            out = bytearray(pdf)
            out[out.index(b"/Contents") - 200] ^= 0x01  # inside the range the seal covers
            return bytes(out)

        def resigned(m: CertificateMetadata, pdf: bytes, signer: CentreKeys = keys) -> tuple[Any, Any, bytes]:
            m = m.model_copy(update={"sha256": hashlib.sha256(pdf).hexdigest()})
            doc = m.model_dump(mode="json")
            return doc, signer.sign_detached(doc), pdf

        if variant == "one byte changed inside the sealed range":
            return resigned(meta, flipped(genuine_pdf))
        if variant == "sealed by another CA":
            return resigned(meta, certs.seal_pdf(certs.render_pdf(meta, authority=name), CentreKeys.generate(name),
                                                 authority=name))  # fmt: skip
        if variant == "correctly sealed, another application's fields":
            other = meta.model_copy(update={"obligors": ["张冒名"], "unit_ids": ["340121261006GB00014F00010299"]})
            return resigned(other, certs.seal_pdf(certs.render_pdf(other, authority=name), keys, authority=name))
        if variant == "metadata changed after signing":
            changed = meta.model_copy(update={"certificate_number": "皖(2026)长丰县不动产证明第9999999号"})
            return changed.model_dump(mode="json"), genuine_sig, genuine_pdf
        if variant == "metadata signed by another key":
            impostor = CentreKeys.generate(name)
            doc, sig, pdf = resigned(meta, genuine_pdf, impostor)
            return doc, sig, pdf
        if variant == "file altered in transit (digest mismatch)":
            return meta.model_dump(mode="json"), genuine_sig, flipped(genuine_pdf)
        raise AssertionError(variant)


def _agent_with(branch: Branch, mitm: list[ManInTheMiddle]) -> Agent:
    config = load_config(branch.config)
    signer = custody_for(config, SECRET).signer(config.centre.key_id)

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        mitm.append(ManInTheMiddle(inner, branch))
        return mitm[-1]

    return Agent(config, secret=SECRET, client=centre_client(config, signer, wrap=wrap))


def _stored_pdfs(branch: Branch) -> list[Path]:
    """The stored certificates (not the sealed notices kept beside them)."""
    return stored_certificates(branch.root / "documents")


def _refusal(agent: Agent, loan: str, variant: str) -> tuple[dict[str, Any], str] | None:
    """The loan's certificate and its refusal's reason (error + alert), once it is held for ``variant``'s."""
    certificate = next((c for c in agent.store.certificates() if c["reference"].startswith(loan)), None)
    if certificate is None or certificate["stage"] not in ("quarantined", "pending"):
        return None
    alerts = {a["kind"]: a["message"] for a in agent.store.alerts()}
    reason = (certificate["error"] or "") + alerts.get(f"certificate:{certificate['certificate_id']}", "")
    return (certificate, reason) if VARIANTS[variant] in reason else None


def _is_refused(agent: Agent, loan: str, variant: str) -> bool:
    return _refusal(agent, loan, variant) is not None


def test_hostile_certificates_are_refused_with_an_alert_and_never_stored(branch: Branch) -> None:
    mitm: list[ManInTheMiddle] = []
    agent = _agent_with(branch, mitm)
    inbox = branch.inbox()
    refused = 0
    try:
        for i, variant in enumerate([*VARIANTS, None], 1):
            mitm[0].variant = variant
            loan = f"ATK-{i:03d}"
            samples.write_materials(inbox / "materials", loan, "mortgage_first")
            drop(inbox, f"{loan}.csv", samples.corebank_csv(samples.mortgage_rows(loan, 20 + i, amount="100")))
            if variant is None:  # the genuine one, to show the path works
                idle = agent.run_until_idle(timeout=60)
                certificate = next(c for c in agent.store.certificates() if c["reference"].startswith(loan))
                assert idle and certificate["stage"] == "stored", certificate
                continue
            # a refused certificate leaves its loan's sealed notices waiting (they are fetched once the certificate
            # is delivered), so the agent is not idle: drive it until the refusal is there, not for a fixed time
            run_until(agent, functools.partial(_is_refused, agent, loan, variant))
            _, reason = _refusal(agent, loan, variant) or ({}, "")
            assert VARIANTS[variant] in reason, f"{variant}: {reason!r}"
            assert not _stored_pdfs(branch), f"{variant}: a hostile certificate reached the document store"
            refused += 1
    finally:
        agent.close()
    # the genuine one is stored, and the one damaged in transit too, once the path is clean again
    assert sorted(p.parent.name for p in _stored_pdfs(branch)) == ["ATK-006", "ATK-007"]
    proof.record(
        proof.Result("hostile certificates (seal, CA, fields, metadata, key, transit)", runs=1,
                     applications=len(VARIANTS) + 1, lost=0, duplicated=0, refused=refused,
                     expected_refusals=len(VARIANTS))
    )  # fmt: skip
    assert refused == len(VARIANTS)


def test_forged_webhooks_are_refused_and_change_nothing(branch: Branch) -> None:
    agent = branch.agent()
    receiver = WebhookReceiver(agent.context).start()
    keys = branch.centre.centre.keys
    event = {"event_id": "evt_atk", "sequence": 1, "type": "channel.suspended",
             "occurred_at": "2026-11-22T00:00:00Z", "data": {"reason": "伪造"}}  # fmt: skip
    body = json.dumps(event).encode()
    bank_key = custody_for(agent.config, SECRET).signer(agent.config.centre.key_id)
    assert isinstance(bank_key, KeySigner)  # a key kept in software here, not in a PKCS#11 token

    def signed(key: Any, key_id: str, payload: bytes = body, **kw: Any) -> dict[str, str]:
        request = httpx.Request("POST", receiver.url, content=payload, headers={"Content-Type": "application/json"})
        sign_request(request, KeySigner(key_id, key), **kw)
        return dict(request.headers)

    forged = [
        ("signed by a key that is not the centre's", body, signed(CentreKeys.generate("伪造").centre_key,
                                                                   keys.centre_key_id)),
        ("altered after the centre signed it", body.replace(b'"sequence": 1', b'"sequence": 2'),
         signed(keys.centre_key, keys.centre_key_id)),
        ("unsigned", body, {"Content-Type": "application/json"}),
        ("signed by the bank's own key", body, signed(bank_key.private_key, bank_key.key_id)),
        ("an old delivery replayed", body, signed(keys.centre_key, keys.centre_key_id,
                                                  now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))),
    ]  # fmt: skip
    try:
        refused = 0
        for name, payload, headers in forged:
            status = httpx.post(receiver.url, content=payload, headers=headers).status_code
            assert status == 401, f"{name}: {status}"
            refused += 1
        assert agent.paused is None and not agent.store.event_seen("evt_atk")
        assert receiver.refused == len(forged) and receiver.received == 0
    finally:
        receiver.stop()
        agent.close()
    proof.record(
        proof.Result("forged webhooks", runs=1, applications=0, lost=0, duplicated=0, refused=refused,
                     expected_refusals=len(forged))
    )  # fmt: skip


def test_crafted_loan_numbers_file_names_links_and_formulas_go_nowhere(branch: Branch, tmp_path: Path) -> None:
    inbox = branch.inbox()
    secret = tmp_path / "outside" / "secret.pdf"
    secret.parent.mkdir()
    secret.write_bytes(b"%PDF-1.4 not for the centre")
    hostile_loans = ["../../../outside/x", "..\\..\\outside", "/etc/passwd", "..", "K-1/../../x",
                     '=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3"]  # fmt: skip
    rows = []
    for i, loan in enumerate(hostile_loans):
        rows += samples.mortgage_rows(loan, 30 + i, amount="100")
    # a loan whose material is a link to a file outside the inbox, and formulas in its text fields
    samples.write_materials(inbox / "materials", "LNK-1", "mortgage_first")
    link = next(p for p in (inbox / "materials").iterdir() if p.name.startswith("LNK-1_"))
    link.unlink()
    link.symlink_to(secret)
    linked = samples.mortgage_rows("LNK-1", 50, amount="100")
    for r in linked:
        r.update({"担保范围": "=cmd|' /C calc'!A0", "主合同编号": "@SUM(A1)"})
    rows += linked
    drop(inbox, "=HYPERLINK(evil).csv", samples.corebank_csv(rows))
    drop(inbox, "..%2f..%2fescape.csv", samples.corebank_csv(samples.mortgage_rows("..", 60, amount="100")))
    before = {p for p in tmp_path.rglob("*")}
    agent = branch.agent()
    try:
        agent.run_until_idle(timeout=90)
        uploaded = [bytes(r["content"]) for r in branch.centre.store.all("SELECT content FROM materials")]
    finally:
        agent.close()
    assert secret.read_bytes() not in uploaded, "a linked file outside the inbox was sent to the centre"
    # nothing written outside the branch's own folders
    escaped = [p for p in set(tmp_path.rglob("*")) - before if branch.root not in p.parents]
    assert not escaped, escaped
    docs = branch.root / "documents"
    assert all(docs in p.resolve().parents for p in docs.rglob("*"))
    # every receipt cell: no formula
    cells = []
    for path in (inbox / "receipts").glob("receipts-*.csv"):
        for row in csv.reader(io.StringIO(path.read_bytes().decode("gb18030"))):
            cells += row
    formulas = [c for c in cells if c.startswith(_FORMULA_START)]
    assert cells and not formulas, formulas
    quarantined = {q["loan_no"] for q in agent_quarantine(branch)}
    refused = sum(1 for loan in hostile_loans if loan in quarantined or ("/" not in loan and "\\" not in loan))
    assert "LNK-1" in quarantined, quarantined
    assert {"../../../outside/x", "..\\..\\outside", "/etc/passwd", "K-1/../../x"} <= quarantined
    proof.record(
        proof.Result("path traversal, links and formulas in exports", runs=1, applications=len(hostile_loans) + 2,
                     lost=0, duplicated=0, refused=refused + 1, expected_refusals=len(hostile_loans) + 1)
    )  # fmt: skip


def agent_quarantine(branch: Branch) -> list[dict[str, Any]]:
    agent = branch.agent()
    try:
        return [dict(q) for q in agent.store.quarantined()]
    finally:
        agent.close()
