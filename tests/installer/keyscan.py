"""Look for private key material in plaintext in files: the key in every encoding it could leak in."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

MARKERS = (b"-----BEGIN PRIVATE KEY-----", b"BEGIN EC PRIVATE KEY", b"BEGIN OPENSSH PRIVATE KEY")


def key_forms(key: Any) -> list[tuple[str, bytes]]:
    """The key's secret bytes as raw, DER, hex, base64 and base64url (a JWK's ``d``), and its PEM's first line."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())  # fmt: skip
    else:
        raw = key.private_numbers().private_value.to_bytes(32, "big")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    forms = [("pem body", pem.splitlines()[1])]
    for name, value in (("raw", raw), ("der", der)):
        forms += [
            (f"{name}", value),
            (f"{name} hex", value.hex().encode()),
            (f"{name} HEX", value.hex().upper().encode()),
            (f"{name} base64", base64.b64encode(value).rstrip(b"=")),
            (f"{name} base64url", base64.urlsafe_b64encode(value).rstrip(b"=")),
        ]
    return forms


def scan_for_keys(roots: list[Path], forms: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """(file, what was found) for every file under ``roots`` holding a plaintext form or a PEM marker."""
    found = []
    files = [p for root in roots for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()]
    for path in files:
        data = path.read_bytes()
        found += [(str(path), f"marker {m.decode()}") for m in MARKERS if m in data]
        found += [(str(path), what) for what, value in forms if value in data]
    return found
