"""An uploaded file against what was declared of it (size and SHA-256)."""

from __future__ import annotations

import hashlib

from sdk.models import Material

from .errors import CentreError

__all__ = ["check_payload"]


def check_payload(material_id: str, material: Material, content: bytes) -> str:
    """Answer the content's SHA-256 (hex) when it is the declared material.

    Raises:
        CentreError: 422 ``payload_mismatch`` when its size or digest differs from the declaration.
    """
    digest = hashlib.sha256(content).hexdigest()
    if len(content) != material.size or digest != material.sha256:
        raise CentreError(
            422,
            "payload_mismatch",
            f"material {material_id}: received {len(content)} bytes with sha256 {digest[:12]}…, "
            f"declared {material.size} bytes with sha256 {material.sha256[:12]}…",
        )
    return digest
