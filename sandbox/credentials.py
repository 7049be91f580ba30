"""Enrolment and the institutions' signing keys: one-time enrolment tokens, enrol, rotate, revoke,
and the institution certificates (机构证书) the centre's CA issues for them.

A key is registered once (by its RFC 7638 fingerprint); a rotation registers the new key and
revokes the signing one after a grace period; a revocation takes effect at once. An enrolment or
a rotation that sends a PKCS#10 request for its key (``certificate_request``) gets an X.509
certificate of it (:mod:`sandbox.bankca`); from then on that key's requests are checked against
the certificate too — its key, its validity window and the CRL (``/pki/banks.crl``) — and refused
with ``certificate_expired`` or ``certificate_revoked`` (:mod:`sandbox.auth`).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sdk.csr import spki_der, verify_request
from sdk.gm.sm2 import Sm2PublicKey
from sdk.models import CredentialRecord, Enrolment, EnrolmentResult, PublicJwk, Rotation
from sdk.signing import PublicKey, algorithm_of, jwk_fingerprint, public_key_from_jwk
from sdk.suites import INTL, Suite

from .bankca import REASONS, BankCa
from .errors import CentreError
from .store import Store, new_id, now_utc, token_hash

__all__ = ["BANK_CERTIFICATE_VALIDITY", "Credentials", "bank_encryption_key", "seal_for_bank"]

#: how long an institution certificate is valid unless the centre is told otherwise
BANK_CERTIFICATE_VALIDITY = timedelta(days=365)


class Credentials:
    """Enrolment tokens, registered public keys and their certificates, per institution.

    Args:
        bank_ca: the institution-certificate CA, made when first needed (:mod:`sandbox.bankca`).
        certificate_validity: how long the certificates it issues are valid.
    """

    def __init__(
        self,
        store: Store,
        *,
        suite: Suite = INTL,
        bank_ca: Callable[[], BankCa] | None = None,
        certificate_validity: timedelta = BANK_CERTIFICATE_VALIDITY,
    ) -> None:
        self.suite = suite
        self.store = store
        self._bank_ca = bank_ca
        self._ca: BankCa | None = None
        self.certificate_validity = certificate_validity
        #: the CRL's URL, named in every certificate issued (set once the centre knows its public URL)
        self.crl_url: str | None = None

    @property
    def bank_ca(self) -> BankCa:
        """The institution-certificate CA (created in the store on first use).

        Raises:
            CentreError: 501 ``certificates_unavailable`` on a centre built without one.
        """
        if self._ca is None:
            if self._bank_ca is None:
                raise CentreError(501, "certificates_unavailable", "this centre issues no institution certificates")
            self._ca = self._bank_ca()
        return self._ca

    def issue_enrolment_token(self, institution_id: str, *, valid_for: timedelta = timedelta(days=7)) -> str:
        """A one-time enrolment token (kept hashed; shown once), valid for ``valid_for``."""
        token = secrets.token_urlsafe(32)
        self.store.execute(
            "INSERT INTO enrolment_tokens VALUES (?, ?, ?, NULL)",
            token_hash(token),
            institution_id,
            (now_utc() + valid_for).isoformat(),
        )
        self.store.audit("admin", "enrolment_token.issue", institution_id, "ok")
        return token

    def register_key(
        self, institution_id: str, jwk: PublicJwk, label: str, certificate_request: str | None = None
    ) -> tuple[str, str]:
        """Store a new active public key (inside the caller's transaction), and certify it when a
        PKCS#10 request for it is given; answer its id and algorithm.

        Raises:
            CentreError: 422 for a key that is not a valid Ed25519/P-256/SM2 key, 409 for one already
                registered, 422 ``invalid_certificate_request`` for a request that does not verify or
                is for another key.
        """
        public = _public_key(jwk)
        algorithm = algorithm_of(public)
        if algorithm not in self.suite.algorithms:
            raise CentreError(
                422,
                "validation_failed",
                f"this centre's crypto suite is {self.suite.name}: it accepts {', '.join(self.suite.algorithms)} keys",
                errors=[{"code": "invalid_key", "detail": f"{algorithm} is not of the {self.suite.name} suite",
                         "pointer": "/public_key"}],
            )  # fmt: skip
        fingerprint = jwk_fingerprint(jwk)
        if self.store.one("SELECT 1 FROM keys WHERE fingerprint = ?", fingerprint):
            raise CentreError(409, "key_exists", "this public key is already registered")
        key_id = new_id("key")
        self.store.execute(
            "INSERT INTO keys (key_id, institution_id, algorithm, jwk, label, fingerprint, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'active', ?)",
            key_id,
            institution_id,
            algorithm,
            jwk.model_dump_json(exclude_none=True),
            label,
            fingerprint,
            now_utc().isoformat(),
        )
        if certificate_request is not None:
            self._certify(institution_id, key_id, public, certificate_request)
        return key_id, algorithm

    def _certify(self, institution_id: str, key_id: str, public: PublicKey, request: str) -> None:
        """Check the request (its own signature, for ``public``) and store the certificate issued for it."""
        try:
            requested = verify_request(request, sm2_user_id=self.suite.sm2_user_id)
        except ValueError as e:
            raise _bad_request(str(e)) from None
        if spki_der(requested) != spki_der(public):
            raise _bad_request("the certificate request is for another key than public_key")
        inst = self.store.one("SELECT name, uscc FROM institutions WHERE id = ?", institution_id)
        assert inst is not None
        subject = {
            "country_name": "CN",
            "organization_name": inst["name"],
            "organization_identifier": inst["uscc"],
            "common_name": f"{institution_id}/{key_id}",
        }
        try:
            issued = self.bank_ca.issue(
                public, subject=subject, valid_for=self.certificate_validity, crl_url=self.crl_url
            )
        except ValueError as e:
            raise _bad_request(str(e)) from None
        self.store.execute(
            "INSERT INTO bank_certificates (serial, key_id, institution_id, pem, not_before, not_after) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            format(issued.serial, "x"), key_id, institution_id, issued.pem,
            issued.not_before.isoformat(), issued.not_after.isoformat(),
        )  # fmt: skip
        self.store.audit(institution_id, "certificate.issue", format(issued.serial, "x"), key_id)

    def certificate_of(self, key_id: str) -> str | None:
        """The PEM certificate issued for ``key_id``, if one was."""
        row = self.store.one("SELECT pem FROM bank_certificates WHERE key_id = ?", key_id)
        return str(row["pem"]) if row is not None else None

    def revoke_certificate(self, serial: str, reason: str = "key_compromise") -> CredentialRecord:
        """The admin revokes an institution certificate (it goes on ``/pki/banks.crl``); its key's
        requests are refused with ``certificate_revoked`` from now on. Revoking twice keeps the first date.

        Raises:
            CentreError: 404 for an unknown serial; 422 for a reason RFC 5280 does not name.
        """
        if reason not in REASONS:
            raise CentreError(422, "validation_failed", f"the reason is one of {', '.join(REASONS)}")
        serial = serial.lower().lstrip("0") or "0"
        row = self.store.one("SELECT key_id FROM bank_certificates WHERE serial = ?", serial)
        if row is None:
            raise CentreError(404, "not_found", f"no institution certificate with serial {serial}")
        self.store.execute(
            "UPDATE bank_certificates SET revoked_at = COALESCE(revoked_at, ?), reason = COALESCE(reason, ?) "
            "WHERE serial = ?",
            now_utc().isoformat(), reason, serial,
        )  # fmt: skip
        self.store.audit("admin", "certificate.revoke", serial, reason)
        return _credential(self._key_row(row["key_id"]))

    def revoked_certificates(self) -> list[tuple[int, datetime, str]]:
        """Every certificate the CRL lists: revoked itself, its key revoked (``cessation_of_operation``),
        or its key's rotation grace over (``superseded``)."""
        now = now_utc()
        out = []
        for r in self.store.all(
            "SELECT c.serial, c.revoked_at, c.reason, k.status, k.revoke_at, k.revoked_at AS key_revoked_at "
            "FROM bank_certificates c JOIN keys k ON k.key_id = c.key_id ORDER BY c.serial"
        ):
            if r["revoked_at"]:
                out.append((int(r["serial"], 16), datetime.fromisoformat(r["revoked_at"]), str(r["reason"])))
            elif r["status"] == "revoked":
                at = r["key_revoked_at"] or now.isoformat()
                out.append((int(r["serial"], 16), datetime.fromisoformat(at), "cessation_of_operation"))
            elif r["revoke_at"] and datetime.fromisoformat(r["revoke_at"]) <= now:
                out.append((int(r["serial"], 16), datetime.fromisoformat(r["revoke_at"]), "superseded"))
        return out

    def crl(self) -> bytes:
        """The institution CA's current CRL (DER)."""
        return self.bank_ca.crl(self.revoked_certificates())

    def enroll(self, enrolment: Enrolment) -> EnrolmentResult:
        """Register the enrolment's key with its token (the same enrolment again answers the same key).

        Raises:
            CentreError: 401 ``enrolment_token_invalid`` for an unknown, used or expired token; see
                :meth:`register_key` for the key's errors.
        """
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT institution_id, expires_at, used_at FROM enrolment_tokens WHERE token_hash = ?",
                (token_hash(enrolment.token),),
            ).fetchone()
            if row is not None and row["used_at"]:
                # the same enrolment again (its answer was lost): the key this token registered
                same = db.execute(
                    "SELECT key_id, algorithm FROM keys WHERE institution_id = ? AND fingerprint = ?",
                    (row["institution_id"], jwk_fingerprint(enrolment.public_key)),
                ).fetchone()
                if same is not None:
                    if enrolment.encryption_key is not None:
                        self._register_encryption_key(row["institution_id"], enrolment.encryption_key)
                    if enrolment.certificate_request and self.certificate_of(same["key_id"]) is None:
                        public = _public_key(enrolment.public_key)
                        self._certify(row["institution_id"], same["key_id"], public, enrolment.certificate_request)
                    return EnrolmentResult(
                        key_id=same["key_id"], institution_id=row["institution_id"], algorithm=same["algorithm"],
                        certificate=self.certificate_of(same["key_id"]),
                    )  # fmt: skip
            if row is None or row["used_at"] or datetime.fromisoformat(row["expires_at"]) < now_utc():
                raise CentreError(401, "enrolment_token_invalid", "the enrolment token is unknown, used or expired")
            key_id, algorithm = self.register_key(
                row["institution_id"], enrolment.public_key, enrolment.label, enrolment.certificate_request
            )
            if enrolment.encryption_key is not None:
                self._register_encryption_key(row["institution_id"], enrolment.encryption_key)
            db.execute(
                "UPDATE enrolment_tokens SET used_at = ? WHERE token_hash = ?",
                (now_utc().isoformat(), token_hash(enrolment.token)),
            )
        self.store.audit(row["institution_id"], "key.enroll", key_id, "ok")
        return EnrolmentResult(
            key_id=key_id, institution_id=row["institution_id"], algorithm=algorithm,
            certificate=self.certificate_of(key_id),
        )  # fmt: skip

    def _register_encryption_key(self, institution_id: str, jwk: PublicJwk) -> None:
        """Keep the bank's SM2 encryption key (inside the caller's transaction); a later enrolment replaces it.

        Raises:
            CentreError: 422 ``invalid_encryption_key`` for a key that is not SM2.
        """
        try:
            key = public_key_from_jwk(jwk)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Sm2PublicKey):
            raise CentreError(
                422, "validation_failed", "the encryption key is not an SM2 public key",
                errors=[{"code": "invalid_encryption_key", "detail": "an SM2 JWK is expected",
                         "pointer": "/encryption_key"}],
            )  # fmt: skip
        self.store.execute(
            "INSERT OR REPLACE INTO encryption_keys VALUES (?, ?, ?)",
            institution_id, json.dumps(jwk.model_dump(exclude_none=True)), now_utc().isoformat(),
        )  # fmt: skip

    def list_credentials(self, institution_id: str) -> list[CredentialRecord]:
        rows = self.store.all(f"{_KEY_ROWS} WHERE k.institution_id = ? ORDER BY k.created_at", institution_id)
        return [_credential(r) for r in rows]

    def rotate(self, institution_id: str, signing_key_id: str, rotation: Rotation) -> CredentialRecord:
        """Register a new key; the key that signed the request is revoked after the grace period."""
        with self.store.transaction():
            key_id, _ = self.register_key(
                institution_id, rotation.public_key, rotation.label, rotation.certificate_request
            )
            if rotation.encryption_key is not None:  # the envelope is sealed to the bank's new key from now on
                self._register_encryption_key(institution_id, rotation.encryption_key)
            self.store.execute(
                "UPDATE keys SET revoke_at = ? WHERE key_id = ? AND revoke_at IS NULL",  # never postponed
                (now_utc() + timedelta(seconds=rotation.grace_seconds)).isoformat(),
                signing_key_id,
            )
        self.store.audit(institution_id, "key.rotate", f"{signing_key_id}->{key_id}", "ok")
        return _credential(self._key_row(key_id))

    def revoke(self, institution_id: str | None, key_id: str, reason: str) -> CredentialRecord:
        """Revoke a key now (the institution its own keys; the admin any key: ``institution_id=None``).

        Raises:
            CentreError: 404 for an unknown key or another institution's.
        """
        row = self.store.one("SELECT * FROM keys WHERE key_id = ?", key_id)
        if row is None or (institution_id is not None and row["institution_id"] != institution_id):
            raise CentreError(404, "not_found", f"no key {key_id}")
        self.store.execute(
            "UPDATE keys SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?",
            now_utc().isoformat(),
            key_id,
        )
        self.store.audit(institution_id or "admin", "key.revoke", key_id, reason[:100])
        return _credential(self._key_row(key_id))

    def _key_row(self, key_id: str) -> sqlite3.Row:
        row = self.store.one(f"{_KEY_ROWS} WHERE k.key_id = ?", key_id)
        if row is None:
            raise CentreError(404, "not_found", f"no key {key_id}")
        return row


#: a key with its certificate's facts, if it has one
_KEY_ROWS = (
    "SELECT k.*, c.pem AS cert_pem, c.serial AS cert_serial, c.not_after AS cert_not_after, "
    "c.revoked_at AS cert_revoked_at FROM keys k LEFT JOIN bank_certificates c ON c.key_id = k.key_id"
)


def certificate_status(row: Any, now: datetime) -> str | None:
    """``valid``, ``expired`` or ``revoked`` for a key row of :data:`_KEY_ROWS` with a certificate, else None.

    Revoked: revoked itself, or its key revoked or past its rotation grace (it is then on the CRL).
    """
    if row["cert_pem"] is None:
        return None
    if row["cert_revoked_at"] or row["status"] == "revoked" or (
        row["revoke_at"] and datetime.fromisoformat(row["revoke_at"]) <= now
    ):
        return "revoked"
    return "expired" if datetime.fromisoformat(row["cert_not_after"]) <= now else "valid"


def _bad_request(detail: str) -> CentreError:
    return CentreError(
        422,
        "invalid_certificate_request",
        f"the certificate request is refused: {detail}",
        errors=[{"code": "invalid_certificate_request", "detail": detail, "pointer": "/certificate_request"}],
    )


def _credential(row: sqlite3.Row) -> CredentialRecord:
    return CredentialRecord(
        key_id=row["key_id"],
        algorithm=row["algorithm"],
        label=row["label"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        created_at=row["created_at"],
        revoke_at=row["revoke_at"],
        revoked_at=row["revoked_at"],
        certificate=row["cert_pem"],
        certificate_serial=row["cert_serial"],
        certificate_not_after=row["cert_not_after"],
        certificate_status=certificate_status(row, now_utc()),
    )


def _public_key(jwk: Any) -> PublicKey:
    try:
        return public_key_from_jwk(jwk)
    except (ValueError, TypeError) as e:
        raise CentreError(
            422,
            "validation_failed",
            "the public key is not a valid Ed25519, P-256 or SM2 key",
            errors=[{"code": "invalid_key", "detail": str(e), "pointer": "/public_key"}],
        ) from None


def bank_encryption_key(store: Store, institution_id: str) -> Sm2PublicKey | None:
    """The SM2 encryption key the institution registered at enrolment, if any."""
    row = store.one("SELECT jwk FROM encryption_keys WHERE institution_id = ?", institution_id)
    if row is None:
        return None
    key = public_key_from_jwk(json.loads(row["jwk"]))
    return key if isinstance(key, Sm2PublicKey) else None


def seal_for_bank(store: Store, suite: Suite, institution_id: str, document: Any) -> dict[str, Any] | None:
    """``document`` (a JSON answer or webhook event) with its personal fields sealed to the institution's
    encryption key (:mod:`sdk.gm.envelope`, in the centre's ``suite.envelope`` mode), or None where
    nothing is to be sealed: the centre does not ask for the envelope, the bank registered no key, the
    document is not an object or carries no personal field."""
    from sdk.gm.envelope import ENVELOPE_MEMBER, personal_pointers, seal_fields

    if not suite.envelope or not isinstance(document, dict) or ENVELOPE_MEMBER in document:
        return None
    if next(personal_pointers(document), None) is None:
        return None
    key = bank_encryption_key(store, institution_id)
    if key is None:
        return None
    return seal_fields(document, key, mode=suite.envelope)
