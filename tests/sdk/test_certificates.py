"""sdk.certificates: the detached-signature form both sides compute, and the light import."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sdk.certificates import CertificateRejected, TrustAnchors, canonical_json, sign_detached, verify_detached
from sdk.certificates import verify_metadata as verify_certificate_metadata
from sdk.models import SignedCertificateMetadata
from sdk.signing import Algorithm, generate_private_key, jwk_from_public_key


def test_the_canonical_form_sorts_keys_drops_whitespace_and_keeps_chinese() -> None:
    assert canonical_json({"b": [1, 2], "a": "抵押权", "c": {"y": None, "x": 1.5}}) == (
        '{"a":"抵押权","b":[1,2],"c":{"x":1.5,"y":null}}'.encode()
    )


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256-sha256"])
def test_a_detached_signature_is_over_exactly_the_canonical_bytes(algorithm: Algorithm) -> None:
    key = generate_private_key(algorithm)
    doc = {"certificate_number": "皖(2026)长丰县不动产证明第0100001号", "size": 1234}
    sig = sign_detached(doc, key, "centre-1")
    assert sig["keyid"] == "centre-1"
    assert sig["alg"] == algorithm
    # checked with the library directly, over the bytes the module says it signs
    raw = base64.b64decode(sig["value"])
    data = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(raw, data)
        with pytest.raises(InvalidSignature):
            public.verify(raw, data + b" ")
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(raw, data, ec.ECDSA(hashes.SHA256()))
        with pytest.raises(InvalidSignature):
            public.verify(raw, data + b" ", ec.ECDSA(hashes.SHA256()))
    jwk = jwk_from_public_key(key.public_key())
    assert verify_detached(doc, sig, jwk)
    assert not verify_detached({**doc, "size": 1235}, sig, jwk)
    assert not verify_detached(doc, {**sig, "value": "not base64!"}, jwk)
    assert not verify_detached(doc, sig, jwk_from_public_key(generate_private_key(algorithm).public_key()))


def test_metadata_signed_by_another_key_than_the_trusted_one_is_rejected() -> None:
    key = generate_private_key("ed25519")
    trust = TrustAnchors(
        seal_ca_pem="", centre_key_id="centre-1", centre_key=jwk_from_public_key(key.public_key()).model_dump()
    )
    signed = SignedCertificateMetadata.model_validate(
        {"metadata": _metadata(), "signature": {"alg": "ed25519", "keyid": "centre-2", "value": "AA=="}}
    )
    with pytest.raises(CertificateRejected, match="not the centre's centre-1"):
        verify_certificate_metadata(signed, trust)
    doc = signed.metadata.model_dump(mode="json")
    good = SignedCertificateMetadata.model_validate({"metadata": doc, "signature": sign_detached(doc, key, "centre-1")})
    assert verify_certificate_metadata(good, trust) == signed.metadata
    tampered = good.model_copy(update={"metadata": good.metadata.model_copy(update={"size": 2})})
    with pytest.raises(CertificateRejected, match="does not verify"):
        verify_certificate_metadata(tampered, trust)


def test_importing_the_module_does_not_import_pyhanko() -> None:
    code = "import sys, sdk, sdk.certificates; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('pyhanko', 'pyhanko_certvalidator', 'asn1crypto', 'reportlab')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _metadata() -> dict[str, object]:
    return {
        "certificate_id": "cert_1",
        "application_id": "app_1",
        "qr_payload": "http://127.0.0.1/v1/verification?licence_id=x",
        "issuing_authority": "长丰县不动产登记中心",
        "issuing_authority_code": "11340121MB0000001X",
        "issued_at": "2026-11-30T12:00:00+00:00",
        "serial_number": "34012120260100001",
        "certificate_number": "皖(2026)长丰县不动产证明第0100001号",
        "right_or_matter": "抵押权",
        "right_holders": ["某银行"],
        "obligors": ["张*"],
        "location": "长丰县",
        "unit_ids": ["340121261006GB00014F00010001"],
        "other": "",
        "notes": "",
        "licence_id": "x",
        "licence_type_code": "x",
        "holder_name": "某银行",
        "holder_code": "x",
        "holder_code_type": "001",
        "signer": "长丰县不动产登记中心",
        "signed_at": "2026-11-30T12:00:00+00:00",
        "status": "1",
        "media_type": "application/pdf",
        "sha256": "0" * 64,
        "size": 1,
    }


def test_crls_are_fetched_bounded_in_size_and_number() -> None:
    """A CRL point named by a document's seal certificate (break20): an answer larger than the bound, or more
    points than a seal certificate has, is refused rather than read into memory without end."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sdk.certificates import MAX_CRL_URLS, fetch_crls

    class Big(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b"\x30" * 5000)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Big)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ca.crl"
    try:
        assert fetch_crls([url], timeout=5) == [b"\x30" * 5000]
        with pytest.raises(CertificateRejected, match="cannot be fetched \\(larger than 1000 bytes\\)"):
            fetch_crls([url], timeout=5, max_bytes=1000)
        with pytest.raises(CertificateRejected, match=f"more than {MAX_CRL_URLS}"):
            fetch_crls([url] * (MAX_CRL_URLS + 1), timeout=5)
    finally:
        server.shutdown()
        server.server_close()
