"""Certificates on disk (issue 17 item 9): mode 0640 or tighter whatever the umask, and no two loans
share a folder — before the fix loans ``.`` and ``..`` (and ``a:b`` / ``a_b``) were both stored
under one name, and a certificate PDF was written 0644 outside systemd."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from connectors.documents import FilesystemStore, safe_key, safe_name

LOANS = [".", "..", "_", "...", ":", "a:b", "a_b", "a%3Ab", "CON", "con", "%43ON", "", " ", "x ", "x", "a/b", "a%2Fb"]


def test_every_loan_number_gets_a_folder_of_its_own() -> None:
    names = [safe_name(loan) for loan in LOANS]
    assert len(set(names)) == len(LOANS), dict(zip(LOANS, names, strict=True))
    for name in names:
        assert name and "/" not in name and "\\" not in name and not name.startswith(".") and name not in (".", "..")


def test_certificates_are_written_0640_or_tighter_whatever_the_umask(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "docs")
    old = os.umask(0o022)
    try:
        for i, loan in enumerate((".", "..", "LN-1")):
            store.put(safe_key(loan, f"皖(2026)长丰县不动产证明第010000{i}号"), b"%PDF-1.7 " + bytes([i]), {"n": i})
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "docs").rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".pdf"]) == 3
    for path in files:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o137 == 0, f"{path.name}: {oct(mode)}"
    folders = [p for p in (tmp_path / "docs").iterdir() if p.is_dir()]
    assert len(folders) == 3
