"""What arrives is checked: certificates (seal, metadata signature, fields) and webhook deliveries."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import httpx
import pytest

from agent.daemon.webhook import WebhookReceiver
from agent.pipeline.verify import CertificateRejected, TrustAnchors, reconcile, verify_metadata, verify_seal
from sandbox import samples
from sandbox.pki import CentreKeys
from sdk.signing import KeySigner, sign_request

from ..conftest import Branch, drop, mortgage_export


@pytest.fixture
def issued(branch: Branch) -> dict[str, Any]:
    """A certificate the sandbox issued to this branch, with the application it answers."""
    agent = branch.agent()
    try:
        drop(branch.inbox(), "a.csv", mortgage_export(branch.inbox(), {"DEMO-001": 1}, amount="150"))
        assert agent.run_until_idle(timeout=60)
        [cert] = agent.store.certificates()
        signed = agent.client.certificates.get(cert["certificate_id"])
        pdf = agent.client.certificates.download(cert["certificate_id"])
        [app] = agent.store.applications()
        return {"signed": signed, "pdf": pdf, "payload": app.payload, "trust": agent.trust}
    finally:
        agent.close()


def test_the_genuine_certificate_passes_every_check(issued: dict[str, Any]) -> None:
    meta = verify_metadata(issued["signed"], issued["trust"])
    verify_seal(issued["pdf"], meta, issued["trust"])
    reconcile(meta, issued["payload"], bank_uscc=samples.BANK_USCC, bank_name=samples.bank().name)


def test_one_changed_byte_breaks_the_seal(issued: dict[str, Any]) -> None:
    meta = issued["signed"].metadata
    pdf = bytearray(issued["pdf"])
    at = pdf.index(b"/Contents") - 200  # inside the signed range
    pdf[at] ^= 0x01
    with pytest.raises(CertificateRejected) as err:
        verify_seal(bytes(pdf), meta, issued["trust"])
    assert any("SHA-256" in r for r in err.value.reasons) and any(
        "broken" in r or "valid" in r for r in err.value.reasons
    )


def test_a_seal_from_another_ca_is_refused(issued: dict[str, Any]) -> None:
    other = TrustAnchors(
        CentreKeys.generate("别的中心").ca_pem, issued["trust"].centre_key_id, issued["trust"].centre_key
    )
    with pytest.raises(CertificateRejected, match="does not chain"):
        verify_seal(issued["pdf"], issued["signed"].metadata, other)


def test_appended_content_after_the_seal_is_refused(issued: dict[str, Any]) -> None:
    from pyhanko.pdf_utils.generic import NameObject, TextStringObject
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(issued["pdf"]))
    writer.root[NameObject("/Lang")] = TextStringObject("en")  # an incremental update after the seal
    writer.update_root()  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    longer = out.getvalue()
    meta = issued["signed"].metadata.model_copy(update={"sha256": hashlib.sha256(longer).hexdigest()})
    with pytest.raises(CertificateRejected, match="whole file"):
        verify_seal(longer, meta, issued["trust"])


def test_metadata_changed_after_signing_is_refused(issued: dict[str, Any]) -> None:
    signed = issued["signed"]
    changed = signed.metadata.model_copy(update={"certificate_number": "皖(2026)长丰县不动产证明第9999999号"})
    forged = signed.model_copy(update={"metadata": changed})
    with pytest.raises(CertificateRejected, match="does not verify"):
        verify_metadata(forged, issued["trust"])


def test_a_correctly_sealed_certificate_for_something_else_is_refused(issued: dict[str, Any]) -> None:
    meta = issued["signed"].metadata
    payload = json.loads(json.dumps(issued["payload"]))
    payload["terms"]["secured_amount"] = "1500001.00"
    payload["properties"][0]["unit_id"] = "340121261006GB00014F00010099"
    payload["mortgagors"][0]["name"] = "别人"
    with pytest.raises(CertificateRejected) as err:
        reconcile(meta, payload, bank_uscc=samples.BANK_USCC, bank_name=samples.bank().name)
    text = "; ".join(err.value.reasons)
    assert "secured_amount" in text and "不动产单元号" in text and "义务人" in text
    with pytest.raises(CertificateRejected, match="not this bank"):
        reconcile(meta, issued["payload"], bank_uscc="91110000600037341L", bank_name="另一家银行")


def test_webhooks_are_applied_once_when_signed_by_the_centre_and_refused_when_forged(branch: Branch) -> None:
    agent = branch.agent()
    receiver = WebhookReceiver(agent.context).start()
    try:
        event = {
            "event_id": "evt_1",
            "sequence": 1,
            "type": "channel.suspended",
            "occurred_at": "2026-11-22T00:00:00Z",
            "data": {"reason": "整改"},
        }
        body = json.dumps(event).encode()
        keys = branch.centre.centre.keys

        def post(key: Any, key_id: str) -> int:
            request = httpx.Request("POST", receiver.url, content=body, headers={"Content-Type": "application/json"})
            sign_request(request, KeySigner(key_id, key))
            return httpx.post(receiver.url, content=body, headers=dict(request.headers)).status_code

        assert post(CentreKeys.generate("伪造").centre_key, keys.centre_key_id) == 401
        assert agent.paused is None and receiver.refused == 1
        assert post(keys.centre_key, keys.centre_key_id) == 204
        assert post(keys.centre_key, keys.centre_key_id) == 204  # a retried delivery: no second effect
        assert agent.paused == "ChannelSuspended" and receiver.received == 1
        assert agent.store.event_seen("evt_1")
    finally:
        receiver.stop()
        agent.close()
