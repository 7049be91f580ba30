"""Authentication as a real centre must do it (docs/api.md §5).

The signature is parsed once and verified against the registered public key
(``sdk.signing.verify_request``: digest, key, algorithm, coverage, ``created`` and ``expires``
within ±300 s), then the centre's own checks:
a revoked key, a nonce seen before inside the window, a suspended channel. Each refusal has its
own stable code.

A key the centre certified (:mod:`sandbox.bankca`) is checked against its certificate as well:
the signature is verified with the certificate's key, and a certificate outside its validity
window is refused with ``certificate_expired``, one on the CRL with ``certificate_revoked``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from sdk.errors import SignatureError
from sdk.gm import x509 as gm_x509
from sdk.signing import PublicKey, SignatureInput, public_key_from_jwk, verify_request
from sdk.suites import Suite

from .errors import CentreError
from .store import Store

#: a key with what the checks need of its certificate (if the centre issued one)
_KEY_ROW = (
    "SELECT k.institution_id, k.jwk, k.status, k.revoke_at, c.pem AS cert_pem, c.not_before AS cert_not_before, "
    "c.not_after AS cert_not_after, c.revoked_at AS cert_revoked_at "
    "FROM keys k LEFT JOIN bank_certificates c ON c.key_id = k.key_id WHERE k.key_id = ?"
)

__all__ = ["WINDOW_SECONDS", "Authenticator", "Caller"]

WINDOW_SECONDS = 300


@dataclass(frozen=True)
class Caller:
    institution_id: str
    key_id: str
    #: the key is in its rotation grace period: it may sign ordinary requests only
    retiring: bool = False


class Authenticator:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time, *, suite: Suite | None = None) -> None:
        self.store = store
        self.clock = clock
        #: the centre's crypto suite: its algorithms and digest only (sdk.suites)
        self.suite = suite

    def precheck(self, headers: list[tuple[str, str]]) -> str:
        """Judge a request by its headers alone, before its body is read; answer the institution.

        The signature is parsed (ambiguous or malformed: refused), its key must be known and not
        revoked, and ``created``/``expires`` inside the window. :meth:`authenticate` does the rest
        (coverage, digest, the signature itself, the nonce) once the body is in.

        Raises:
            CentreError: 401 with the code that names the reason.
        """
        try:
            parsed = SignatureInput.parse(headers)
        except SignatureError as e:
            raise CentreError(401, getattr(e, "code", "signature_invalid"), str(e)) from None
        row = self.store.one(_KEY_ROW, parsed.key_id)
        if row is None:
            raise CentreError(401, "unknown_key", f"unknown key id {parsed.key_id!r}")
        now = self.clock()
        if abs(now - parsed.created) > WINDOW_SECONDS:
            raise CentreError(401, "clock_skew", f"signature created {parsed.created} is more than {WINDOW_SECONDS}s "
                              "from the centre's clock")  # fmt: skip
        if parsed.expires is not None and (parsed.expires < parsed.created or parsed.expires + WINDOW_SECONDS < now):
            raise CentreError(401, "signature_expired", f"the signature expired at {parsed.expires}")
        if _revoked(row, now):
            raise CentreError(401, "key_revoked", f"key {parsed.key_id} is revoked")
        _check_certificate(row, parsed.key_id, now)
        return str(row["institution_id"])

    def authenticate(self, *, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Caller:
        """Verify the request or raise :class:`CentreError` (401/403) with its own code.

        ``url`` is the request's target exactly as sent (raw path and query, not decoded) on the
        centre's own scheme and authority. The signature is parsed once (``sdk.signing``); the key
        row read for its key id is the one every later check (revocation, owner) uses.
        """
        rows: dict[str, Any] = {}

        def lookup(key_id: str) -> PublicKey | None:
            row = self.store.one(_KEY_ROW, key_id)
            if row is None:
                return None
            rows[key_id] = row
            if row["cert_pem"] is not None:  # the certified key is the one the signature must verify with
                return self._certified_key(str(row["cert_pem"]))
            return public_key_from_jwk(json.loads(row["jwk"]))

        now = datetime.fromtimestamp(self.clock(), UTC)
        try:
            verified = verify_request(
                method=method, url=url, headers=headers, body=body, keys=lookup, max_skew=WINDOW_SECONDS, now=now,
                suite=self.suite,
            )  # fmt: skip
        except SignatureError as e:
            raise CentreError(401, getattr(e, "code", "signature_invalid"), str(e)) from None
        row = rows[verified.key_id]
        if _revoked(row, self.clock()):
            raise CentreError(401, "key_revoked", f"key {verified.key_id} is revoked")
        _check_certificate(row, verified.key_id, self.clock())
        if not verified.nonce or len(verified.nonce) < 16:
            raise CentreError(401, "signature_invalid", "the signature needs a nonce of at least 128 bits")
        self._remember_nonce(verified.key_id, verified.nonce)
        institution_id = str(row["institution_id"])
        inst = self.store.one("SELECT channel_status, channel_reason FROM institutions WHERE id = ?", institution_id)
        if inst is not None and inst["channel_status"] == "suspended":
            raise CentreError(403, "channel_suspended", f"the channel is suspended: {inst['channel_reason'] or ''}")
        return Caller(institution_id=institution_id, key_id=verified.key_id, retiring=bool(row["revoke_at"]))

    def _certified_key(self, pem: str) -> PublicKey:
        """The public key an institution certificate certifies (SM2 with the suite's user id)."""
        key = _certificate_key(pem)
        return self.suite.adopt(key) if self.suite is not None else key

    def _remember_nonce(self, key_id: str, nonce: str) -> None:
        now = self.clock()
        with self.store.transaction() as db:
            db.execute("DELETE FROM nonces WHERE seen_at < ?", (now - 2 * WINDOW_SECONDS,))
            seen = db.execute("SELECT 1 FROM nonces WHERE key_id = ? AND nonce = ?", (key_id, nonce)).fetchone()
            if seen:
                raise CentreError(401, "replayed_nonce", "this signature's nonce was used before")
            db.execute("INSERT INTO nonces VALUES (?, ?, ?)", (key_id, nonce, now))


@functools.lru_cache(maxsize=1024)
def _certificate_key(pem: str) -> PublicKey:
    der = gm_x509.load_der(pem.encode())
    if gm_x509.load_certificate(der)["signature_algorithm"]["algorithm"].dotted == gm_x509.SM2_WITH_SM3:
        return gm_x509.certificate_public_key(der)
    return x509.load_der_x509_certificate(der).public_key()  # type: ignore[return-value]


def _check_certificate(row: Any, key_id: str, now: float) -> None:
    """Refuse a key whose institution certificate is on the CRL or outside its validity window.

    Raises:
        CentreError: 401 ``certificate_revoked`` or ``certificate_expired``.
    """
    if row["cert_pem"] is None:
        return
    if row["cert_revoked_at"]:
        raise CentreError(401, "certificate_revoked", f"the certificate of key {key_id} was revoked (on the CRL)")
    not_before = datetime.fromisoformat(row["cert_not_before"]).timestamp()
    not_after = datetime.fromisoformat(row["cert_not_after"]).timestamp()
    if not not_before <= now <= not_after:
        raise CentreError(
            401, "certificate_expired",
            f"the certificate of key {key_id} is valid {row['cert_not_before']} to {row['cert_not_after']}, not now",
        )  # fmt: skip


def _revoked(row: Any, now: float) -> bool:
    """Revoked, or past the end of its rotation grace period."""
    revoke_at = datetime.fromisoformat(row["revoke_at"]).timestamp() if row["revoke_at"] else None
    return bool(row["status"] == "revoked" or (revoke_at is not None and revoke_at <= now))
