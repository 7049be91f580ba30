"""Idempotency keys (docs/api.md §4): a POST runs once per (institution, key); a retry of the same
request gets the stored answer, another request under the same key a 409."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sdk._operations import encode_json

from .errors import CentreError
from .store import Store, now_utc

__all__ = ["IDEMPOTENCY_TTL", "Idempotency", "IdempotentResult", "request_fingerprint"]

#: how long a key's answer is kept
IDEMPOTENCY_TTL = timedelta(hours=24)

#: refusals about the institution's standing, not the request: nothing ran, so the answer is not kept and the
#: same key is judged afresh once the standing is put right (the 银行信息备案 filed, seed 001 §5.2)
NOT_KEPT = frozenset({"filing_required", "filing_expired"})


@dataclass
class IdempotentResult:
    status: int
    body: bytes
    replayed: bool


class Idempotency:
    """The stored answers of idempotent requests."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(
        self,
        institution_id: str,
        key: str | None,
        fingerprint: str,
        act: Callable[[], tuple[int, bytes]],
    ) -> IdempotentResult:
        """Run ``act`` once per (institution, key); replay its stored answer for the same request.

        Same key + different request → 409 ``idempotency_conflict``. 5xx answers are not kept.

        Raises:
            CentreError: 400 ``malformed_request`` without a key (1–255 visible characters), 409 as above.
        """
        if not key or len(key) > 255 or not key.isprintable():
            raise CentreError(400, "malformed_request", "an Idempotency-Key (1–255 visible characters) is required")
        with self.store.transaction() as db:
            db.execute("DELETE FROM idempotency WHERE created_at < ?", ((now_utc() - IDEMPOTENCY_TTL).isoformat(),))
            row = db.execute(
                "SELECT fingerprint, status_code, body FROM idempotency WHERE institution_id = ? AND key = ?",
                (institution_id, key),
            ).fetchone()
            if row is not None:
                if row["fingerprint"] != fingerprint:
                    raise CentreError(409, "idempotency_conflict", "this Idempotency-Key was used for another request")
                return IdempotentResult(row["status_code"], bytes(row["body"]), True)
            try:
                status, body = act()
            except CentreError as e:
                if e.status >= 500 or e.code in NOT_KEPT:
                    raise
                status, body = e.status, json.dumps(e.problem(None), ensure_ascii=False).encode()
            if status < 500:
                db.execute(
                    "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?)",
                    (institution_id, key, fingerprint, status, body, now_utc().isoformat()),
                )
            return IdempotentResult(status, body, False)


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Method, path and the canonical JSON of the body: the same request gives the same print."""
    canonical = body
    if body:
        try:
            canonical = encode_json(json.loads(body))
        except (ValueError, TypeError):
            canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()
