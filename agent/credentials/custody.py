"""The branch's private keys: where they are kept (custody) and which one signs.

Every private key is made on this machine and kept only as PKCS#8 encrypted under the agent
secret (:mod:`agent.state.secrets`) — Ed25519/P-256 by ``cryptography``, SM2 (the gm suite) as
PBES2 PKCS#8 that OpenSSL also reads (:mod:`sdk.gm.sm2`) — in one of two places (``centre.key_store``),
or made and kept inside a PKCS#11 token, never leaving it (``pkcs11``, :mod:`agent.credentials.pkcs11`):

* ``keyring``: the OS keyring (Windows Credential Manager, macOS Keychain, Secret Service),
  service ``regbridge-agent-key``, user ``<institution id>/<fingerprint>``;
* ``file``: ``<key_dir>/<fingerprint>.key``, mode 0600 (headless servers).

``<key_dir>/keys.json`` is the manifest: public facts only (key id, algorithm, fingerprint,
created, where it is kept, its state). The config's ``centre.key_id`` names the key that signs.

Rotation, which registers a new key and switches to it, is :mod:`agent.credentials.rotation`;
:func:`retire_due` erases rotated-out keys once their grace period has ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, overload

from cryptography.hazmat.primitives import serialization

import sdk
from agent.config import AgentConfig
from agent.credentials.pkcs11 import Pkcs11Signer, Pkcs11Token, read_pin
from sdk.gm.sm2 import DEFAULT_USER_ID, Sm2PrivateKey, Sm2PublicKey
from sdk.gm.sm2 import load_pem_private_key as load_sm2_pem
from sdk.signing import (
    Algorithm,
    KeySigner,
    PrivateKey,
    PublicKey,
    generate_private_key,
    jwk_fingerprint,
    jwk_from_public_key,
)
from sdk.suites import INTL, Suite
from sdk.support.files import atomic_write

__all__ = ["KEYRING_SERVICE", "DecryptionKeys", "KeyCustody", "KeyEntry", "custody_for", "retire_due"]

KEYRING_SERVICE = "regbridge-agent-key"
#: "encryption": the bank's own SM2 encryption key (gm envelope, centre -> bank), never a signing key
#: "encryption-next": made by a rotation, not yet registered; "encryption-previous": replaced by a rotation,
#: kept to open what the centre sealed before it switched, erased when the signing key's grace ends
#: "platform": the bank's SM2 signing key registered at a provincial platform (``[platform] key_id``)
KeyState = Literal[
    "pending", "current", "previous", "retired", "encryption", "encryption-next", "encryption-previous", "platform",
    "direct",  # the key enrolled at another direct centre ([centres."<prefix>"] key_id)
]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class KeyEntry:
    """One key's public facts, as the manifest keeps them."""

    fingerprint: str
    algorithm: str
    created_at: str
    store: Literal["file", "keyring", "pkcs11"]
    location: str
    state: KeyState
    key_id: str | None = None
    retire_at: str | None = None
    rotation_key: str | None = field(default=None, repr=False)
    #: the X.509 certificate the centre issued for the key (PEM), when enrolment or rotation asked for one
    certificate: str | None = field(default=None, repr=False)

    @property
    def age_days(self) -> float:
        return (_now() - datetime.fromisoformat(self.created_at)).total_seconds() / 86400


class KeyCustody:
    """The private keys of one branch: kept encrypted, in the keyring or in files."""

    def __init__(
        self,
        key_dir: Path,
        store: Literal["file", "keyring", "pkcs11"],
        institution_id: str,
        secret: bytes,
        *,
        suite: Suite = INTL,
        token: Pkcs11Token | None = None,
    ) -> None:
        if store == "pkcs11" and token is None:
            raise ValueError("key_store pkcs11 needs a token ([centre.pkcs11])")
        self.token = token
        self.key_dir = key_dir
        self.store = store
        self.institution_id = institution_id
        self._secret = secret
        #: the centre's crypto suite: SM2 keys sign with its user id
        self.suite = suite

    # --- the manifest ------------------------------------------------------------------------

    @property
    def manifest(self) -> Path:
        return self.key_dir / "keys.json"

    def entries(self) -> list[KeyEntry]:
        if not self.manifest.exists():
            return []
        return [KeyEntry(**e) for e in json.loads(self.manifest.read_text(encoding="utf-8"))["keys"]]

    def save(self, entries: list[KeyEntry]) -> None:
        doc = {"keys": [asdict(e) for e in entries]}
        atomic_write(self.manifest, json.dumps(doc, indent=2).encode(), mode=0o640)
        self._own(self.manifest)

    def _own(self, path: Path) -> None:
        """Run as root (``keys rotate`` on an installed agent): give the file to the key folder's owner."""
        if os.geteuid() == 0:
            folder = self.key_dir.stat()
            os.chown(path, folder.st_uid, folder.st_gid)

    def entry(self, key_id: str) -> KeyEntry:
        for e in self.entries():
            if e.key_id == key_id:
                return e
        raise KeyError(f"key {key_id} is not in {self.manifest}; enrol again or restore the key folder")

    # --- private keys ------------------------------------------------------------------------

    def generate(self, algorithm: Algorithm, state: KeyState, **extra: Any) -> KeyEntry:
        """Make a new key of ``algorithm`` where this custody keeps keys (inside the token for pkcs11)."""
        if self.store != "pkcs11":
            return self.put(self.suite.adopt(generate_private_key(algorithm)), state, **extra)
        assert self.token is not None
        ref = os.urandom(8)
        public = self.suite.adopt(self.token.generate(algorithm, ref, f"regbridge {self.institution_id}"))
        entry = KeyEntry(
            fingerprint=jwk_fingerprint(jwk_from_public_key(public)),
            algorithm=algorithm,
            created_at=_now().isoformat(timespec="seconds"),
            store="pkcs11",
            location=ref.hex(),
            state=state,
            **extra,
        )
        self.save([*self.entries(), entry])
        return entry

    def public_key(self, entry: KeyEntry) -> PublicKey:
        """The public key of ``entry`` (read from the token for pkcs11)."""
        if entry.store == "pkcs11":
            assert self.token is not None
            return self.suite.adopt(self.token.public_key(entry.algorithm, bytes.fromhex(entry.location)))
        return self.load(entry).public_key()

    def put(self, key: PrivateKey, state: KeyState, *, key_id: str | None = None, **extra: Any) -> KeyEntry:
        """Keep ``key`` (encrypted) and add it to the manifest."""
        fingerprint = jwk_fingerprint(jwk_from_public_key(key.public_key()))
        short = fingerprint[:16]
        if isinstance(key, Sm2PrivateKey):
            pem = key.to_pem(self._secret)
        else:
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(self._secret),
            )
        if self.store == "keyring":
            import keyring

            location = f"{self.institution_id}/{short}"
            keyring.set_password(KEYRING_SERVICE, location, pem.decode("ascii"))
        else:
            self.key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            location = f"{short}.key"
            atomic_write(self.key_dir / location, pem, mode=0o600)
            self._own(self.key_dir / location)
        entry = KeyEntry(
            fingerprint=fingerprint,
            algorithm=sdk.signing.algorithm_of(key),
            created_at=_now().isoformat(timespec="seconds"),
            store=self.store,
            location=location,
            state=state,
            key_id=key_id,
            **extra,
        )
        self.save([e for e in self.entries() if e.fingerprint != fingerprint] + [entry])
        return entry

    def load(self, entry: KeyEntry) -> PrivateKey:
        if entry.store == "keyring":
            import keyring

            pem = keyring.get_password(KEYRING_SERVICE, entry.location)
            if pem is None:
                raise KeyError(f"key {entry.key_id or entry.fingerprint[:16]} is missing from the OS keyring")
            data = pem.encode("ascii")
        else:
            path = self.key_dir / entry.location
            if not path.exists():
                raise KeyError(f"key file {path} is missing")
            data = path.read_bytes()
        try:
            if entry.algorithm == "sm2-sm3":
                return load_sm2_pem(data, self._secret, user_id=self.suite.sm2_user_id)
            key = serialization.load_pem_private_key(data, password=self._secret)
        except (ValueError, TypeError):
            raise KeyError("the private key cannot be decrypted: wrong agent secret, or the key was altered") from None
        return key  # type: ignore[return-value]

    def encryption_key(self) -> Sm2PrivateKey | None:
        """The bank's SM2 encryption key (registered with the centre at enrolment, separate from the
        signing keys), to open the personal fields a gm centre seals to it; None when there is none.

        Raises:
            KeyError: it cannot be read or decrypted (wrong agent secret, missing file).
        """
        entry = next((e for e in self.entries() if e.state == "encryption"), None)
        if entry is None:
            return None
        key = self.load(entry)
        if not isinstance(key, Sm2PrivateKey):
            raise KeyError("the encryption key in the custody is not an SM2 key")
        return key

    def decryption_keys(self) -> list[Sm2PrivateKey]:
        """The bank's SM2 encryption key, then during a rotation the one it replaced and the one being registered
        (the centre may seal to it before this machine switches): what sealed answers and webhooks are opened with."""
        ranked = {"encryption": 0, "encryption-previous": 1, "encryption-next": 2}
        found = []
        for entry in sorted((e for e in self.entries() if e.state in ranked), key=lambda e: ranked[e.state]):
            key = self.load(entry)
            if isinstance(key, Sm2PrivateKey):
                found.append(key)
        return found

    def put_software(self, key: PrivateKey, state: KeyState, **extra: Any) -> KeyEntry:
        """Keep ``key`` as an encrypted software key (file or keyring) even beside a PKCS#11 token."""
        store = self.store
        try:
            if store == "pkcs11":
                self.store = "file"
            return self.put(key, state, **extra)
        finally:
            self.store = store

    def ensure_encryption_key(self) -> Sm2PrivateKey:
        """The bank's SM2 encryption key, made (and kept encrypted like the others) if there is none.
        It is a software key even where signing keys live in a PKCS#11 token: it is kept as an
        encrypted PKCS#8 file (or keyring entry) under the agent secret."""
        key = self.encryption_key()
        if key is not None:
            return key
        key = Sm2PrivateKey.generate()
        self.put_software(key, "encryption")
        return key

    def erase(self, entry: KeyEntry) -> None:
        """Forget a private key (its manifest entry stays, as ``retired``)."""
        if entry.store == "pkcs11":
            assert self.token is not None
            self.token.destroy(bytes.fromhex(entry.location))
        elif entry.store == "keyring":
            import keyring
            import keyring.errors

            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                keyring.delete_password(KEYRING_SERVICE, entry.location)
        else:
            (self.key_dir / entry.location).unlink(missing_ok=True)

    def where(self, entry: KeyEntry) -> str:
        if entry.store == "pkcs11":
            assert self.token is not None
            token = self.token.token_label or f"slot {self.token.slot}"
            return f"PKCS#11 token {token} ({self.token.module}), CKA_ID {entry.location}, not extractable"
        if entry.store == "keyring":
            return f"OS keyring (service {KEYRING_SERVICE}, user {entry.location}), encrypted PKCS#8"
        return f"{self.key_dir / entry.location} (encrypted PKCS#8, mode 0600)"

    @property
    def bank_ca(self) -> Path:
        """Where the centre's institution-certificate CA is kept (from the enrolment bundle)."""
        return self.key_dir / "bank-ca.pem"

    def signer(self, key_id: str) -> KeySigner | Pkcs11Signer:
        return self.signer_of(self.entry(key_id), key_id)

    def certificate_request(self, entry: KeyEntry, subject: dict[str, str]) -> str:
        """A PEM PKCS#10 request for ``entry``'s key, signed by it where it is kept (:mod:`sdk.csr`)."""
        from sdk.csr import build_request

        return build_request(self.signer_of(entry, entry.key_id or "pending"), subject)

    def accept_certificate(self, entry: KeyEntry, certificate: str) -> None:
        """Keep the certificate the centre issued for ``entry``'s key, once checked: signed by the
        centre's institution CA (:attr:`bank_ca`), for this key, valid now.

        Raises:
            ValueError: it is not such a certificate (the message says why).
        """
        from sdk.csr import check_issued_certificate

        check_issued_certificate(certificate, ca=self.bank_ca.read_bytes(), public_key=self.public_key(entry))
        entries = self.entries()
        for e in entries:
            if e.fingerprint == entry.fingerprint:
                e.certificate = certificate
        self.save(entries)

    def sm2_signer(self, key_id: str) -> Sm2PrivateKey | Pkcs11Signer:
        """The SM2 key ``key_id`` as the signer of a provincial platform's envelope (``[platform] key_id``,
        :class:`sdk.dialects.province.EnvelopeSigner`): the decrypted key, or — made inside the PKCS#11 token
        (``regbridge platform enroll`` with ``key_store = "pkcs11"``) — a signer whose key never leaves it. Its
        SM2 user id is the envelope's (GM/T 0009 default), whatever the centre's suite.

        Raises:
            KeyError: not in the manifest, not SM2, or it cannot be decrypted.
            agent.credentials.pkcs11.TokenUnavailable: the token or its key cannot be reached.
        """
        entry = self.entry(key_id)
        if entry.algorithm != "sm2-sm3":
            raise KeyError(f"key {key_id} is not an SM2 key: the platform needs SM2 (regbridge platform enroll)")
        if entry.store == "pkcs11":
            assert self.token is not None
            ref = bytes.fromhex(entry.location)
            public = self.token.public_key(entry.algorithm, ref)
            assert isinstance(public, Sm2PublicKey)
            return Pkcs11Signer(key_id, self.token, ref, entry.algorithm, public.with_user_id(DEFAULT_USER_ID))
        key = self.load(entry)
        if not isinstance(key, Sm2PrivateKey):
            raise KeyError(f"key {key_id} is not an SM2 key: the platform needs SM2 (regbridge platform enroll)")
        return key.with_user_id(DEFAULT_USER_ID)

    def signer_of(self, entry: KeyEntry, key_id: str) -> KeySigner | Pkcs11Signer:
        """A signer over ``entry``'s key under ``key_id`` (a key not yet registered signs its certificate request)."""
        if entry.store == "pkcs11":
            assert self.token is not None
            ref = bytes.fromhex(entry.location)
            return Pkcs11Signer(key_id, self.token, ref, entry.algorithm, self.public_key(entry))
        return KeySigner(key_id, self.load(entry))


class DecryptionKeys(Sequence[Sm2PrivateKey]):
    """:meth:`KeyCustody.decryption_keys`, read again whenever the manifest changes (a rotation in another
    process): hand it to :class:`sdk.FieldEncryption` and the webhook receiver of a running agent."""

    def __init__(self, custody: KeyCustody) -> None:
        self.custody = custody
        self._seen: int | None = None
        self._keys: list[Sm2PrivateKey] = []
        self._lock = threading.Lock()

    def _fresh(self) -> list[Sm2PrivateKey]:
        with self._lock:
            try:
                mtime = self.custody.manifest.stat().st_mtime_ns
            except OSError:
                return self._keys
            if mtime != self._seen:
                self._keys, self._seen = self.custody.decryption_keys(), mtime
            return self._keys

    @overload
    def __getitem__(self, index: int) -> Sm2PrivateKey: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Sm2PrivateKey]: ...
    def __getitem__(self, index: int | slice) -> Sm2PrivateKey | Sequence[Sm2PrivateKey]:
        return self._fresh()[index]

    def __len__(self) -> int:
        return len(self._fresh())


def custody_for(config: AgentConfig, secret: bytes) -> KeyCustody:
    centre = config.centre
    token = None
    if centre.key_store == "pkcs11":
        p11 = centre.pkcs11
        if p11 is None:
            raise ValueError("centre.key_store is pkcs11 but [centre.pkcs11] is missing")
        pin = read_pin(config.resolve(p11.pin_file) if p11.pin_file else None)
        token = Pkcs11Token(p11.module, pin, p11.token_label, p11.slot, dict(p11.mechanisms))
    return KeyCustody(
        config.resolve(centre.key_dir),
        centre.key_store,
        centre.institution_id,
        secret,
        suite=centre.crypto_suite,
        token=token,
    )


def retire_due(custody: KeyCustody, *, keep: str) -> list[str]:
    """Erase previous keys whose grace period has ended (never ``keep``, the key in use)."""
    entries = custody.entries()
    retired = []
    for e in entries:
        due = e.retire_at is not None and datetime.fromisoformat(e.retire_at) <= _now()
        if due and ((e.state == "previous" and e.key_id != keep) or e.state == "encryption-previous"):
            custody.erase(e)
            e.state = "retired"
            retired.append(e.key_id or e.fingerprint)
    if retired:
        custody.save(entries)
    return retired
