"""SIGKILL the agent at random moments while applications flow (60; 200 under ``make proof``); restart it; again
and again.

Afterwards the centre holds exactly one application per loan operation, every certificate and every
sealed notice (受理凭证, issue 20) it issued is in the document store exactly once (and intact) — told
apart by what each is (its sidecar names a 证明号 or a 文书编号), not by the file's extension — and every
receipt line appears once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from agent.demo import samples
from agent.state.audit import verify_audit
from sandbox import register
from sandbox.local import LocalCentre
from tests import proof

from ..conftest import SECRET, drop, make_branch

UNITS = [n for n in range(1, proof.size(60, 200) + 2) if n != register.SEIZED_UNIT]  # first mortgages


def _stages(db: Path) -> Counter[str]:
    if not db.exists():
        return Counter()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT stage FROM applications").fetchall()
        pending = con.execute("SELECT COUNT(*) FROM receipt_batches WHERE written = 0").fetchone()[0]
        pending += con.execute("SELECT COUNT(*) FROM receipts WHERE batch IS NULL").fetchone()[0]  # not batched yet
        unstored = con.execute("SELECT COUNT(*) FROM certificates WHERE stage != 'stored'").fetchone()[0]
        notices = con.execute("SELECT value FROM meta WHERE key = 'notices_pending'").fetchone()
    except sqlite3.Error:
        return Counter()
    finally:
        con.close()
    counts = Counter(r[0] for r in rows)
    counts["_pending_receipts"] = pending
    counts["_unstored_certificates"] = unstored
    counts["_pending_notices"] = len(json.loads(notices[0])) if notices else 0
    return counts


def _stored_documents(docs: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(certificates, notices) in the document store, each as (证明号 or 文书编号, file), told apart by the
    sidecar the agent wrote beside each (a certificate's names its certificate_number, a notice's its
    notice_id and notice_number) — whatever the file's extension (.pdf in intl, .ofd in gm)."""
    certificates, notices = [], []
    for document in sorted(docs.rglob("*")):
        if document.name.startswith(".") or not document.is_file() or document.suffix == ".json":
            continue
        sidecar = document.with_suffix(".json")
        assert sidecar.exists(), f"{document}: its sidecar"
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if "notice_id" in meta:
            notices.append((meta["notice_number"], document))
        else:
            certificates.append((meta["certificate_number"], document))
    return certificates, notices


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(centre: LocalCentre, tmp_path: Path) -> None:
    seed = int(os.environ.get("REGBRIDGE_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    branch = make_branch(
        centre,
        tmp_path / "branch",
        inboxes=[{"name": "corebank", "path": "inbox/corebank", "profile": "corebank_csv", "completion": "rename"}],
        rescan_seconds=1.0,
        max_poll_seconds=1.0,
        concurrency=4,
    )
    inbox = branch.inbox()
    rows = []
    for n in UNITS:
        loan = f"K-{n:04d}"
        samples.write_materials(inbox / "materials", loan, "mortgage_first")
        rows += samples.mortgage_rows(loan, n, amount="100")
    drop(inbox, "big.csv", samples.corebank_csv(rows))
    env = {**os.environ, "REGBRIDGE_AGENT_SECRET": SECRET.decode()}
    command = [sys.executable, "-m", "agent.cli", "run", "--config", str(branch.config)]
    db = branch.root / "var" / "state.db"
    log = open(tmp_path / "agent.stderr", "ab")  # noqa: SIM115 - shared by every run
    kills = 0
    deadline = time.monotonic() + 420
    try:
        while kills < proof.size(5, 8):
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
            time.sleep(rng.uniform(1.5, 6.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
            if _stages(db)["done"] >= len(UNITS) - 20:
                break
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        while time.monotonic() < deadline:
            s = _stages(db)
            if (
                s["done"] + s["rejected"] == len(UNITS)
                and not s["_pending_receipts"]
                and not s["_unstored_certificates"]
                and not s["_pending_notices"]
            ):
                break
            assert proc.poll() is None, f"the agent died (seed {seed}); see {tmp_path / 'agent.stderr'}"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "a clean stop on SIGTERM"
    finally:
        log.close()
        if proc.poll() is None:
            proc.kill()
    stages = _stages(db)
    assert stages["done"] == len(UNITS), f"seed {seed}: {stages} after {kills} kills"

    # the centre: exactly one application per loan operation, none missing
    refs = Counter(r["client_reference"] for r in centre.store.all("SELECT client_reference FROM applications"))
    assert refs == Counter({f"K-{n:04d}-DYSC": 1 for n in UNITS}), f"seed {seed}"

    # the document store: every certificate the centre issued, exactly once, byte for byte
    issued = {
        r["certificate_number"]: hashlib.sha256(bytes(r["content"])).hexdigest()
        for r in centre.store.all("SELECT certificate_number, content FROM certificates")
    }
    docs = branch.root / "documents"
    stored, notices = _stored_documents(docs)
    assert Counter(number for number, _ in stored) == Counter(issued.keys()), f"seed {seed}"
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == issued[number] for number, p in stored)

    # ... and every sealed notice it issued (a 受理凭证 per accepted application), exactly once, byte for byte
    issued_notices = {
        r["notice_number"]: hashlib.sha256(bytes(r["content"])).hexdigest()
        # (not the sealed 查询结果 of the collateral watch's 登记资料查询: answers the bank fetches only when staff ask)
        for r in centre.store.all("SELECT notice_number, content FROM notices WHERE kind != 'query_result'")
    }
    assert len(issued_notices) >= len(UNITS), f"seed {seed}: a 受理凭证 per application"
    assert Counter(number for number, _ in notices) == Counter(issued_notices.keys()), f"seed {seed}"
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == issued_notices[number] for number, p in notices)

    # receipts: each line once, one registration per loan operation
    lines = []
    for path in sorted((inbox / "receipts").glob("receipts-*.csv")):
        lines += list(csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030"))))
    keys = Counter((r["业务编号"], r["事件"], r["不动产登记证明号"]) for r in lines)
    assert max(keys.values()) == 1, f"seed {seed}: duplicated receipt lines {[k for k, v in keys.items() if v > 1][:3]}"
    assert Counter(r["业务编号"] for r in lines if r["事件"] == "registered") == Counter(refs)

    assert verify_audit(branch.root / "var" / "audit.log").ok
