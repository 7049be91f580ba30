"""The key scan used by the installer and enrolment tests finds a key however it leaked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sdk.gm.sm2 import Sm2PrivateKey
from sdk.signing import generate_private_key

from .keyscan import key_forms, scan_for_keys


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256-sha256"])
def test_the_scan_finds_a_leaked_key_in_each_encoding_and_not_an_encrypted_one(tmp_path: Path, algorithm: str) -> None:
    key = generate_private_key(algorithm)  # type: ignore[arg-type]
    assert not isinstance(key, Sm2PrivateKey)  # PKCS#8 forms of the intl suite's keys
    forms = key_forms(key)
    raw = dict(forms)["raw"]
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    (tmp_path / "a.pem").write_bytes(pem)
    (tmp_path / "log.jsonl").write_text(json.dumps({"d": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "dump.txt").write_text(f"key={raw.hex()}\n")
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"passphrase"))  # fmt: skip
    (tmp_path / "safe.key").write_bytes(encrypted)
    found = {Path(f).name for f, _ in scan_for_keys([tmp_path], forms)}
    assert found == {"a.pem", "log.jsonl", "dump.txt"}
