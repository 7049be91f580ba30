"""Content-addressed, encrypted copies of what the agent must not lose: materials and exports.

An export's materials may be removed from the inbox once it is ingested; the upload (perhaps
after a restart, perhaps for a 补正) reads the copy kept here. Copies are sealed with the data
cipher, because a material is an ID card scan or a contract; the name is the SHA-256 of the
plaintext, so the same file is kept once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from sdk.support.files import atomic_write

__all__ = ["BlobStore"]


class BlobStore:
    def __init__(
        self,
        root: Path,
        encrypt: Callable[[bytes], bytes] | None = None,
        decrypt: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.root = root
        self._encrypt = encrypt or (lambda b: b)
        self._decrypt = decrypt or (lambda b: b)
        self._kept: set[str] = set()  # names seen kept: blobs are never removed, so one stat each is enough
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def put(self, content: bytes) -> str:
        """Keep ``content``; returns its name (the SHA-256 of the plaintext)."""
        digest = hashlib.sha256(content).hexdigest()
        path = self.root / digest[:2] / digest
        if not self.exists(digest):
            atomic_write(path, self._encrypt(content))
            self._kept.add(digest)
        return digest

    def get(self, name: str) -> bytes:
        content = self._decrypt((self.root / name[:2] / name).read_bytes())
        if hashlib.sha256(content).hexdigest() != name:
            raise ValueError(f"blob {name[:12]}… is damaged: its content no longer matches its digest")
        return content

    def exists(self, name: str) -> bool:
        if name in self._kept:
            return True
        if (self.root / name[:2] / name).exists():
            self._kept.add(name)
            return True
        return False
