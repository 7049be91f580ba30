"""What the agent stored in its document store, told apart by what each file is, not by its extension.

The agent keeps a sealed notice (受理凭证, 补正通知书, 不予登记通知书…, issue 20) beside the loan's
不动产登记证明, in the same folder and format; each document has a JSON sidecar of the same stem, and a
notice's sidecar carries its ``notice_id``. Tests that count certificates use :func:`stored_certificates`.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["is_notice", "stored_certificates", "stored_notices"]

#: the document formats the agent stores: PAdES PDF (intl suite), OFD (gm suite, GB/T 33190)
DOCUMENT_SUFFIXES = (".pdf", ".ofd")


def is_notice(path: Path) -> bool:
    """True when the stored document at ``path`` is a sealed notice (its sidecar names a ``notice_id``)."""
    sidecar = path.with_suffix(".json")
    return sidecar.is_file() and "notice_id" in json.loads(sidecar.read_text(encoding="utf-8"))


def _documents(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.suffix in DOCUMENT_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def stored_certificates(root: Path) -> list[Path]:
    """The 不动产登记证明 files under the document store ``root`` (notices and temporary files left out)."""
    return [p for p in _documents(root) if not is_notice(p)]


def stored_notices(root: Path) -> list[Path]:
    """The sealed notices under the document store ``root``."""
    return [p for p in _documents(root) if is_notice(p)]
