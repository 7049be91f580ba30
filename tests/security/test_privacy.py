"""Privacy: no unmasked ID number or full name in what the agent writes or shows.

The whole run is scanned at its end (tests/conftest.py, over every test's folders and the
agent's log records). Here: the demo end to end, with what a person at the branch or in IT
would look at — ``status`` (table and JSON), ``audit verify``, ``config show``, ``doctor`` —
written to files and scanned; and the scanner itself, shown to find what it must find.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sandbox import register
from sdk.privacy import mask_id, mask_name
from tests import proof
from tests.privacy_scan import PLANTED, people, scan


def _regbridge(*args: str, out: Path, cwd: Path | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGBRIDGE_")}
    with open(out, "wb") as fh:
        return subprocess.run([sys.executable, "-m", "agent.cli", *args], stdout=fh, stderr=subprocess.STDOUT,
                              env=env, cwd=cwd, timeout=300).returncode  # fmt: skip


def test_the_demo_and_every_screen_show_no_personal_data_unmasked(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    shown = tmp_path / "shown"
    shown.mkdir()
    assert _regbridge("demo", "--dir", str(demo), out=shown / "demo.txt") == 0, (shown / "demo.txt").read_text()
    config = str(demo / "agent.toml")
    for name, args in {
        "status.txt": ("status", "-c", config),
        "status.json": ("status", "-c", config, "--json"),
        "audit.txt": ("audit", "verify", "-c", config),
        "config.txt": ("config", "show", "-c", config),
        "doctor.json": ("doctor", "-c", config, "--json"),
        "keys.txt": ("keys", "show", "-c", config),
    }.items():
        _regbridge(*args, out=shown / name)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    findings = scan(tmp_path)
    proof.record(
        proof.Result("privacy: demo, logs, audit, receipts, screens scanned", runs=1, applications=len(written),
                     lost=len(findings), duplicated=0)
    )  # fmt: skip
    assert (demo / "var" / "agent.log").stat().st_size > 0 and any((demo / "inbox").rglob("receipts-*.csv"))
    assert not findings, "\n".join(map(str, findings))


def test_the_scan_finds_an_unmasked_id_or_name_and_passes_masked_ones(tmp_path: Path) -> None:
    tmp_path = tmp_path / PLANTED
    tmp_path.mkdir()
    owner = next(o for o in register.owners_of(8) if len(o.id_number) == 18)
    names, ids = people()
    assert owner.name in names and owner.id_number in ids
    (tmp_path / "masked.log").write_text(f"{mask_name(owner.name)} {mask_id(owner.id_number)}\n", encoding="utf-8")
    assert scan(tmp_path) == []
    (tmp_path / "leaky.log").write_text(f"borrower {owner.name}\n", encoding="utf-8")
    (tmp_path / "leaky.csv").write_bytes(f"x,{owner.id_number}\n".encode("gb18030"))
    found = {(f.path.name, f.what) for f in scan(tmp_path)}
    assert found == {("leaky.log", "name"), ("leaky.csv", "resident ID")}
    # exports dropped by the loan system and the certificates may hold them; the agent's own outputs may not
    inbox = tmp_path / "branch" / "inbox" / "corebank"
    (inbox / "receipts").mkdir(parents=True)
    (inbox / "export.csv").write_text(owner.id_number, encoding="utf-8")
    (inbox / "receipts" / "receipts-1.csv").write_text(owner.id_number, encoding="utf-8")
    files = {f.path.name for f in scan(tmp_path)}
    assert "export.csv" not in files and "receipts-1.csv" in files
