"""Request signing: RFC 9421 HTTP Message Signatures with an RFC 9530 ``Content-Digest``.

Built on the ``http-message-signatures`` library (its ``prepare``/``apply`` split lets the
private key live anywhere). A :class:`Signer` is anything that can say its key id and
algorithm and sign bytes: :class:`KeySigner` holds a key in memory; the agent plugs in a
keyring-backed signer, and an HSM (PKCS#11) or SM2 signer is another implementation of the
same four members.

Every request is signed afresh — new ``created``, ``expires`` and ``nonce`` — so a retried
request is never a replay. The signature covers::

    ("@method" "@target-uri" "content-digest" "content-type"? "idempotency-key"?)
    ;created;expires;nonce;keyid;alg;tag="regbridge"

``verify_request`` is the centre's side of the same rules; the sandbox uses it, and so does
the webhook helper (with the roles reversed).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import secrets
import threading
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import http_sf
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)

from .models.institution import PublicJwk

__all__ = [
    "DEFAULT_COVERED",
    "SIGNATURE_LABEL",
    "SIGNATURE_TAG",
    "Algorithm",
    "KeySigner",
    "PrivateKey",
    "PublicKey",
    "RequestSigningAuth",
    "RotatingSigner",
    "Signer",
    "VerifiedRequest",
    "content_digest",
    "generate_private_key",
    "jwk_fingerprint",
    "jwk_from_public_key",
    "public_key_from_jwk",
    "sign_request",
    "verify_request",
]

Algorithm = Literal["ed25519", "ecdsa-p256-sha256"]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

SIGNATURE_LABEL = "sig1"
SIGNATURE_TAG = "regbridge"
DEFAULT_COVERED = ("@method", "@target-uri", "content-digest")
_OPTIONAL_COVERED = ("content-type", "idempotency-key")
_ALGORITHMS: dict[str, type[algorithms.HTTPSignatureAlgorithm]] = {
    "ed25519": algorithms.ED25519,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
}


@runtime_checkable
class Signer(Protocol):
    """Signs request signature bases. Implement this to keep the key in a keyring or an HSM."""

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> Algorithm: ...

    def sign(self, data: bytes) -> bytes:
        """Return the raw signature (ed25519: 64 bytes; ECDSA P-256: r‖s, 64 bytes)."""
        ...

    def public_key(self) -> PublicKey: ...


@dataclass(frozen=True)
class KeySigner:
    """A signer over a private key held in memory."""

    key_id: str
    private_key: PrivateKey = field(repr=False)

    @property
    def algorithm(self) -> Algorithm:
        return algorithm_of(self.private_key)

    def sign(self, data: bytes) -> bytes:
        return _ALGORITHMS[self.algorithm](private_key=self.private_key).sign(data)  # type: ignore[no-any-return]

    def public_key(self) -> PublicKey:
        return self.private_key.public_key()


class RotatingSigner:
    """A signer whose key can be switched while requests are being sent (key rotation).

    Each request is signed wholly by the key that was current when its signing began
    (:meth:`current`), so a switch never mixes one key's id with another's signature. Requests
    signed just before a switch still land while the centre's grace period for the old key runs.
    """

    def __init__(self, initial: Signer) -> None:
        self._current = initial
        self._lock = threading.Lock()

    def current(self) -> Signer:
        with self._lock:
            return self._current

    def switch(self, signer: Signer) -> Signer:
        """Sign with ``signer`` from now on; answers the signer it replaces."""
        with self._lock:
            previous, self._current = self._current, signer
        return previous

    @property
    def key_id(self) -> str:
        return self.current().key_id

    @property
    def algorithm(self) -> Algorithm:
        return self.current().algorithm

    def sign(self, data: bytes) -> bytes:
        return self.current().sign(data)

    def public_key(self) -> PublicKey:
        return self.current().public_key()


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key.curve, ec.SECP256R1):
        return "ecdsa-p256-sha256"
    raise ValueError(f"unsupported curve {key.curve.name}; use Ed25519 or P-256")


def generate_private_key(algorithm: Algorithm = "ed25519") -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256-sha256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported algorithm {algorithm!r}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwk_from_public_key(key: PublicKey) -> PublicJwk:
    """The JWK (RFC 8037 / RFC 7518) of an Ed25519 or P-256 public key."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicJwk(kty="OKP", crv="Ed25519", x=_b64url(raw))
    numbers = key.public_numbers()
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("only P-256 EC keys are supported")
    return PublicJwk(
        kty="EC", crv="P-256", x=_b64url(numbers.x.to_bytes(32, "big")), y=_b64url(numbers.y.to_bytes(32, "big"))
    )


def public_key_from_jwk(jwk: PublicJwk | Mapping[str, Any]) -> PublicKey:
    """The public key a JWK describes.

    Raises:
        ValueError: the JWK is malformed or the point is not on the curve.
    """
    j = jwk if isinstance(jwk, PublicJwk) else PublicJwk.model_validate(jwk)
    if j.kty == "OKP":
        raw = _unb64url(j.x)
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    assert j.y is not None
    x, y = int.from_bytes(_unb64url(j.x), "big"), int.from_bytes(_unb64url(j.y), "big")
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


def jwk_fingerprint(jwk: PublicJwk) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), hex."""
    members = {"crv": jwk.crv, "kty": jwk.kty, "x": jwk.x}
    if jwk.y is not None:
        members["y"] = jwk.y
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` field value (sha-256) of ``body``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


class _ExternalKey(HTTPSignatureKeyResolver):
    """Verification keys by key id, from a caller's lookup."""

    def __init__(self, lookup: Mapping[str, PublicKey]) -> None:
        self._lookup = lookup

    def resolve_public_key(self, key_id: str) -> PublicKey | None:
        return self._lookup.get(key_id)

    def resolve_private_key(self, key_id: str) -> Any:  # pragma: no cover - never signs
        raise KeyError(key_id)


def sign_request(
    request: httpx.Request,
    signer: Signer,
    *,
    now: _dt.datetime | None = None,
    lifetime: int = 60,
    nonce: str | None = None,
) -> None:
    """Sign ``request`` in place: ``Content-Digest``, ``Signature-Input`` and ``Signature``.

    Args:
        request: a request whose body has been read (``request.content`` is available).
        signer: the key to sign with.
        now: the signing time (tests); defaults to the current time.
        lifetime: seconds until ``expires``; short, so a captured request soon becomes useless.
        nonce: defaults to 128 random bits.
    """
    created = now or _dt.datetime.now(_dt.UTC)
    for name in ("Content-Digest", "Signature", "Signature-Input"):
        if name in request.headers:
            del request.headers[name]
    covered = list(DEFAULT_COVERED)
    covered += [h for h in _OPTIONAL_COVERED if h in request.headers]
    message_signer = HTTPMessageSigner(signature_algorithm=_ALGORITHMS[signer.algorithm])
    prepared = message_signer.prepare(
        request,
        key_id=signer.key_id,
        created=created,
        expires=created + _dt.timedelta(seconds=lifetime),
        nonce=nonce or secrets.token_urlsafe(16),
        label=SIGNATURE_LABEL,
        tag=SIGNATURE_TAG,
        covered_component_ids=covered,
        body=request.content,
    )
    signature = signer.sign(prepared.signature_base)
    # What ``apply()`` writes, written directly: ``apply()`` first builds the whole signature base a second
    # time to check the request did not change since ``prepare()`` — it cannot have, this is one call on a
    # request no one else holds — and that second pass was half of the cost of signing (bench/profile.md).
    request.headers["Signature-Input"] = f"{prepared.label}={prepared.signature_params}"
    request.headers["Signature"] = f"{prepared.label}=:{base64.b64encode(signature).decode('ascii')}:"


@dataclass(frozen=True)
class VerifiedRequest:
    """What a verified signature says: who signed, when, with which nonce."""

    key_id: str
    algorithm: str
    created: int
    expires: int | None
    nonce: str | None
    covered: tuple[str, ...]


class _Message:
    """The minimum a verifier needs of a request: method, url and headers."""

    def __init__(self, method: str, url: str, headers: Iterable[tuple[str, str]]) -> None:
        self.method = method.upper()
        self.url = url
        self.headers = list(headers)


class _Headers(list[tuple[str, str]]):
    def items(self) -> list[tuple[str, str]]:
        return list(self)


def verify_request(
    *,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    keys: Mapping[str, PublicKey],
    max_skew: int = 300,
    now: _dt.datetime | None = None,
) -> VerifiedRequest:
    """Verify a request's RFC 9421 signature and its ``Content-Digest`` (the centre's side).

    Checks the key (``keys`` maps key id → public key), the algorithm, that ``@method``,
    ``@target-uri`` and ``content-digest`` are covered, that the digest matches ``body``,
    ``created`` within ±``max_skew`` seconds of ``now`` and ``expires`` not passed. Replay
    (a nonce seen before) is the caller's check: it owns the memory of nonces.

    Raises:
        SignatureError: with ``.code`` one of ``signature_missing``, ``signature_invalid``,
            ``unknown_key``, ``digest_mismatch``, ``clock_skew``, ``signature_expired``.
    """
    from .errors import SignatureError

    def fail(code: str, message: str) -> SignatureError:
        err = SignatureError(message)
        err.code = code  # type: ignore[attr-defined]
        return err

    header_list = _Headers((k.lower(), v) for k, v in headers)
    names = {k for k, _ in header_list}
    if "signature" not in names or "signature-input" not in names:
        raise fail("signature_missing", "the request carries no Signature / Signature-Input")
    digest_values = [v for k, v in header_list if k == "content-digest"]
    if not digest_values:
        raise fail("digest_mismatch", "the request carries no Content-Digest")
    if digest_values[0].strip() != content_digest(body):
        raise fail("digest_mismatch", "Content-Digest does not match the body")

    params = _signature_params(dict(header_list).get("signature-input", ""))
    key_id = str(params.get("keyid", ""))
    alg = str(params.get("alg", ""))
    if not key_id or key_id not in keys:
        raise fail("unknown_key", f"unknown key id {key_id!r}")
    key = keys[key_id]
    expected_alg = algorithm_of(key)
    if alg and alg != expected_alg:
        raise fail("signature_invalid", f"algorithm {alg!r} does not match the key ({expected_alg})")
    current = now or _dt.datetime.now(_dt.UTC)
    created = params.get("created")
    if not isinstance(created, int):
        raise fail("signature_invalid", "the signature has no created time")
    if abs(current.timestamp() - created) > max_skew:
        raise fail("clock_skew", f"signature created {created} is more than {max_skew}s from the centre's clock")
    expires = params.get("expires")
    if isinstance(expires, int) and expires < current.timestamp():
        raise fail("signature_expired", "the signature has expired")

    verifier = HTTPMessageVerifier(signature_algorithm=_ALGORITHMS[expected_alg], key_resolver=_ExternalKey(keys))
    # created/expires were judged above against the centre's own clock and window
    verifier.max_clock_skew = _dt.timedelta(days=36500)
    message = _Message(method, url, header_list)
    message.headers = header_list
    try:
        results = verifier.verify(
            message,
            max_age=None,
            expect_tag=SIGNATURE_TAG,
            require_components=DEFAULT_COVERED,
            body=body,
        )
    except InvalidSignature as e:
        raise fail("signature_invalid", f"signature does not verify: {e}") from None
    except Exception as e:  # malformed structured fields and the like
        raise fail("signature_invalid", f"signature is malformed: {e}") from None
    result = results[0]
    return VerifiedRequest(
        key_id=key_id,
        algorithm=expected_alg,
        created=created,
        expires=expires if isinstance(expires, int) else None,
        nonce=result.nonce,
        covered=tuple(k.strip('"') for k in result.covered_components if k != '"@signature-params"'),
    )


def _signature_params(signature_input: str) -> dict[str, int | str]:
    """The parameters of the ``regbridge``-tagged member of a Signature-Input field."""
    try:
        parsed: Any = http_sf.parse(signature_input.encode(), tltype="dictionary")
    except Exception:
        return {}
    for _label, (_members, params) in dict(parsed).items():
        if params.get("tag") == SIGNATURE_TAG:
            return {k: v for k, v in params.items() if isinstance(v, int | str)}
    return {}


class RequestSigningAuth(httpx.Auth):
    """Signs every request it sees, afresh on every attempt (httpx calls it per send)."""

    requires_request_body = True

    def __init__(self, signer: Signer, *, lifetime: int = 60) -> None:
        self.signer = signer
        self.lifetime = lifetime

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        signer = self.signer.current() if isinstance(self.signer, RotatingSigner) else self.signer
        sign_request(request, signer, lifetime=self.lifetime)
        yield request
