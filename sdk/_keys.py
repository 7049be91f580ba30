"""Signing keys: generation, JWK round trip and fingerprint (RFC 7517/7638), the Ed25519 small-order point check."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .gm.sm2 import Sm2PrivateKey, Sm2PublicKey
from .models.institution import PublicJwk

Algorithm = Literal["ed25519", "ecdsa-p256-sha256", "sm2-sm3"]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | Sm2PrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | Sm2PublicKey


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
