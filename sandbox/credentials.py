"""Enrolment and the institutions' signing keys: one-time enrolment tokens, enrol, rotate, revoke.

A key is registered once (by its RFC 7638 fingerprint); a rotation registers the new key and
revokes the signing one after a grace period; a revocation takes effect at once.
"""

from __future__ import annotations

import secrets
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from sdk.models import CredentialRecord, Enrolment, EnrolmentResult, PublicJwk, Rotation
from sdk.signing import PublicKey, algorithm_of, jwk_fingerprint, public_key_from_jwk
from sdk.suites import INTL, Suite

from .errors import CentreError
from .store import Store, new_id, now_utc, token_hash

__all__ = ["Credentials"]


class Credentials:
    """Enrolment tokens and registered public keys, per institution."""

    def __init__(self, store: Store, *, suite: Suite = INTL) -> None:
        self.suite = suite
        self.store = store

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

    def register_key(self, institution_id: str, jwk: PublicJwk, label: str) -> tuple[str, str]:
        """Store a new active public key (inside the caller's transaction); answer its id and algorithm.

        Raises:
            CentreError: 422 for a key that is not a valid Ed25519/P-256 key, 409 for one already registered.
        """
        algorithm = algorithm_of(_public_key(jwk))
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
        return key_id, algorithm

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
                    return EnrolmentResult(
                        key_id=same["key_id"], institution_id=row["institution_id"], algorithm=same["algorithm"]
                    )
            if row is None or row["used_at"] or datetime.fromisoformat(row["expires_at"]) < now_utc():
                raise CentreError(401, "enrolment_token_invalid", "the enrolment token is unknown, used or expired")
            key_id, algorithm = self.register_key(row["institution_id"], enrolment.public_key, enrolment.label)
            db.execute(
                "UPDATE enrolment_tokens SET used_at = ? WHERE token_hash = ?",
                (now_utc().isoformat(), token_hash(enrolment.token)),
            )
        self.store.audit(row["institution_id"], "key.enroll", key_id, "ok")
        return EnrolmentResult(key_id=key_id, institution_id=row["institution_id"], algorithm=algorithm)

    def list_credentials(self, institution_id: str) -> list[CredentialRecord]:
        rows = self.store.all("SELECT * FROM keys WHERE institution_id = ? ORDER BY created_at", institution_id)
        return [_credential(r) for r in rows]

    def rotate(self, institution_id: str, signing_key_id: str, rotation: Rotation) -> CredentialRecord:
        """Register a new key; the key that signed the request is revoked after the grace period."""
        with self.store.transaction():
            key_id, _ = self.register_key(institution_id, rotation.public_key, rotation.label)
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
        row = self.store.one("SELECT * FROM keys WHERE key_id = ?", key_id)
        if row is None:
            raise CentreError(404, "not_found", f"no key {key_id}")
        return row


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
