"""SM4-GCM at rest (the gm suite), and the migration that re-encrypts a state made under Fernet.

In the ``gm`` crypto suite the agent seals personal data at rest — the state store's sealed
columns and the blobs (materials, export copies) — with SM4-GCM (GB/T 32907, RFC 8998 GCM)
instead of Fernet (AES-128-CBC + HMAC-SHA256, the ``intl`` cipher). The 128-bit key is derived
from the agent secret with scrypt (the same parameters and per-directory salt as Fernet's key,
a different output so the two keys are unrelated: the info byte). A sealed value is
``b"SM4G" ‖ version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)``; Fernet tokens start with
``gAAAAA``, so either is recognised when read and nothing is ever guessed.

:func:`reencrypt_state` moves an existing state from Fernet to SM4-GCM: every sealed column
(``BLOB`` columns of the state store) in one transaction, and every blob file atomically
(re-running it is harmless: a value already under SM4-GCM is left as it is). The agent runs it
at start in gm mode until the store's ``meta.cipher`` says ``sm4-gcm``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from sdk.gm.sm4 import sm4_gcm_decrypt, sm4_gcm_encrypt
from sdk.support.files import atomic_write

__all__ = ["MAGIC", "Sm4GcmCipher", "reencrypt_state"]

MAGIC = b"SM4G\x01"


class _Cipher(Protocol):
    def encrypt(self, data: bytes) -> bytes: ...

    def decrypt(self, data: bytes) -> bytes: ...


class Sm4GcmCipher:
    """SM4-GCM under a key derived from the agent secret; reads Fernet tokens through ``legacy``."""

    def __init__(self, secret: bytes, salt: bytes, legacy: _Cipher | None = None) -> None:
        self._key = Scrypt(salt=salt + b"sm4", length=16, n=2**14, r=8, p=1).derive(secret)
        self._legacy = legacy

    def encrypt(self, data: bytes) -> bytes:
        return MAGIC + sm4_gcm_encrypt(self._key, data, MAGIC)

    def decrypt(self, data: bytes) -> bytes:
        from agent.state.secrets import SecretUnavailable

        if data.startswith(MAGIC):
            try:
                return sm4_gcm_decrypt(self._key, data[len(MAGIC) :], MAGIC)
            except ValueError:
                raise SecretUnavailable(
                    "stored data cannot be decrypted: wrong agent secret, or the data was altered"
                ) from None
        if self._legacy is None:
            raise SecretUnavailable("stored data is not SM4-GCM sealed")
        return self._legacy.decrypt(data)


def _blob_files(root: Path) -> Iterator[Path]:
    if root.exists():
        yield from (p for p in sorted(root.glob("*/*")) if p.is_file() and not p.name.startswith("."))


def reencrypt_state(db_path: Path, blobs: Path, cipher: Sm4GcmCipher) -> dict[str, int]:
    """Re-encrypt a state directory's sealed data from Fernet to SM4-GCM; answer how many of each.

    Each blob file is replaced atomically first, then the database's sealed values are rewritten
    in one transaction that also records ``meta.cipher = sm4-gcm`` (a crash leaves all or none of
    them, and a value in either form stays readable). Safe to run again at any point.
    """
    import sqlite3

    counts = {"values": 0, "blobs": 0}
    for path in _blob_files(blobs):
        data = path.read_bytes()
        if data.startswith(MAGIC):
            continue
        atomic_write(path, cipher.encrypt(cipher.decrypt(data)), mode=os.stat(path).st_mode & 0o777)
        counts["blobs"] += 1
    db = sqlite3.connect(str(db_path), isolation_level=None, timeout=30)
    try:
        db.execute("BEGIN IMMEDIATE")
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")') if str(r[2]).upper() == "BLOB"]
            for column in columns:
                rows = db.execute(f'SELECT rowid, "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall()
                for rowid, value in rows:
                    value = bytes(value)
                    if value.startswith(MAGIC):
                        continue
                    sealed = cipher.encrypt(cipher.decrypt(value))
                    db.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?', (sealed, rowid))
                    counts["values"] += 1
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('cipher', 'sm4-gcm')")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()
    return counts
