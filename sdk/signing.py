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
import functools
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import http_sf
import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.digests import ContentDigest

from .gm.sm2 import Sm2PrivateKey, Sm2PublicKey
from .models.institution import PublicJwk

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

Algorithm = Literal["ed25519", "ecdsa-p256-sha256", "sm2-sm3"]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | Sm2PrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | Sm2PublicKey

SIGNATURE_LABEL = "sig1"
SIGNATURE_TAG = "regbridge"
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


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, Sm2PrivateKey | Sm2PublicKey):
        return "sm2-sm3"
    if isinstance(key.curve, ec.SECP256R1):
        return "ecdsa-p256-sha256"
    raise ValueError(f"unsupported curve {key.curve.name}; use Ed25519, P-256 or SM2")


def generate_private_key(algorithm: Algorithm = "ed25519") -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256-sha256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "sm2-sm3":
        return Sm2PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {algorithm!r}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwk_from_public_key(key: PublicKey) -> PublicJwk:
    """The JWK (RFC 8037 / RFC 7518) of an Ed25519 or P-256 public key; SM2: ``kty`` EC, ``crv`` SM2."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicJwk(kty="OKP", crv="Ed25519", x=_b64url(raw))
    if isinstance(key, Sm2PublicKey):
        return PublicJwk(kty="EC", crv="SM2", x=_b64url(key.raw[:32]), y=_b64url(key.raw[32:]))
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
            raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
        check_ed25519_point(raw)
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    assert j.y is not None
    raw_x, raw_y = _unb64url(j.x), _unb64url(j.y)
    if len(raw_x) != 32 or len(raw_y) != 32:
        raise ValueError(f"a {j.crv} public key has 32-byte x and y, not {len(raw_x)} and {len(raw_y)}")
    if j.crv == "SM2":
        return Sm2PublicKey(raw_x + raw_y)  # refuses a point off the curve
    x, y = int.from_bytes(raw_x, "big"), int.from_bytes(raw_y, "big")
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()  # refuses a point off the curve


# Ed25519 (RFC 8032 §5.1): the field, the curve constant d, the prime order L of the base point's group
_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_L = 2**252 + 27742317777372353535851937790883648493
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def check_ed25519_point(raw: bytes) -> None:
    """Refuse an Ed25519 public key that is not a proper one (RFC 8032 §5.1.3 decoding, then order).

    Refused: a non-canonical encoding (y ≥ p, or x = 0 with the sign bit set), a y that is no
    point of the curve, a point of small order (the all-zero key, the identity and the other
    eight-torsion points, with which signatures can be forged), and a point outside the prime-order
    subgroup (an honest key ``a·B`` is always inside).

    Raises:
        ValueError: saying which.
    """
    problem = _ed25519_point_problem(bytes(raw))
    if problem:
        raise ValueError(problem)


@functools.lru_cache(maxsize=4096)
def _ed25519_point_problem(raw: bytes) -> str | None:
    """What is wrong with an encoded Ed25519 point, or ``None`` (cached: a key is checked once per process)."""
    try:
        _check_ed25519_point(raw)
    except ValueError as e:
        return str(e)
    return None


def _check_ed25519_point(raw: bytes) -> None:
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    sign = raw[31] >> 7
    if y >= _P:
        raise ValueError("the Ed25519 key is not canonically encoded (y ≥ p)")
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        x = (x * _SQRT_M1) % _P
        if (v * x * x - u) % _P != 0:
            raise ValueError("the Ed25519 key is not a point of the curve")
    if x == 0 and sign:
        raise ValueError("the Ed25519 key is not canonically encoded (x = 0 with the sign bit set)")
    if x & 1 != sign:
        x = _P - x
    point = (x, y, 1, (x * y) % _P)
    if _is_identity(_multiply(point, 8)):
        raise ValueError("the Ed25519 key is a point of small order")
    if not _is_identity(_multiply(point, _L)):
        raise ValueError("the Ed25519 key is not in the prime-order subgroup")


_Point = tuple[int, int, int, int]


def _add(a: _Point, b: _Point) -> _Point:
    """Extended twisted Edwards coordinates (RFC 8032 §5.1.4)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa, bb = (y1 - x1) * (y2 - x2) % _P, (y1 + x1) * (y2 + x2) % _P
    cc, dd = 2 * _D * t1 * t2 % _P, 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _multiply(point: _Point, n: int) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while n:
        if n & 1:
            result = _add(result, point)
        point = _add(point, point)
        n >>= 1
    return result


def _is_identity(point: _Point) -> bool:
    x, y, z, _t = point
    return x % _P == 0 and (y - z) % _P == 0


def jwk_fingerprint(jwk: PublicJwk) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), hex."""
    members = {"crv": jwk.crv, "kty": jwk.kty, "x": jwk.x}
    if jwk.y is not None:
        members["y"] = jwk.y
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()


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


#: fields a request may carry once only: a second line would let two readers see two values
SINGLE_FIELDS = ("signature-input", "signature", "content-type", "idempotency-key", "host", "authorization")
#: the RFC 9530 digest algorithms a verifier computes; any other key in Content-Digest is ignored
_DIGESTS: dict[str, Callable[[bytes], Any]] = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512, "sm3": _Sm3}
_PARAMETERS = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})
KeyLookup = Mapping[str, PublicKey] | Callable[[str], "PublicKey | None"]


class SignatureInput:
    """The one signature a request is judged by, parsed once from its headers.

    Every part of the authentication — label, key id, algorithm, ``created``/``expires``,
    ``nonce``, tag and the covered components — comes from this one structure; nothing reads
    ``Signature-Input`` or ``Signature`` again. Anything ambiguous is refused: a repeated
    ``Signature-Input``, ``Signature`` (or another single-valued field: ``Content-Type``,
    ``Idempotency-Key``, ``Host``), a label given twice, a parameter given twice, more than one
    ``regbridge`` signature, or no member with the label asked for.
    """

    def __init__(self, label: str, covered: tuple[str, ...], params: dict[str, int | str], signature: bytes) -> None:
        self.label = label
        self.covered = covered
        self.params = params
        self.signature = signature

    @property
    def key_id(self) -> str:
        value = self.params.get("keyid")
        return value if isinstance(value, str) else ""

    @property
    def alg(self) -> str | None:
        value = self.params.get("alg")
        return value if isinstance(value, str) else None

    @property
    def created(self) -> int:
        value = self.params["created"]
        assert isinstance(value, int)
        return value

    @property
    def expires(self) -> int | None:
        value = self.params.get("expires")
        return value if isinstance(value, int) else None

    @property
    def nonce(self) -> str | None:
        value = self.params.get("nonce")
        return value if isinstance(value, str) else None

    def field_values(self) -> tuple[str, str]:
        """``Signature-Input`` and ``Signature`` holding this signature alone, serialised afresh."""
        members = [(f'"{c}"' if not c.startswith('"') else c) for c in self.covered]
        params = "".join(
            f";{k}={v}" if isinstance(v, int) else f";{k}={http_sf.ser(v)}" for k, v in self.params.items()
        )
        signature = base64.b64encode(self.signature).decode("ascii")
        return f"{self.label}=({' '.join(members)}){params}", f"{self.label}=:{signature}:"

    @classmethod
    def parse(cls, headers: Iterable[tuple[str, str]], *, label: str = SIGNATURE_LABEL) -> SignatureInput:
        """The ``label`` signature of ``headers``, or :class:`SignatureError` (``signature_missing`` /
        ``signature_invalid``) saying what is ambiguous or malformed."""
        lines: dict[str, list[str]] = {}
        for name, value in headers:
            lines.setdefault(name.lower(), []).append(value)
        if "signature" not in lines or "signature-input" not in lines:
            raise _fail("signature_missing", "the request carries no Signature / Signature-Input")
        for name in SINGLE_FIELDS:
            if len(lines.get(name, ())) > 1:
                raise _fail("signature_invalid", f"the {name} field is sent {len(lines[name])} times; send it once")
        inputs = _dictionary("Signature-Input", lines["signature-input"][0])
        signatures = _dictionary("Signature", lines["signature"][0])
        ours = [k for k, (_m, p) in inputs.items() if p.get("tag") == SIGNATURE_TAG]
        if len(ours) > 1:
            raise _fail("signature_invalid", f"{len(ours)} signatures tagged {SIGNATURE_TAG!r}; send one")
        if label not in inputs:
            raise _fail("signature_invalid", f"no signature labelled {label!r}")
        if label not in signatures:
            raise _fail("signature_invalid", f"Signature has no member {label!r}")
        members, params = inputs[label]
        value, _sig_params = signatures[label]
        if not isinstance(members, list) or not isinstance(value, bytes) or not value:
            raise _fail("signature_invalid", f"the {label!r} signature is malformed")
        covered: list[str] = []
        for item, item_params in members:
            if not isinstance(item, str) or item_params or item != item.lower():
                raise _fail("signature_invalid", f"covered component {item!r} is not a plain lowercase name")
            if item in covered:
                raise _fail("signature_invalid", f"component {item!r} is covered twice")
            covered.append(item)
        unexpected = set(params) - _PARAMETERS
        if unexpected:
            raise _fail("signature_invalid", f"unexpected signature parameter(s) {sorted(unexpected)}")
        for name in ("created", "expires"):
            if name in params and type(params[name]) is not int:
                raise _fail("signature_invalid", f"{name} must be an integer")
        for name in ("alg", "keyid", "nonce", "tag"):
            if name in params and not isinstance(params[name], str):
                raise _fail("signature_invalid", f"{name} must be a string")
        if params.get("tag") != SIGNATURE_TAG:
            raise _fail("signature_invalid", f"the signature is not tagged {SIGNATURE_TAG!r}")
        if "created" not in params:
            raise _fail("signature_invalid", "the signature has no created time")
        if not isinstance(params.get("keyid"), str) or not params["keyid"]:
            raise _fail("unknown_key", "the signature names no key id")
        return cls(label, tuple(covered), dict(params), value)


def _fail(code: str, message: str) -> Exception:
    from .errors import SignatureError

    err = SignatureError(message)
    err.code = code  # type: ignore[attr-defined]
    return err


def _dictionary(name: str, value: str) -> dict[str, Any]:
    """Parse a Structured Field dictionary, refusing a key given twice (in members or in parameters)."""

    def duplicate(key: str, context: str) -> None:
        raise ValueError(f"{key!r} given twice ({context})")

    try:
        parsed: Any = http_sf.parse(value.encode(), tltype="dictionary", on_duplicate_key=duplicate)
    except Exception as e:
        raise _fail("signature_invalid", f"{name} is malformed: {e}") from None
    return dict(parsed)


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
