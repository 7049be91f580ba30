"""Authentication as a real centre must do it (docs/api.md §5).

The signature is verified against the registered public key (``sdk.signing.verify_request``:
digest, key, algorithm, ``created`` within ±300 s, ``expires``), then the centre's own checks:
a revoked key, a nonce seen before inside the window, a suspended channel. Each refusal has its
own stable code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import http_sf

from sdk.errors import SignatureError
from sdk.signing import PublicKey, public_key_from_jwk, verify_request

from .errors import CentreError
from .store import Store

__all__ = ["WINDOW_SECONDS", "Authenticator", "Caller"]

WINDOW_SECONDS = 300


@dataclass(frozen=True)
class Caller:
    institution_id: str
    key_id: str


class Authenticator:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def _key(self, key_id: str) -> tuple[str, PublicKey] | None:
        row = self.store.one("SELECT institution_id, jwk FROM keys WHERE key_id = ?", key_id)
        if row is None:
            return None
        return row["institution_id"], public_key_from_jwk(json.loads(row["jwk"]))

    def _revoked(self, key_id: str) -> bool:
        row = self.store.one("SELECT status, revoke_at FROM keys WHERE key_id = ?", key_id)
        if row is None or row["status"] == "revoked":
            return True
        return bool(row["revoke_at"] and datetime.fromisoformat(row["revoke_at"]).timestamp() <= self.clock())

    def authenticate(self, *, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Caller:
        """Verify the request or raise :class:`CentreError` (401/403) with its own code."""
        key_ids = _key_ids(headers)
        keys: dict[str, PublicKey] = {}
        owners: dict[str, str] = {}
        for key_id in key_ids:
            found = self._key(key_id)
            if found:
                owners[key_id], keys[key_id] = found
        now = datetime.fromtimestamp(self.clock(), UTC)
        try:
            verified = verify_request(
                method=method, url=url, headers=headers, body=body, keys=keys, max_skew=WINDOW_SECONDS, now=now
            )
        except SignatureError as e:
            raise CentreError(401, getattr(e, "code", "signature_invalid"), str(e)) from None
        if self._revoked(verified.key_id):
            raise CentreError(401, "key_revoked", f"key {verified.key_id} is revoked")
        if not verified.nonce or len(verified.nonce) < 16:
            raise CentreError(401, "signature_invalid", "the signature needs a nonce of at least 128 bits")
        self._remember_nonce(verified.key_id, verified.nonce)
        institution_id = owners[verified.key_id]
        row = self.store.one("SELECT channel_status, channel_reason FROM institutions WHERE id = ?", institution_id)
        if row is not None and row["channel_status"] == "suspended":
            raise CentreError(403, "channel_suspended", f"the channel is suspended: {row['channel_reason'] or ''}")
        return Caller(institution_id=institution_id, key_id=verified.key_id)

    def _remember_nonce(self, key_id: str, nonce: str) -> None:
        now = self.clock()
        with self.store.transaction() as db:
            db.execute("DELETE FROM nonces WHERE seen_at < ?", (now - 2 * WINDOW_SECONDS,))
            seen = db.execute("SELECT 1 FROM nonces WHERE key_id = ? AND nonce = ?", (key_id, nonce)).fetchone()
            if seen:
                raise CentreError(401, "replayed_nonce", "this signature's nonce was used before")
            db.execute("INSERT INTO nonces VALUES (?, ?, ?)", (key_id, nonce, now))


def _key_ids(headers: list[tuple[str, str]]) -> list[str]:
    for name, value in headers:
        if name.lower() != "signature-input":
            continue
        try:
            parsed = http_sf.parse(value.encode(), tltype="dictionary")
        except Exception:
            return []
        ids = []
        for _label, member in dict(parsed).items():  # type: ignore[arg-type]
            params = member[1]
            if isinstance(params.get("keyid"), str):
                ids.append(params["keyid"])
        return ids
    return []
