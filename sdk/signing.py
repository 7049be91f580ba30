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
import secrets
import threading
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import httpx
from cryptography.hazmat.primitives import hashes
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.digests import ContentDigest

from ._keys import (
    Algorithm,
    PrivateKey,
    PublicKey,
    check_ed25519_point,
    generate_private_key,
    jwk_fingerprint,
    jwk_from_public_key,
    public_key_from_jwk,
)
from ._keys import algorithm_of as algorithm_of
from ._signature_input import (
    SIGNATURE_LABEL,
    SIGNATURE_TAG,
    SignatureInput,
    _dictionary,
    _fail,
)
from ._signature_input import SINGLE_FIELDS as SINGLE_FIELDS
from .gm.sm2 import Sm2PrivateKey, Sm2PublicKey

if TYPE_CHECKING:
    from .suites import Suite

__all__ = [
    "DEFAULT_COVERED",
    "DIGEST_OF",
    "SIGNATURE_LABEL",
    "SIGNATURE_TAG",
    "SM2_SM3",
    "Algorithm",
    "KeySigner",
    "PrivateKey",
    "PublicKey",
    "RequestSigningAuth",
    "RotatingSigner",
    "SignatureInput",
    "Signer",
    "VerifiedRequest",
    "check_content_digest",
    "check_ed25519_point",
    "content_digest",
    "generate_private_key",
    "jwk_fingerprint",
    "jwk_from_public_key",
    "public_key_from_jwk",
    "sign_request",
    "verify_request",
]


DEFAULT_COVERED = ("@method", "@target-uri", "content-digest")
_OPTIONAL_COVERED = ("content-type", "idempotency-key")


class SM2_SM3(algorithms.HTTPSignatureAlgorithm):
    """``sm2-sm3`` (registered by us, docs/api.md §5): SM2 over SM3(Z_A ‖ signature base), DER (r, s)."""

    algorithm_id = "sm2-sm3"

    def __init__(self, public_key: Sm2PublicKey | None = None, private_key: Sm2PrivateKey | None = None) -> None:
        if public_key is not None and not isinstance(public_key, Sm2PublicKey):
            raise TypeError("sm2-sm3 needs an SM2 public key")
        if private_key is not None and not isinstance(private_key, Sm2PrivateKey):
            raise TypeError("sm2-sm3 needs an SM2 private key")
        self.public_key, self.private_key = public_key, private_key

    def sign(self, message: bytes) -> bytes:
        assert self.private_key is not None
        return self.private_key.sign(message)

    def verify(self, signature: bytes, message: bytes) -> None:
        assert self.public_key is not None
        self.public_key.verify(signature, message)


_ALGORITHMS: dict[str, type[algorithms.HTTPSignatureAlgorithm]] = {
    "ed25519": algorithms.ED25519,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
    "sm2-sm3": SM2_SM3,
}


def _sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


class _Sm3:
    """SM3 with hashlib's shape (what the digest tables call)."""

    def __init__(self, data: bytes = b"") -> None:
        self._digest = _sm3(data)

    def digest(self) -> bytes:
        return self._digest


class _Sm3ContentDigest(ContentDigest):
    """RFC 9530 ``Content-Digest`` with ``sm3`` (the gm suite's digest)."""

    algorithm = "sm3"
    _hashers: ClassVar[dict[str, Any]] = {**ContentDigest._hashers, "sm3": _Sm3}


class _Sm3MessageSigner(HTTPMessageSigner):
    content_digest_class = _Sm3ContentDigest


#: the Content-Digest each signature algorithm's requests are sent with (its suite's digest)
DIGEST_OF: dict[str, str] = {"ed25519": "sha-256", "ecdsa-p256-sha256": "sha-256", "sm2-sm3": "sm3"}


@runtime_checkable
class Signer(Protocol):
    """Signs request signature bases. Implement this to keep the key in a keyring or an HSM."""

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> Algorithm: ...

    def sign(self, data: bytes) -> bytes:
        """Return the signature (ed25519: 64 bytes; ECDSA P-256: r‖s, 64 bytes; SM2: DER (r, s))."""
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


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The RFC 9530 ``Content-Digest`` field value of ``body`` (``sha-256``, ``sha-512`` or ``sm3``)."""
    return f"{algorithm}=:" + base64.b64encode(_DIGESTS[algorithm](body).digest()).decode() + ":"


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
    signer_class = _Sm3MessageSigner if DIGEST_OF[signer.algorithm] == "sm3" else HTTPMessageSigner
    message_signer = signer_class(signature_algorithm=_ALGORITHMS[signer.algorithm])
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
        self.headers = _Headers(headers)


class _Headers(list[tuple[str, str]]):
    def items(self) -> list[tuple[str, str]]:
        return list(self)


#: the RFC 9530 digest algorithms a verifier computes; any other key in Content-Digest is ignored
_DIGESTS: dict[str, Callable[[bytes], Any]] = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512, "sm3": _Sm3}
KeyLookup = Mapping[str, PublicKey] | Callable[[str], "PublicKey | None"]


def check_content_digest(values: list[str], body: bytes, *, required: str | None = None) -> None:
    """Check an RFC 9530 ``Content-Digest`` (every field line, as one dictionary) against ``body``.

    Every algorithm the verifier knows (``sha-256``, ``sha-512``, ``sm3``) that the field carries
    must match; unknown ones are ignored; at least one known one must be present, and
    ``required`` (a suite's digest) must be among them when given.

    Raises:
        SignatureError: ``digest_mismatch``.
    """
    if not values:
        raise _fail("digest_mismatch", "the request carries no Content-Digest")
    try:
        members = _dictionary("Content-Digest", ", ".join(values))
    except Exception:
        raise _fail("digest_mismatch", "Content-Digest is malformed") from None
    known = [(k, v) for k, (v, _p) in members.items() if k in _DIGESTS]
    if not known:
        raise _fail("digest_mismatch", f"Content-Digest carries none of {', '.join(_DIGESTS)}")
    if required is not None and required not in dict(known):
        raise _fail("digest_mismatch", f"Content-Digest must carry {required} (the centre's crypto suite)")
    for algorithm, value in known:
        if not isinstance(value, bytes) or value != _DIGESTS[algorithm](body).digest():
            raise _fail("digest_mismatch", f"Content-Digest ({algorithm}) does not match the body")


def verify_request(
    *,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    keys: KeyLookup,
    max_skew: int = 300,
    now: _dt.datetime | None = None,
    suite: Suite | None = None,
) -> VerifiedRequest:
    """Verify a request's RFC 9421 signature and its ``Content-Digest`` (the centre's side).

    The signature labelled ``sig1`` is parsed once (:class:`SignatureInput`) and every check
    reads that one structure: the key (``keys`` maps key id → public key, or is a function
    answering the key or ``None``), the algorithm, the tag, that ``@method``, ``@target-uri``
    and ``content-digest`` are covered — and ``content-type`` and ``idempotency-key`` whenever
    the request has them — that the digest matches ``body``, and the clock: ``created`` and
    ``expires`` are both judged with the same ±``max_skew`` seconds of tolerance against
    ``now`` (a signature whose ``expires`` is before its ``created`` is expired). ``url`` is
    the request's target as sent (not decoded) on the verifier's own scheme and authority.
    Replay (a nonce seen before) is the caller's check: it owns the memory of nonces.
    With a ``suite`` (:mod:`sdk.suites`), the key's algorithm must be one of the suite's and the
    digest must carry the suite's (``sm3`` in ``gm``); SM2 keys verify with the suite's user id.

    Raises:
        SignatureError: with ``.code`` one of ``signature_missing``, ``signature_invalid``,
            ``unknown_key``, ``digest_mismatch``, ``clock_skew``, ``signature_expired``.
    """
    header_list = [(k.lower(), v) for k, v in headers]
    parsed = SignatureInput.parse(header_list)
    check_content_digest(
        [v for k, v in header_list if k == "content-digest"], body, required=suite.digest if suite else None
    )

    key_id = parsed.key_id
    key = keys(key_id) if callable(keys) else keys.get(key_id)
    if key is None:
        raise _fail("unknown_key", f"unknown key id {key_id!r}")
    expected_alg = algorithm_of(key)
    if suite is not None:
        if expected_alg not in suite.algorithms:
            raise _fail("signature_invalid", f"the {suite.name} suite does not accept {expected_alg} keys")
        key = suite.adopt(key)
    if parsed.alg is not None and parsed.alg != expected_alg:
        raise _fail("signature_invalid", f"algorithm {parsed.alg!r} does not match the key ({expected_alg})")
    present = {k for k, _ in header_list}
    required = list(DEFAULT_COVERED) + [h for h in _OPTIONAL_COVERED if h in present]
    missing = [c for c in required if c not in parsed.covered]
    if missing:
        raise _fail("signature_invalid", f"the signature does not cover {', '.join(missing)}")
    current = (now or _dt.datetime.now(_dt.UTC)).timestamp()
    if abs(current - parsed.created) > max_skew:
        raise _fail("clock_skew", f"signature created {parsed.created} is more than {max_skew}s from the clock")
    expires = parsed.expires
    if expires is not None and (expires < parsed.created or expires + max_skew < current):
        raise _fail("signature_expired", f"the signature expired at {expires}")

    # The library builds the signature base and checks the signature — over this one parsed
    # signature alone, re-serialised, so it cannot read another line or member than we did.
    signature_input, signature = parsed.field_values()
    others = [(k, v) for k, v in header_list if k not in ("signature-input", "signature")]
    message = _Message(method, url, [*others, ("signature-input", signature_input), ("signature", signature)])
    resolver = _ExternalKey({key_id: key})
    verifier = HTTPMessageVerifier(signature_algorithm=_ALGORITHMS[expected_alg], key_resolver=resolver)
    verifier.max_clock_skew = _dt.timedelta(days=36500)  # the clock was judged above, with our window
    try:
        results = verifier.verify(message, max_age=None, expect_tag=SIGNATURE_TAG, expect_label=parsed.label)
    except InvalidSignature as e:
        raise _fail("signature_invalid", f"signature does not verify: {e}") from None
    except Exception as e:  # malformed components and the like
        raise _fail("signature_invalid", f"signature is malformed: {e}") from None
    if len(results) != 1 or results[0].parameters.get("nonce") != parsed.nonce:  # pragma: no cover - defensive
        raise _fail("signature_invalid", "the signature is ambiguous")
    return VerifiedRequest(
        key_id=key_id,
        algorithm=expected_alg,
        created=parsed.created,
        expires=expires,
        nonce=parsed.nonce,
        covered=parsed.covered,
    )


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
