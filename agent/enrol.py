"""Enrolment: a centre's bundle → a key pair made here, registered with the one-time token, and
the agent's config (centre URL, institution, key id, trust anchors) written beside it.

The private key never leaves this machine and is written only as encrypted PKCS#8 (mode 0600)
under the agent secret. The bundle's signature is checked with the centre key it carries and,
when the centre published it out of band, against that key's fingerprint.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

import sdk
from agent.blobs import atomic_write
from sdk.signing import generate_private_key, jwk_fingerprint, jwk_from_public_key, public_key_from_jwk

__all__ = ["BundleError", "enrol", "render_config", "verify_bundle"]


class BundleError(ValueError):
    """The enrolment bundle cannot be trusted or used."""


def verify_bundle(doc: dict[str, Any], *, expected_fingerprint: str | None = None) -> dict[str, Any]:
    try:
        bundle, signature = doc["bundle"], doc["signature"]
        trust = bundle["trust"]
        key = public_key_from_jwk(trust["centre_key"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"not an enrolment bundle: {exc}") from None
    if signature.get("keyid") != trust["centre_key_id"]:
        raise BundleError("the bundle is signed by another key than the centre key it names")
    if (
        expected_fingerprint
        and jwk_fingerprint(sdk.models.PublicJwk.model_validate(trust["centre_key"])) != expected_fingerprint
    ):
        raise BundleError("the bundle's centre key is not the one the centre published (fingerprint differs)")
    canonical = json.dumps(bundle, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    try:
        key.verify(base64.b64decode(signature["value"]), canonical)  # type: ignore[call-arg]
    except Exception:
        raise BundleError("the bundle's signature does not verify: it was altered or signed by someone else") from None
    if datetime.fromisoformat(bundle["expires_at"]) < datetime.now(UTC):
        raise BundleError(f"the bundle expired at {bundle['expires_at']}; ask the centre for a new one")
    return dict(bundle)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        items = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def render_config(sections: dict[str, Any]) -> str:
    """A small TOML writer for the agent's config (tables, arrays of tables, scalars)."""
    lines = ["# RegBridge agent configuration (written by enrolment; see docs/agent.md)"]
    for key, value in sections.items():
        if value is None:
            continue
        if not isinstance(value, dict | list) or (
            isinstance(value, list) and not all(isinstance(v, dict) for v in value)
        ):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in sections.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines += ["", f"[[{key}]]"] + [f"{k} = {_toml_value(v)}" for k, v in item.items() if v is not None]
    return "\n".join(lines) + "\n"


def enrol(
    doc: dict[str, Any],
    directory: Path,
    *,
    secret: bytes,
    inboxes: list[dict[str, Any]],
    settings: dict[str, Any] | None = None,
    algorithm: sdk.signing.Algorithm = "ed25519",
    label: str = "agent",
) -> Path:
    """Enrol with the centre and write ``directory/agent.toml``; returns its path."""
    bundle = verify_bundle(doc)
    directory.mkdir(parents=True, exist_ok=True)
    keys = directory / "keys"
    keys.mkdir(exist_ok=True, mode=0o700)
    key = generate_private_key(algorithm)
    with sdk.Client(bundle["api_base_url"]) as anon:
        result = anon.credentials.enroll(bundle["token"], jwk_from_public_key(key.public_key()), label=label)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(secret)
    )
    atomic_write(keys / "agent.key", pem, mode=0o600)
    atomic_write(keys / "seal-ca.pem", bundle["trust"]["seal_ca_pem"].encode(), mode=0o644)
    config = {
        **(settings or {}),
        "centre": {
            "url": bundle["api_base_url"],
            "institution_id": bundle["institution_id"],
            "institution_name": bundle["institution_name"],
            "institution_uscc": bundle["institution_uscc"],
            "key_id": result.key_id,
            "key_file": "keys/agent.key",
            "seal_ca_file": "keys/seal-ca.pem",
            "centre_key_id": bundle["trust"]["centre_key_id"],
            "centre_key": bundle["trust"]["centre_key"],
        },
        "inbox": inboxes,
    }
    path = directory / "agent.toml"
    atomic_write(path, render_config(config).encode(), mode=0o640)
    return path
