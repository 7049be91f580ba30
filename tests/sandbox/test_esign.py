"""The centre checks each applicant's e-signature on receipt (seed 003 细则 (四)): a signed 申请书 that
pyHanko validates against the sandbox's e-signature CA is accepted; a forged, mis-addressed,
untrusted or wrong-signer signature is refused at 提交 with ``esignature_refused`` and its reason,
before 受理 (the application stays a draft, no notice number spent)."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pydantic import TypeAdapter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from typer.testing import CliRunner

import sdk
from sandbox.cli import app as sandbox_cli
from sandbox.esign import EsignAuthority, document_pdf, memory_authority
from sandbox.store import Store
from sdk.esign import verify_esignature
from sdk.models import Application, ApplicationRecord, ApplicationStatus
from tests import factories as f

from .conftest import Bank, Running

_APP = TypeAdapter(Application)


def _lodge(bank: Bank, data: dict[str, Any], contents: dict[str, bytes]) -> sdk.models.ApplicationRecord:
    app = _APP.validate_python(data)
    ref = app.client_reference
    draft = bank.client.applications.create(app, idempotency_key=f"{ref}:create")
    for m in app.materials:
        bank.client.applications.upload_material(
            draft.application_id, m, contents.get(m.id) or f.sample_content(m, ref)
        )
    return bank.client.applications.submit(draft.application_id, idempotency_key=f"{ref}:submit")


def _replace_signed(data: dict[str, Any], content: bytes, mid: str = "esign1") -> dict[str, Any]:
    data = copy.deepcopy(data)
    for m in data["materials"]:
        if m["id"] == mid:
            m["sha256"], m["size"] = hashlib.sha256(content).hexdigest(), len(content)
    return data


def _refused(bank: Bank, data: dict[str, Any], content: bytes) -> list[str]:
    with pytest.raises(sdk.ValidationFailed) as caught:
        _lodge(bank, _replace_signed(data, content), {"esign1": content})
    assert caught.value.code == "esignature_refused"
    record = bank.client.applications.find(data["client_reference"])
    assert record is not None
    assert record.status == ApplicationStatus.DRAFT and record.decision is None  # refused before 受理
    return [e.code for e in caught.value.errors]


def _owner(data: dict[str, Any]) -> dict[str, Any]:
    owner: dict[str, Any] = data["mortgagors"][0]
    return owner


def _form(data: dict[str, Any]) -> bytes:
    return f.material_content("application_form", data["client_reference"])


def test_the_centre_accepts_a_signature_pyhanko_validates_against_its_esign_ca(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first", "LN-ESIGN-OK", complete=True)
    record = _lodge(bank, data, {})
    assert record.status == ApplicationStatus.SUBMITTED
    signed = next(f.sample_content(m, "LN-ESIGN-OK") for m in _APP.validate_python(data).materials if m.id == "esign1")
    root = sandbox.centre.esign.ca_cert
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives.serialization import Encoding

    sig = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    status = validate_pdf_signature(
        sig, ValidationContext(trust_roots=[asn1_x509.Certificate.load(root.public_bytes(Encoding.DER))])
    )
    assert status.intact and status.valid and status.trusted
    assert sig.signer_cert.subject.native["serial_number"] == _owner(data)["id_number"]
    # the e-signature CA is not the seal CA, and the bundle names it
    assert sandbox.centre.esign.ca_pem != sandbox.centre.keys.ca_pem
    bundle = sandbox.centre.enrolment_bundle(bank.institution_id, sandbox.url, valid_for=timedelta(hours=1))
    assert sandbox.centre.esign.ca_pem in bundle["bundle"]["trust"]["esign_ca_pems"]


def test_a_forged_signature_is_refused(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first", "LN-ESIGN-FORGED", n=3, complete=True)
    signed = bytearray(f.esigned(_form(data), _owner(data)))
    at = signed.index(b"ApplicantSignature", len(_form(data)))
    signed[at] = ord("B")  # one byte of the signed revision changed after signing
    assert _refused(bank, data, bytes(signed)) == ["esignature_altered"]


def test_a_signature_over_another_document_is_refused(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first", "LN-ESIGN-OTHER", n=4, complete=True)
    other = f.esigned(f.material_content("application_form", "LN-SOMETHING-ELSE"), _owner(data))
    assert _refused(bank, data, other) == ["esignature_other_document"]


def test_a_signature_by_an_untrusted_ca_is_refused(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first", "LN-ESIGN-CA", n=6, complete=True)
    stranger = EsignAuthority.generate("别处的电子认证服务")
    signed = f.esigned(_form(data), _owner(data), authority=stranger)
    assert _refused(bank, data, signed) == ["esignature_untrusted"]


def test_a_signature_by_someone_else_is_refused(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first", "LN-ESIGN-WHO", n=8, complete=True)
    signed = f.esigned(_form(data), f.person("李四", seq=777))
    with pytest.raises(sdk.ValidationFailed) as caught:
        _lodge(bank, _replace_signed(data, signed), {"esign1": signed})
    (error,) = caught.value.errors
    assert error.code == "esignature_wrong_signer" and error.pointer == "/declaration/signatures/0"
    assert _owner(data)["id_number"] not in str(caught.value)  # compared, never shown in full


def test_each_problem_has_its_own_code_in_the_shared_check() -> None:
    ca = memory_authority()
    doc = document_pdf("application_form LN-X")
    signed = ca.sign(doc, name="张三", id_number="34012119620303002X")
    assert verify_esignature(signed, doc, id_number="34012119620303002x", trusted_cas=[ca.ca_pem]).ok
    assert [p.code for p in verify_esignature(b"not a pdf", doc, id_number="x", trusted_cas=[]).problems] == [
        "esignature_unreadable"
    ]
    appended = verify_esignature(signed + b"%extra", doc, id_number="34012119620303002X", trusted_cas=[ca.ca_pem])
    assert [p.code for p in appended.problems] == ["esignature_altered"]


def test_the_esign_ca_is_kept_encrypted_and_reopened(tmp_path: Path) -> None:
    store = Store(tmp_path / "centre.sqlite3")
    first = EsignAuthority.load_or_create(store, passphrase=b"pass-phrase")
    again = EsignAuthority.load_or_create(Store(tmp_path / "centre.sqlite3"), passphrase=b"pass-phrase")
    assert first.ca_pem == again.ca_pem
    row = store.one("SELECT pem FROM secrets WHERE name = 'esign_ca_key'")
    assert row is not None and bytes(row["pem"]).startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_the_cli_signs_a_document_the_centre_trusts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGBRIDGE_SANDBOX_SECRET", "a-test-secret-of-enough-length")
    from sandbox.centre import Centre

    Centre(Store(tmp_path / "centre.sqlite3"), passphrase=b"a-test-secret-of-enough-length")
    doc = tmp_path / "form.pdf"
    doc.write_bytes(document_pdf("application_form CLI"))
    out, ca = tmp_path / "signed.pdf", tmp_path / "esign-ca.pem"
    result = CliRunner().invoke(
        sandbox_cli,
        ["esign", str(doc), "--name", "张三", "--id-number", "34012119620303002X", "--out", str(out),
         "--ca-pem", str(ca), "--data", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "34012119620303002X" not in result.output
    check = verify_esignature(
        out.read_bytes(), doc.read_bytes(), id_number="34012119620303002X", trusted_cas=[ca.read_text()]
    )
    assert check.ok, check.problems


def test_two_sandbox_esign_cas_never_share_a_name_and_a_namesake_is_named_as_such() -> None:
    """Each sandbox, test process and demo makes its own e-signature CA: with one shared name a document
    signed under one was checked against the other and refused as "could not be verified" (the enrolment
    e2e test in a fresh clone). Distinct names; and a CA forged under a trusted CA's name is refused as that."""
    one, other = EsignAuthority.generate(), EsignAuthority.generate()
    assert one.ca_cert.subject != other.ca_cert.subject
    doc = document_pdf("application_form LN-NAMESAKE")
    namesake = EsignAuthority(other.ca_key, other.ca_cert)
    namesake.ca_cert = (
        x509.CertificateBuilder()
        .subject_name(one.ca_cert.subject)
        .issuer_name(one.ca_cert.subject)
        .public_key(other.ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(other.ca_cert.not_valid_before_utc)
        .not_valid_after(other.ca_cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(other.ca_key, hashes.SHA256())
    )
    signed = namesake.sign(doc, name="张三", id_number="34012119620303002X")
    check = verify_esignature(signed, doc, id_number="34012119620303002X", trusted_cas=[one.ca_pem])
    assert [p.code for p in check.problems] == ["esignature_untrusted"]
    assert "名称相同、密钥不同" in check.problems[0].reason
    assert verify_esignature(
        one.sign(doc, name="张三", id_number="34012119620303002X"), doc, id_number="34012119620303002X",
        trusted_cas=[one.ca_pem],
    ).ok  # fmt: skip


def _expired(doc: bytes, name: str, id_number: str, authority: EsignAuthority | None = None) -> bytes:
    """``doc`` signed under a certificate that ended a month ago (valid 30 days from 60 days ago)."""
    start = datetime.now(UTC) - timedelta(days=60)
    return (authority or memory_authority()).sign(doc, name=name, id_number=id_number, valid_from=start, valid_days=30)


def test_an_expired_signer_certificate_is_said_as_such_and_nothing_personal_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An expired signer certificate is refused as expired (esignature_expired, with its dates) — it was refused as
    'not issued by a trusted CA … 名称相同、密钥不同', sending staff after the wrong problem; and pyHanko's own log
    lines of the failed validation, which name the certificate's subject (the applicant's name and 证件号码 in
    full), reached stderr and the journal of the agent and the centre."""
    ca, doc = memory_authority(), document_pdf("application_form LN-EXPIRED")
    caplog.set_level(logging.DEBUG)
    check = verify_esignature(_expired(doc, "张三", "34012119620303002X"), doc, id_number="34012119620303002X",
                              trusted_cas=[ca.ca_pem])  # fmt: skip
    assert [p.code for p in check.problems] == ["esignature_expired"]
    assert "过期" in check.problems[0].reason and "名称相同" not in check.problems[0].reason
    # expired and by a stranger CA: both said
    stranger = EsignAuthority.generate("别处的电子认证服务")
    both = verify_esignature(_expired(doc, "张三", "34012119620303002X", stranger), doc,
                             id_number="34012119620303002X", trusted_cas=[ca.ca_pem])  # fmt: skip
    assert [p.code for p in both.problems] == ["esignature_expired", "esignature_untrusted"]
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "34012119620303002X" not in logged and "张三" not in logged


def test_the_centre_refuses_an_expired_signer_certificate(sandbox: Running, bank: Bank) -> None:
    data = f.application_dict("mortgage_first", "LN-ESIGN-EXP", n=9, complete=True)
    owner = _owner(data)
    assert _refused(bank, data, _expired(_form(data), owner["name"], owner["id_number"])) == ["esignature_expired"]


def test_a_signature_over_a_material_that_is_not_the_application_form_or_inquiry_record_is_refused(
    sandbox: Running, bank: Bank
) -> None:
    """The declaration must point at the signed 申请书 or 询问笔录: a valid signature by the applicant over another
    material (the 主合同 scan, here) is not the applicant's declaration, and was accepted (submitted)."""
    data = f.application_dict("mortgage_first", "LN-ESIGN-DOC", n=11, complete=True)
    other = next(m for m in data["materials"] if m["code"] not in ("application_form", "inquiry_record", "esignature"))
    scan = document_pdf(f"{other['code']} LN-ESIGN-DOC")
    signed = f.esigned(scan, _owner(data))
    data = _replace_signed(_replace_signed(data, scan, other["id"]), signed)
    data["declaration"]["signatures"][0]["document_id"] = other["id"]
    with pytest.raises((sdk.ValidationFailed, ValueError)) as caught:
        _lodge(bank, data, {"esign1": signed, other["id"]: scan})
    assert "application_form" in str(caught.value) and "inquiry_record" in str(caught.value)
    assert bank.client.applications.find("LN-ESIGN-DOC") is None  # refused before anything was created


def _raw_create(bank: Bank, data: dict[str, Any]) -> sdk.APIError:
    """POST the wire JSON as is (the SDK's models would refuse it before sending): the centre's own answer."""
    from sdk._operations import Operation

    key = f"{data['client_reference']}:raw"
    op: Operation[ApplicationRecord] = Operation.returning(
        ApplicationRecord, "POST", "/v1/applications", json=data, idempotency_key=key
    )
    with pytest.raises(sdk.APIError) as caught:
        bank.client.run(op)
    return caught.value


def test_a_signature_embedded_in_the_json_instead_of_an_uploaded_material_is_refused(
    sandbox: Running, bank: Bank
) -> None:
    """The signed PDF must be a material (uploaded with its digest), never inside the JSON body: the centre refuses
    the PDF inline in the declaration (422, the field named) and a declaration with a bare signature id, nothing
    to check (esignature_refused / esignature_missing at 提交, before 受理)."""
    data = f.application_dict("mortgage_first", "LN-ESIGN-JSON", n=12, complete=True)
    signed = next(f.sample_content(m, "LN-ESIGN-JSON") for m in _APP.validate_python(data).materials
                  if m.id == "esign1")  # fmt: skip
    inline = copy.deepcopy(data)
    inline["declaration"]["signatures"][0]["signed_pdf"] = base64.b64encode(signed).decode()
    refused = _raw_create(bank, inline)
    assert refused.status == 422 and [e.pointer for e in refused.errors] == ["/declaration/signatures/0/signed_pdf"]
    as_material = copy.deepcopy(data)
    at = next(i for i, m in enumerate(as_material["materials"]) if m["id"] == "esign1")
    as_material["materials"][at]["content"] = base64.b64encode(signed).decode()
    refused = _raw_create(bank, as_material)
    assert refused.status == 422 and [e.pointer for e in refused.errors] == [f"/materials/{at}/content"]
    assert bank.client.applications.find("LN-ESIGN-JSON") is None
    # only the platform's signature id: nothing the centre can check
    bare = f.application_dict("mortgage_first", "LN-ESIGN-BARE", n=12, complete=True)
    bare["declaration"]["signatures"] = [
        {"party": "/mortgagors/0", "signature_id": "ESIG-LN-ESIGN-BARE-1", "signed_at": "2026-03-05T10:00:00+08:00"}
    ]
    bare["materials"] = [m for m in bare["materials"] if m["id"] != "esign1"]
    with pytest.raises(sdk.ValidationFailed) as caught:
        _lodge(bank, bare, {})
    assert caught.value.code == "esignature_refused"
    assert [e.code for e in caught.value.errors] == ["esignature_missing"]
    record = bank.client.applications.find("LN-ESIGN-BARE")
    assert record is not None and record.status == ApplicationStatus.DRAFT and record.decision is None
