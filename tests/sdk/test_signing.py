"""RFC 9421 signing: the RFC's own example bit for bit, and independent verification."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, InvalidSignature, algorithms
from http_message_signatures.resolvers import MappingKeyResolver

from sdk.errors import SignatureError
from sdk.gm.sm2 import Sm2PublicKey
from sdk.signing import (
    KeySigner,
    PublicKey,
    RequestSigningAuth,
    RotatingSigner,
    VerifiedRequest,
    content_digest,
    generate_private_key,
    jwk_fingerprint,
    jwk_from_public_key,
    public_key_from_jwk,
    sign_request,
    verify_request,
)

# RFC 9421 Appendix B.1.4, test-key-ed25519 (the RFC's published test key)
RFC_ED25519_D = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU"
RFC_ED25519_X = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
RFC_B26_SIGNATURE = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="


def _rfc_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(RFC_ED25519_D + "="))


def test_rfc9421_b26_ed25519_example_bit_for_bit() -> None:
    request = httpx.Request(
        "POST",
        "https://example.com/foo?param=Value&Pet=dog",
        headers={
            "Host": "example.com",
            "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
            "Content-Type": "application/json",
            "Content-Length": "18",
        },
        content=b'{"hello": "world"}',
    )
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519)
    prepared = signer.prepare(
        request,
        key_id="test-key-ed25519",
        created=dt.datetime.fromtimestamp(1618884473, dt.UTC),
        include_alg=False,
        label="sig-b26",
        covered_component_ids=("date", "@method", "@path", "@authority", "content-type", "content-length"),
    )
    assert prepared.signature_base.decode() == (
        '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        '"@method": POST\n'
        '"@path": /foo\n'
        '"@authority": example.com\n'
        '"content-type": application/json\n'
        '"content-length": 18\n'
        '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"'
    )
    # our Signer protocol produces the raw signature the RFC publishes
    raw = KeySigner("test-key-ed25519", _rfc_key()).sign(prepared.signature_base)
    signer.apply(request, prepared, raw)
    assert request.headers["Signature"] == f"sig-b26=:{RFC_B26_SIGNATURE}:"
    assert jwk_from_public_key(_rfc_key().public_key()).x == RFC_ED25519_X


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256-sha256"])
def test_sdk_signature_verifies_with_the_library_verifier_given_only_the_public_key(algorithm: str) -> None:
    key = generate_private_key(algorithm)  # type: ignore[arg-type]
    request = httpx.Request(
        "POST",
        "http://127.0.0.1:8000/v1/applications?x=1",
        headers={"Content-Type": "application/json", "Idempotency-Key": "k-1"},
        content=b'{"a":1}',
    )
    sign_request(request, KeySigner("bank-key", key))
    # an independent party knows only the public key, as a JWK
    public = public_key_from_jwk(jwk_from_public_key(key.public_key()).model_dump())
    assert not isinstance(public, Sm2PublicKey)  # the library knows the intl suite only
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519 if algorithm == "ed25519" else algorithms.ECDSA_P256_SHA256,
        key_resolver=MappingKeyResolver(public_keys={"bank-key": public}, private_keys={}),
    )
    [result] = verifier.verify(
        request,
        expect_tag="regbridge",
        require_components=("@method", "@target-uri", "content-digest", "content-type", "idempotency-key"),
        body=request.content,
    )
    assert result.parameters["keyid"] == "bank-key" and result.parameters["alg"] == algorithm
    assert int(result.parameters["expires"]) > int(result.parameters["created"])
    assert result.nonce
    request.headers["Idempotency-Key"] = "k-2"
    with pytest.raises(InvalidSignature):
        verifier.verify(request, expect_tag="regbridge", body=request.content)


def test_each_signing_is_fresh() -> None:
    signer = KeySigner("k", generate_private_key())
    request = httpx.Request("GET", "http://127.0.0.1/v1/events")
    sign_request(request, signer, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    first = request.headers["Signature-Input"]
    sign_request(request, signer, now=dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=dt.UTC))
    second = request.headers["Signature-Input"]
    assert first != second and "nonce=" in second
    assert request.headers["Content-Digest"] == content_digest(b"")
    assert request.headers.get_list("Signature-Input") == [second]


def _signed(key: ed25519.Ed25519PrivateKey, body: bytes = b'{"a":1}', **kw: object) -> httpx.Request:
    request = httpx.Request("POST", "http://127.0.0.1/v1/x", headers={"Content-Type": "application/json"}, content=body)
    sign_request(request, KeySigner("k1", key), **kw)  # type: ignore[arg-type]
    return request


def _verify(
    request: httpx.Request, keys: Mapping[str, PublicKey], body: bytes | None = None, **kw: Any
) -> VerifiedRequest:
    return verify_request(
        method=request.method,
        url=str(request.url),
        headers=request.headers.items(),
        body=request.content if body is None else body,
        keys=keys,
        **kw,
    )


def test_verify_request_refuses_each_fault_with_its_own_code() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    keys = {"k1": key.public_key()}
    ok = _signed(key)
    assert _verify(ok, keys).key_id == "k1"

    cases: dict[str, Callable[[], object]] = {
        "digest_mismatch": lambda: _verify(_signed(key), keys, body=b'{"a":2}'),
        "unknown_key": lambda: _verify(_signed(key), {"other": key.public_key()}),
        "clock_skew": lambda: _verify(_signed(key, now=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=600)), keys),
        "signature_invalid": lambda: _verify(_signed(key), {"k1": ed25519.Ed25519PrivateKey.generate().public_key()}),
        "signature_missing": lambda: verify_request(
            method="GET", url="http://127.0.0.1/", headers=[], body=b"", keys=keys
        ),
        "signature_expired": lambda: _verify(
            _signed(key, lifetime=-1), keys, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        ),
    }
    for code, attempt in cases.items():
        with pytest.raises(SignatureError) as exc:
            attempt()
        assert exc.value.code == code, (code, str(exc.value))  # type: ignore[attr-defined]


def test_jwk_round_trip_and_fingerprint() -> None:
    for algorithm in ("ed25519", "ecdsa-p256-sha256"):
        key = generate_private_key(algorithm)
        jwk = jwk_from_public_key(key.public_key())
        assert jwk_from_public_key(public_key_from_jwk(jwk)) == jwk
        assert len(jwk_fingerprint(jwk)) == 64
    # RFC 8037 A.3: the thumbprint of the RFC's Ed25519 key
    from sdk.models import PublicJwk

    rfc8037 = PublicJwk(kty="OKP", crv="Ed25519", x="11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    expected = base64.urlsafe_b64decode("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k=").hex()
    assert jwk_fingerprint(rfc8037) == expected


def test_a_rotating_signer_signs_each_request_wholly_with_one_key() -> None:
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    rotating = RotatingSigner(KeySigner("old", old))
    keys = {"old": old.public_key(), "new": new.public_key()}

    class SwitchWhileSigning:
        """The old key, whose id being read switches the rotating signer to the new key (mid-signing)."""

        algorithm = "ed25519"

        @property
        def key_id(self) -> str:
            rotating.switch(KeySigner("new", new))
            return "old"

        def sign(self, data: bytes) -> bytes:
            return old.sign(data)

        def public_key(self) -> ed25519.Ed25519PublicKey:
            return old.public_key()

    rotating.switch(SwitchWhileSigning())  # type: ignore[arg-type]
    auth = RequestSigningAuth(rotating)
    first = next(auth.auth_flow(httpx.Request("GET", "http://127.0.0.1/v1/events")))
    assert _verify(first, keys).key_id == "old"
    second = next(auth.auth_flow(httpx.Request("GET", "http://127.0.0.1/v1/events")))
    assert _verify(second, keys).key_id == "new"
    with pytest.raises(SignatureError):
        _verify(second, {"new": old.public_key()})
