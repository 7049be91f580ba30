"""国密 in the SDK: known answers from the standards, and interop with OpenSSL 3's command line.

Known answers: SM3 "abc" and the 64-byte message (GB/T 32905 A.1, A.2), SM4 one block
(GB/T 32907 A.1), SM4-GCM (RFC 8998 A.1), the SM2 signature example of GM/T 0003.5 Appendix A
(private key, public key, user id ``1234567812345678``, "message digest", r, s). Interop: an SDK
request in the ``gm`` suite verifies with ``openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt
distid:…`` given only the public key PEM, and a signature made by ``openssl`` verifies in the SDK;
keys, encrypted keys and SM2 ciphertexts cross both ways.
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import sdk
from sdk import signing
from sdk.errors import SignatureError
from sdk.gm import sm3
from sdk.gm.sm2 import (
    Sm2PrivateKey,
    Sm2PublicKey,
    ciphertext_layout,
    load_pem_private_key,
    load_pem_public_key,
    to_c1c3c2,
)
from sdk.gm.sm4 import sm4_cbc_decrypt, sm4_cbc_encrypt, sm4_gcm_decrypt, sm4_gcm_encrypt
from sdk.suites import GM, INTL, suite_named

OPENSSL = shutil.which("openssl")
# GM/T 0003.5-2012 Appendix A (the recommended curve)
GMT_D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
GMT_X = bytes.fromhex("09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020")
GMT_Y = bytes.fromhex("CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13")
GMT_R = int("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3", 16)
GMT_S = int("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA", 16)


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL, "the openssl command line is part of the build environment (make system-deps)"
    return subprocess.run([OPENSSL, *args], input=stdin, capture_output=True, timeout=30, check=False)


# --- known answers -----------------------------------------------------------------------------


def test_sm3_known_answers() -> None:
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    assert signing.content_digest(b"abc", "sm3") == "sm3=:" + base64.b64encode(sm3(b"abc")).decode() + ":"


def test_sm4_known_answers() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    # GB/T 32907 A.1: one block; CBC with a zero iv is ECB on the first block
    assert sm4_cbc_encrypt(key, key, iv=bytes(16))[16:32].hex() == "681edf34d206965e86b3e94f536e4246"
    # RFC 8998 A.1 (SM4-GCM)
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plain = bytes.fromhex("".join(c * 16 for c in "ABCDEFEA"))
    sealed = sm4_gcm_encrypt(key, plain, aad, nonce=nonce)
    assert sealed[12:-16].hex().upper() == (
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
    )
    assert sealed[-16:].hex().upper() == "83DE3541E4C2B58177E065A9BF7B62EC"
    assert sm4_gcm_decrypt(key, sealed, aad) == plain
    with pytest.raises(ValueError, match="tag"):
        sm4_gcm_decrypt(key, sealed, aad + b"x")
    altered = bytearray(sealed)
    altered[20] ^= 1
    with pytest.raises(ValueError, match="tag"):
        sm4_gcm_decrypt(key, bytes(altered), aad)
    assert sm4_cbc_decrypt(key, sm4_cbc_encrypt(key, "张三".encode())) == "张三".encode()


def test_sm2_published_signature_verifies() -> None:
    """GM/T 0003.5 Appendix A: the public key follows from d, and (r, s) verifies; a changed message does not."""
    key = Sm2PrivateKey.from_secret(GMT_D)
    assert key.public.raw == GMT_X + GMT_Y
    signature = encode_dss_signature(GMT_R, GMT_S)
    Sm2PublicKey(GMT_X + GMT_Y).verify(signature, b"message digest")
    with pytest.raises(InvalidSignature):
        Sm2PublicKey(GMT_X + GMT_Y).verify(signature, b"message digesT")
    with pytest.raises(InvalidSignature):  # another user id makes another Z_A
        Sm2PublicKey(GMT_X + GMT_Y, b"ALICE123@YAHOO.COM").verify(signature, b"message digest")
    with pytest.raises(InvalidSignature):  # s ≥ n, and a non-DER encoding
        Sm2PublicKey(GMT_X + GMT_Y).verify(encode_dss_signature(GMT_R, GMT_S + 2**256), b"message digest")
    with pytest.raises(InvalidSignature):
        Sm2PublicKey(GMT_X + GMT_Y).verify(GMT_R.to_bytes(32, "big") + GMT_S.to_bytes(32, "big"), b"message digest")
    # our own signature with that key verifies, and differs each time (random k)
    a, b = key.sign(b"message digest"), key.sign(b"message digest")
    assert a != b
    key.public.verify(a, b"message digest")
    # Z_A is computed by the SDK and the digest signed by GmSSL: GmSSL's own whole-message check agrees
    import gmssl_pyx as gmssl

    assert gmssl.sm2_verify(key.public.raw, b"message digest", a, signer_id=b"1234567812345678")
    other = key.with_user_id(b"ALICE123@YAHOO.COM")
    assert gmssl.sm2_verify(key.public.raw, b"m", other.sign(b"m"), signer_id=b"ALICE123@YAHOO.COM")


def test_sm2_keys_off_the_curve_are_refused() -> None:
    with pytest.raises(ValueError, match="curve"):
        Sm2PublicKey(GMT_X + bytes(32))
    with pytest.raises(ValueError, match="64 bytes"):
        Sm2PublicKey(GMT_X)
    jwk = signing.jwk_from_public_key(Sm2PublicKey(GMT_X + GMT_Y))
    assert (jwk.kty, jwk.crv) == ("EC", "SM2")
    assert signing.public_key_from_jwk(jwk) == Sm2PublicKey(GMT_X + GMT_Y)
    bad = jwk.model_copy(update={"y": jwk.x})
    with pytest.raises(ValueError, match="curve"):
        signing.public_key_from_jwk(bad)


# --- RFC 9421 with sm2-sm3, against OpenSSL ------------------------------------------------------


def _signed_request(key: Sm2PrivateKey, body: bytes = b'{"name":"\xe5\xbc\xa0\xe4\xb8\x89"}') -> httpx.Request:
    request = httpx.Request(
        "POST",
        "http://127.0.0.1:8080/v1/applications?x=1",
        content=body,
        headers={"Content-Type": "application/json", "Idempotency-Key": "ref-1:create"},
    )
    signing.sign_request(request, signing.KeySigner("key_gm", key))
    return request


def _signature_base(request: httpx.Request) -> bytes:
    """The RFC 9421 §2.5 signature base, rebuilt here from the headers (not by the library)."""
    params = request.headers["Signature-Input"].removeprefix("sig1=")
    lines = [
        f'"@method": {request.method}',
        f'"@target-uri": {request.url}',
        f'"content-digest": {request.headers["Content-Digest"]}',
        f'"content-type": {request.headers["Content-Type"]}',
        f'"idempotency-key": {request.headers["Idempotency-Key"]}',
        f'"@signature-params": {params}',
    ]
    return "\n".join(lines).encode()


def test_gm_request_carries_sm3_digest_and_sm2_sm3_alg() -> None:
    key = Sm2PrivateKey.generate()
    request = _signed_request(key)
    assert request.headers["Content-Digest"] == signing.content_digest(request.content, "sm3")
    assert 'alg="sm2-sm3"' in request.headers["Signature-Input"]
    assert '"content-type" "idempotency-key"' in request.headers["Signature-Input"]
    verified = signing.verify_request(
        method="POST", url=str(request.url), headers=list(request.headers.items()), body=request.content,
        keys={"key_gm": key.public_key()}, suite=GM,
    )  # fmt: skip
    assert verified.algorithm == "sm2-sm3"
    # the intl suite refuses it (its digest is not there), and a gm centre refuses an ed25519 key
    with pytest.raises(SignatureError, match="sha-256"):
        signing.verify_request(
            method="POST", url=str(request.url), headers=list(request.headers.items()), body=request.content,
            keys={"key_gm": key.public_key()}, suite=INTL,
        )  # fmt: skip
    ed = signing.generate_private_key("ed25519")
    other = httpx.Request("POST", "http://127.0.0.1:8080/v1/x", content=b"{}")
    signing.sign_request(other, signing.KeySigner("key_ed", ed))
    with pytest.raises(SignatureError):
        signing.verify_request(
            method="POST", url=str(other.url), headers=list(other.headers.items()), body=b"{}",
            keys={"key_ed": ed.public_key()}, suite=GM,
        )  # fmt: skip


def test_sdk_request_verifies_with_openssl_given_only_the_public_key(tmp_path: Path) -> None:
    key = Sm2PrivateKey.generate()
    request = _signed_request(key)
    (tmp_path / "pub.pem").write_bytes(key.public_key().to_pem())
    (tmp_path / "base").write_bytes(_signature_base(request))
    signature = request.headers["Signature"].removeprefix("sig1=:").removesuffix(":")
    (tmp_path / "sig").write_bytes(base64.b64decode(signature))
    verify = ["pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin", "-digest", "sm3"]
    ok = openssl(*verify, "-pkeyopt", "distid:1234567812345678", "-in", str(tmp_path / "base"),
                 "-sigfile", str(tmp_path / "sig"))  # fmt: skip
    assert ok.returncode == 0 and b"Signature Verified Successfully" in ok.stdout, ok.stderr
    # with another user id, or a changed base, OpenSSL refuses it
    wrong_id = openssl(*verify, "-pkeyopt", "distid:ALICE123@YAHOO.COM", "-in", str(tmp_path / "base"),
                       "-sigfile", str(tmp_path / "sig"))  # fmt: skip
    assert wrong_id.returncode != 0
    (tmp_path / "base").write_bytes(_signature_base(request).replace(b"POST", b"PUT", 1))
    changed = openssl(*verify, "-pkeyopt", "distid:1234567812345678", "-in", str(tmp_path / "base"),
                      "-sigfile", str(tmp_path / "sig"))  # fmt: skip
    assert changed.returncode != 0


def test_openssl_signature_verifies_in_the_sdk(tmp_path: Path) -> None:
    """A key made by ``openssl genpkey``, a request signature made by ``openssl pkeyutl -sign``."""
    assert openssl("genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "k.pem")).returncode == 0
    assert openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout", "-out", str(tmp_path / "pub.pem")).returncode == 0
    private = load_pem_private_key((tmp_path / "k.pem").read_bytes())
    public = load_pem_public_key((tmp_path / "pub.pem").read_bytes())
    assert private.public == public
    assert public.to_pem() == (tmp_path / "pub.pem").read_bytes()
    # the request signed by our signer, then the signature replaced by OpenSSL's over the same base
    request = _signed_request(private)
    (tmp_path / "base").write_bytes(_signature_base(request))
    made = openssl("pkeyutl", "-sign", "-inkey", str(tmp_path / "k.pem"), "-rawin", "-digest", "sm3",
                   "-pkeyopt", "distid:1234567812345678", "-in", str(tmp_path / "base"))  # fmt: skip
    assert made.returncode == 0, made.stderr
    headers = [(k, v) for k, v in request.headers.items() if k != "signature"]
    headers.append(("signature", "sig1=:" + base64.b64encode(made.stdout).decode() + ":"))
    verified = signing.verify_request(
        method="POST", url=str(request.url), headers=headers, body=request.content, keys={"key_gm": public}, suite=GM
    )
    assert verified.key_id == "key_gm"
    custom = suite_named("gm", sm2_user_id="ALICE123@YAHOO.COM")
    with pytest.raises(SignatureError, match="does not verify"):  # signed with the default id
        signing.verify_request(
            method="POST", url=str(request.url), headers=headers, body=request.content, keys={"key_gm": public},
            suite=custom,
        )  # fmt: skip


def test_keys_cross_with_openssl(tmp_path: Path) -> None:
    key = Sm2PrivateKey.generate()
    (tmp_path / "plain.pem").write_bytes(key.to_pem())
    (tmp_path / "enc.pem").write_bytes(key.to_pem(b"agent secret"))
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "enc.pem").read_bytes()
    for name, extra in (("plain.pem", []), ("enc.pem", ["-passin", "pass:agent secret"])):
        out = openssl("pkey", "-in", str(tmp_path / name), *extra, "-pubout")
        assert out.returncode == 0, out.stderr
        assert out.stdout == key.public.to_pem()
    assert load_pem_private_key((tmp_path / "enc.pem").read_bytes(), b"agent secret") == key
    with pytest.raises(ValueError, match="wrong password"):
        load_pem_private_key((tmp_path / "enc.pem").read_bytes(), b"another secret")


def test_sm2_key_wrapping_in_both_layouts_peers_send(tmp_path: Path) -> None:
    key = Sm2PrivateKey.generate()
    wrapped = key.public.encrypt(b"0123456789abcdef")
    assert ciphertext_layout(wrapped) == "asn1"
    raw = to_c1c3c2(wrapped)
    assert ciphertext_layout(raw) == "c1c3c2" and len(raw) == 65 + 32 + 16
    assert key.decrypt(wrapped) == key.decrypt(raw) == b"0123456789abcdef"
    with pytest.raises(ValueError):
        Sm2PrivateKey.generate().decrypt(wrapped)
    with pytest.raises(ValueError, match="neither"):
        ciphertext_layout(b"\x05" + raw[1:])
    # OpenSSL encrypts to our public key (GM/T 0009 ASN.1), we unwrap; we encrypt, OpenSSL unwraps
    (tmp_path / "pub.pem").write_bytes(key.public.to_pem())
    (tmp_path / "k.pem").write_bytes(key.to_pem())
    theirs = openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", str(tmp_path / "pub.pem"), stdin=b"SM4 key 16 bytes")
    assert theirs.returncode == 0, theirs.stderr
    assert ciphertext_layout(theirs.stdout) == "asn1"
    assert key.decrypt(theirs.stdout) == key.decrypt(to_c1c3c2(theirs.stdout)) == b"SM4 key 16 bytes"
    ours = openssl("pkeyutl", "-decrypt", "-inkey", str(tmp_path / "k.pem"), stdin=key.public.encrypt(b"secret key"))
    assert ours.returncode == 0 and ours.stdout == b"secret key"


def test_signature_time_window_applies_to_gm_as_to_intl() -> None:
    key = Sm2PrivateKey.generate()
    request = httpx.Request("GET", "http://127.0.0.1/v1/events")
    signing.sign_request(request, signing.KeySigner("k", key), now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    with pytest.raises(SignatureError) as caught:
        signing.verify_request(
            method="GET", url=str(request.url), headers=list(request.headers.items()), body=b"", keys={"k": key.public},
            suite=GM,
        )  # fmt: skip
    assert caught.value.code == "clock_skew"  # type: ignore[attr-defined]


def test_import_sdk_stays_light() -> None:
    out = subprocess.run(
        [__import__("sys").executable, "-c", "import sys, sdk, sdk.suites; print('gmssl_pyx' in sys.modules)"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "False"
    assert sdk.signing.DIGEST_OF["sm2-sm3"] == "sm3"
