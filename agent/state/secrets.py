"""The agent's secret: where it comes from, and the data cipher derived from it.

The secret (a passphrase) unlocks the agent's private key (encrypted PKCS#8) and derives the
key that seals personal data at rest (the state store's payloads, materials, export copies).
It is read, in order, from:

1. ``$REGBRIDGE_AGENT_SECRET`` (tests, containers);
2. a systemd credential (``$CREDENTIALS_DIRECTORY/regbridge-secret``);
3. the ``secret_file`` of the config, which must be readable by its owner only;
4. the OS keyring (service ``regbridge-agent``, user = the institution id).

It never sits in the config file or in a log.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = ["DataCipher", "SecretUnavailable", "keyring_backend", "load_secret", "new_secret", "store_secret"]

KEYRING_SERVICE = "regbridge-agent"


class SecretUnavailable(RuntimeError):
    """No secret could be found, or its file is readable by others."""


def load_secret(secret_file: Path | None = None, *, keyring_user: str | None = None) -> bytes:
    env = os.environ.get("REGBRIDGE_AGENT_SECRET")
    if env:
        return env.encode()
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / "regbridge-secret").is_file():
        return (Path(cred_dir) / "regbridge-secret").read_bytes().strip()
    if secret_file is not None and secret_file.exists():
        mode = secret_file.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretUnavailable(
                f"{secret_file} is readable by others (mode {stat.S_IMODE(mode):o}); run: chmod 600 {secret_file}"
            )
        return secret_file.read_bytes().strip()
    if keyring_user:
        try:
            import keyring

            value = keyring.get_password(KEYRING_SERVICE, keyring_user)
        except Exception:  # no keyring backend on a headless server
            value = None
        if value:
            return value.encode()
    where = f"{secret_file}, " if secret_file else ""
    raise SecretUnavailable(
        f"no agent secret: set REGBRIDGE_AGENT_SECRET, a systemd credential 'regbridge-secret', {where}"
        "or the OS keyring (service regbridge-agent)"
    )


def keyring_backend() -> str | None:
    """The OS keyring's backend name when one works here (a write/read/delete round trip), else None.

    Backends that keep secrets in plaintext files are not accepted.
    """
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        name = type(backend).__module__ + "." + type(backend).__name__
        if isinstance(backend, fail.Keyring) or "plaintext" in name.lower() or "null" in name.lower():
            return None
        if getattr(backend, "backends", None) == []:  # a chainer with nothing to chain
            return None
        probe = f"probe-{os.getpid()}"
        keyring.set_password(KEYRING_SERVICE, probe, "x")
        ok = keyring.get_password(KEYRING_SERVICE, probe) == "x"
        keyring.delete_password(KEYRING_SERVICE, probe)
        return name if ok else None
    except Exception:  # no D-Bus session, a locked keychain, no backend at all
        return None


def new_secret() -> bytes:
    """A fresh agent secret (256 random bits, printable)."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=")


def store_secret(secret: bytes, *, secret_file: Path | None = None, keyring_user: str | None = None) -> str:
    """Keep ``secret`` in the OS keyring (``keyring_user``) or a file only its owner can read; say where."""
    if keyring_user is not None:
        import keyring

        keyring.set_password(KEYRING_SERVICE, keyring_user, secret.decode())
        return f"OS keyring (service {KEYRING_SERVICE}, user {keyring_user})"
    if secret_file is None:
        raise ValueError("store_secret needs a keyring user or a file")
    from sdk.support.files import atomic_write

    secret_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(secret_file, secret + b"\n", mode=0o600)
    return f"{secret_file} (mode 0600)"


class DataCipher:
    """Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the secret with scrypt."""

    def __init__(self, secret: bytes, salt: bytes) -> None:
        key = Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    @classmethod
    def for_directory(cls, secret: bytes, data_dir: Path) -> DataCipher:
        """The cipher of a data directory; its salt is made on first use and kept beside the state."""
        salt_file = data_dir / "cipher.salt"
        if not salt_file.exists():
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            from sdk.support.files import atomic_write

            atomic_write(salt_file, os.urandom(16))
        return cls(secret, salt_file.read_bytes())

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, data: bytes) -> bytes:
        try:
            return self._fernet.decrypt(data)
        except InvalidToken:
            raise SecretUnavailable(
                "stored data cannot be decrypted: wrong agent secret, or the data was altered"
            ) from None
