"""Key rotation: a new key, authorised by the current one, registered at the centre, then signing.

Rotation (:func:`rotate`) is safe to interrupt and to run again: the new key is kept (state
``pending``, with the rotation's idempotency key) before the centre hears of it; the centre's
answer is written to the manifest before the config is switched; a re-run finishes whatever an
interrupted one left. A running agent notices the config's new key id within a second and signs
with it from then on (:class:`sdk.RotatingSigner`); requests signed with the old key still land
during the grace period, after which the centre revokes the old key and the agent erases it
(:func:`agent.credentials.custody.retire_due`).

In a gm centre that asks for the personal-field envelope, the bank's SM2 encryption key is renewed with
the signing key: registered with the rotation, the old one kept (``encryption-previous``) to open what
was sealed before the switch and erased when the grace ends.

A key the centre certified is renewed with its certificate: the rotation sends a PKCS#10 request
for the new key and keeps the certificate answered (checked against the centre's institution CA);
the old certificate goes on the centre's CRL (``superseded``) when the grace ends.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sdk
from agent.centre.client import centre_client
from agent.config import AgentConfig, load_config
from agent.credentials.custody import KeyCustody, custody_for, retire_due
from agent.state.audit import AuditLog
from agent.state.store import StateStore
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.signing import jwk_from_public_key
from sdk.support.files import atomic_write

__all__ = ["RotationFollower", "RotationResult", "rotate", "set_config_key_id"]

log = logging.getLogger("regbridge.agent")


def _now() -> datetime:
    return datetime.now(UTC)


def set_config_key_id(path: Path, key_id: str) -> None:
    """Point the config at ``key_id``, keeping the rest of the file (comments included) as it is."""
    import tomlkit

    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    doc["centre"]["key_id"] = key_id
    before = path.stat()
    atomic_write(path, tomlkit.dumps(doc).encode("utf-8"), mode=before.st_mode & 0o777)
    if os.geteuid() == 0:  # root rotating an installed agent: the service user must still read it
        os.chown(path, before.st_uid, before.st_gid)


@dataclass(frozen=True)
class RotationResult:
    old_key_id: str
    new_key_id: str
    retire_at: str
    resumed: bool


def rotate(
    config: AgentConfig,
    secret: bytes,
    *,
    grace_seconds: int = 86400,
    algorithm: sdk.signing.Algorithm | None = None,
    client: sdk.Client | None = None,
) -> RotationResult:
    """Register a new key authorised by the current one and switch the config to it.

    Safe to run again after an interruption at any point: it finishes that rotation.
    """
    if config.source is None:
        raise ValueError("rotation needs the config file it was loaded from")
    custody = custody_for(config, secret)
    current_id = config.centre.key_id
    current = custody.entry(current_id)
    entries = custody.entries()
    switched = next((e for e in entries if e.state == "current" and e.key_id != current_id), None)
    if switched is not None and current.state == "previous":  # interrupted after the manifest switched
        assert switched.key_id is not None
        set_config_key_id(config.source, switched.key_id)
        return RotationResult(current_id, switched.key_id, current.retire_at or "", True)
    pending = next((e for e in entries if e.state == "pending"), None)
    resumed = pending is not None
    if pending is None:
        pending = custody.generate(
            algorithm or current.algorithm,  # type: ignore[arg-type]
            "pending",
            rotation_key=f"rotate-{uuid.uuid4()}",
        )
    public = custody.public_key(pending)
    # renew the certificate with the key: a certified key's successor asks for one too
    certify = current.certificate is not None and custody.bank_ca.exists()
    request = None
    if certify:
        centre = config.centre
        request = custody.certificate_request(
            pending,
            {"country_name": "CN", "organization_name": centre.institution_name,
             "organization_identifier": centre.institution_uscc, "common_name": "agent"},
        )  # fmt: skip
    # the envelope's encryption key (gm, centre -> bank) is renewed with the signing key: a new one is kept
    # (state encryption-next) before the centre hears of it, registered with the rotation, switched to below
    renew = None
    if config.centre.envelope and any(e.state == "encryption" for e in entries):
        upcoming = next((e for e in custody.entries() if e.state == "encryption-next"), None)
        if upcoming is None:
            upcoming = custody.put_software(Sm2PrivateKey.generate(), "encryption-next")
        fresh = custody.load(upcoming)
        assert isinstance(fresh, Sm2PrivateKey)
        renew = jwk_from_public_key(fresh.public)
    if pending.key_id is None:
        own = client is None
        client = client or centre_client(config, custody.signer(current_id))
        try:
            # resuming: the centre may have registered the key and put ours into its grace period, and a
            # retiring key may not rotate again (even the same rotation): read what the centre holds first
            known = _registered(client, pending.fingerprint) if resumed else None
            record = known or client.credentials.rotate(
                jwk_from_public_key(public),
                grace_seconds=grace_seconds,
                label="agent",
                idempotency_key=pending.rotation_key,
                certificate_request=request,
                encryption_key=renew,
            )
            old = next((r for r in client.credentials.list() if r.key_id == current_id), None) if known else None
        finally:
            if own:
                client.close()
        if certify:
            if record.certificate is None:
                raise ValueError("the centre answered the rotation without the certificate it was asked for")
            custody.accept_certificate(pending, record.certificate)
        ends = old.revoke_at if old is not None and old.revoke_at else _now() + timedelta(seconds=grace_seconds)
        retire_at = ends.isoformat(timespec="seconds")
        entries = custody.entries()
        for e in entries:
            if e.fingerprint == pending.fingerprint:
                e.key_id = record.key_id
            elif e.key_id == current_id:
                e.retire_at = retire_at  # when the centre revokes it (the grace counts from its answer)
        custody.save(entries)
        pending.key_id = record.key_id
    assert pending.key_id is not None
    # switch: the manifest first, then the config the running agent watches
    entries = custody.entries()
    retire_at = ""
    for e in entries:
        if e.fingerprint == pending.fingerprint:
            e.state, e.rotation_key = "current", None
        elif e.state == "current":
            e.state = "previous"
            retire_at = e.retire_at or ""
    if any(e.state == "encryption-next" for e in entries):  # registered with this rotation: it seals from now on
        for e in entries:
            if e.state == "encryption":
                e.state, e.retire_at = "encryption-previous", retire_at or _now().isoformat(timespec="seconds")
            elif e.state == "encryption-next":
                e.state = "encryption"
    custody.save(entries)
    set_config_key_id(config.source, pending.key_id)
    return RotationResult(current_id, pending.key_id, retire_at, resumed)


def _registered(client: sdk.Client, fingerprint: str) -> sdk.models.CredentialRecord | None:
    """The centre's record of the key with ``fingerprint``, if it holds it active (an ordinary request)."""
    return next((r for r in client.credentials.list() if r.fingerprint == fingerprint and r.status == "active"), None)


class RotationFollower:
    """The running agent's side of a rotation: sign with the key the config names, erase keys past their grace.

    ``regbridge keys rotate`` (another process) switches the config's ``centre.key_id``; :meth:`check`
    notices it (one stat of the config when nothing changed) and switches the signer.

    Args:
        config: the loaded configuration (its ``source`` is watched).
        custody: where the keys are kept.
        signer: the signer every request goes through.
        store: where an alert is raised when the named key cannot be loaded.
        audit: where a switch and an erasure are recorded.
    """

    def __init__(
        self, config: AgentConfig, custody: KeyCustody, signer: sdk.RotatingSigner, store: StateStore, audit: AuditLog
    ) -> None:
        self.config, self.custody, self.signer, self.store, self.audit = config, custody, signer, store, audit
        self._config_mtime = config.source.stat().st_mtime_ns if config.source else 0
        self._retire_check = 0.0
        self._lock = threading.Lock()

    def check(self) -> str | None:
        """Switch to the config's key if it changed; answers the new key id after a switch."""
        with self._lock:
            return self._check()

    def _check(self) -> str | None:
        source, switched = self.config.source, None
        if source is None:
            return None
        try:
            mtime = source.stat().st_mtime_ns
        except OSError:
            return None
        if mtime != self._config_mtime:
            self._config_mtime = mtime
            try:
                key_id = load_config(source).centre.key_id
            except ValueError as exc:
                log.warning("the config cannot be read again; keeping the current key", extra={"error": str(exc)})
                return None
            if key_id != self.signer.key_id:
                try:
                    new = self.custody.signer(key_id)
                except KeyError as exc:
                    self.store.raise_alert("key", f"the config names key {key_id} but it cannot be loaded: {exc}")
                    return None
                old = self.signer.switch(new)
                self.store.clear_alert("key")
                self.audit.append("key.switched", f"{old.key_id}->{key_id}", "ok")
                log.info("signing with the rotated key", extra={"old_key": old.key_id, "key": key_id})
                switched = key_id
        if time.monotonic() >= self._retire_check:
            self._retire_check = time.monotonic() + 5.0
            for gone in retire_due(self.custody, keep=self.signer.key_id):
                self.audit.append("key.erased", gone, "ok")
                log.info("erased a rotated-out key after its grace period", extra={"key": gone})
        return switched
