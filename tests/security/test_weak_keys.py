"""Weak keys and rotation (issue 17 item 5).

Before the fix an all-zero Ed25519 public key was enrolled, and requests forged with it (a
small-order point verifies signatures nobody made). Every key of the wrong size, off the curve,
of small order, outside the prime-order subgroup or non-canonically encoded is refused at
enrolment, through the real HTTP API, and the token stays unspent for a proper key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import sdk
from sdk import signing
from sdk.signing import generate_private_key, jwk_from_public_key
from tests import factories as f
from tests import proof
from tests.agent.conftest import SECRET
from tests.agent.conftest import Branch as AgentBranch
from tests.sandbox.conftest import Bank, Running


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _encode(point: tuple[int, int, int, int]) -> bytes:
    x, y, z, _t = point
    inv = pow(z, _P - 2, _P)
    x, y = x * inv % _P, y * inv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


# Ed25519 arithmetic of its own (RFC 8032 §5.1), independent of the code under test
_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_Point = tuple[int, int, int, int]


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa, bb = (y1 - x1) * (y2 - x2) % _P, (y1 + x1) * (y2 + x2) % _P
    cc, dd = 2 * _D * t1 * t2 % _P, 2 * z1 * z2 % _P
    e, f_, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f_ % _P, g * h % _P, f_ * g % _P, e * h % _P


def _multiply(point: _Point, n: int) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while n:
        if n & 1:
            result = _add(result, point)
        point = _add(point, point)
        n >>= 1
    return result


def _point(raw: bytes) -> tuple[int, int, int, int]:
    """Decode an encoded Ed25519 point (RFC 8032 §5.1.3) into extended coordinates."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P:
        x = x * _SQRT_M1 % _P
    assert (v * x * x - u) % _P == 0
    if x & 1 != raw[31] >> 7:
        x = _P - x
    return x, y, 1, x * y % _P


def _honest_raw() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


#: a point of order 8 (libsodium's list of small-order points)
ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")


def _okp(raw: bytes) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}


def _ec(x: bytes, y: bytes) -> dict[str, str]:
    return {"kty": "EC", "crv": "P-256", "x": _b64(x), "y": _b64(y)}


def _weak_jwks() -> dict[str, dict[str, str]]:
    torsion = _point(ORDER_8)
    assert _multiply(torsion, 8)[0] % _P == 0
    # an honest key plus a point of order 8: outside the prime-order group
    mixed = _encode(_add(_point(_honest_raw()), torsion))
    return {
        "all zero (small order)": _okp(bytes(32)),
        "the identity": _okp((1).to_bytes(32, "little")),
        "a point of order 2": _okp((_P - 1).to_bytes(32, "little")),
        "a point of order 8": _okp(ORDER_8),
        "an honest key plus a torsion point": _okp(mixed),
        "y not canonical (y ≥ p)": _okp((_P + 1).to_bytes(32, "little")),
        "31 bytes": _okp(bytes(range(1, 32))),
        "33 bytes": _okp(bytes(range(1, 34))),
        "P-256 with 33-byte x": _ec(b"\x00" + bytes(range(1, 33)), bytes(range(1, 33))),
        "P-256 off the curve": _ec(bytes(range(1, 33)), bytes(range(2, 34))),
    }


def test_weak_and_malformed_keys_are_refused_at_enrolment(sandbox: Running) -> None:
    iid = sandbox.centre.create_institution(name="示例银行", uscc=f.BANK_USCC, licence_no="B1", district="340121")
    token = sandbox.centre.issue_enrolment_token(iid)
    refused = {}
    with httpx.Client() as http:
        for name, jwk in _weak_jwks().items():
            response = http.post(f"{sandbox.url}/v1/enrolment", json={"token": token, "public_key": jwk})
            refused[name] = response.status_code
    assert all(status == 422 for status in refused.values()), refused
    proof.record(proof.Result("weak or malformed keys at enrolment (small order, torsion, size, curve)", runs=1,
                              applications=0, lost=0, duplicated=0, refused=len(refused),
                              expected_refusals=len(refused)))  # fmt: skip
    assert sandbox.store.all("SELECT COUNT(*) AS n FROM keys")[0]["n"] == 0
    # the token is still good for a proper key
    key = generate_private_key()
    with sdk.Client(sandbox.url) as anon:
        assert anon.credentials.enroll(token, jwk_from_public_key(key.public_key())).key_id


def test_every_honest_key_passes_the_check() -> None:

    for _ in range(50):
        signing.check_ed25519_point(_honest_raw())
    with pytest.raises(ValueError, match="small order"):
        signing.check_ed25519_point(bytes(32))


def test_a_retiring_key_can_only_sign_ordinary_requests_until_it_dies(sandbox: Running, bank: Bank) -> None:
    """Before the fix a key in its grace period rotated again (postponing its own revocation) and registered
    another key. Now it may sign ordinary requests and nothing else, and its end is never moved."""
    new_key = generate_private_key()
    bank.client.credentials.rotate(jwk_from_public_key(new_key.public_key()), grace_seconds=3600)
    ends = sandbox.store.all("SELECT revoke_at FROM keys WHERE key_id = ?", bank.key_id)[0]["revoke_at"]
    assert ends
    # ordinary requests still land
    assert bank.client.institution.get().institution_id == bank.institution_id
    another = generate_private_key()
    attempts: dict[str, Callable[[], object]] = {
        "rotate again": lambda: bank.client.credentials.rotate(jwk_from_public_key(another.public_key())),
        "revoke the new key": lambda: bank.client.credentials.revoke(_other_key(sandbox, bank)),
        "move the webhooks": lambda: bank.client.institution.set_webhook("https://bank.example/hooks"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(sdk.PermissionDenied) as exc:
            attempt()
        assert exc.value.code == "key_retiring", what
    keys = sandbox.store.all("SELECT key_id, status, revoke_at FROM keys WHERE institution_id = ?", bank.institution_id)
    assert len(keys) == 2 and all(k["status"] == "active" for k in keys)
    assert next(k["revoke_at"] for k in keys if k["key_id"] == bank.key_id) == ends
    # the new key can do all of it
    with sdk.Client(sandbox.url, sdk.Credential(_other_key(sandbox, bank), new_key)) as fresh:
        fresh.credentials.revoke(bank.key_id, reason="rotated out early")
    assert sandbox.store.all("SELECT status FROM keys WHERE key_id = ?", bank.key_id)[0]["status"] == "revoked"


def _other_key(sandbox: Running, bank: Bank) -> str:
    rows = sandbox.store.all("SELECT key_id FROM keys WHERE institution_id = ? AND key_id != ?", bank.institution_id,
                             bank.key_id)  # fmt: skip
    return str(rows[0]["key_id"])


def test_keys_show_lists_every_key_the_centre_holds_active_for_the_institution(
    branch: AgentBranch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key enrolled for the institution by someone else (another branch, or an attacker with a token) shows."""
    from typer.testing import CliRunner

    from agent.cli import app

    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    centre = branch.centre.centre
    stranger = generate_private_key()
    with sdk.Client(branch.centre.url) as anon:
        token = centre.issue_enrolment_token(branch.institution_id)
        enrolled = anon.credentials.enroll(token, jwk_from_public_key(stranger.public_key()), label="unknown")
    shown = CliRunner().invoke(app, ["keys", "show", "--json", "--config", str(branch.config)])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    listed = {row["key_id"]: row for row in report["keys"]}
    assert enrolled.key_id in listed and listed[enrolled.key_id]["state"] == "at the centre only"
    assert any(enrolled.key_id in w for w in report["warnings"])
