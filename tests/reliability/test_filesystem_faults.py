"""Disk and filesystem faults, on real (small) filesystems mounted for the test.

- the state's disk fills up: the agent pauses with a ``disk_full`` alert before writing into a
  full disk, ingests nothing meanwhile, keeps an intact state (``PRAGMA integrity_check``) and
  resumes by itself when space is freed;
- the watched share (a bind mount) disappears and comes back: exports dropped on the share
  meanwhile are picked up after, and no receipt is written into the empty local folder left behind;
- the document store's filesystem turns read-only: certificates wait with a ``document_store``
  alert and are stored once it is writable again.

Each runs the agent daemon (``regbridge run``) as its own process. Mounting needs root (CI and
the development machines run as root; tmpfs and bind mounts need no extra package).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox.local import LocalCentre
from tests import proof
from tests.reliability.harness import (
    export_loans,
    local_counts,
    make_branch_for,
    open_alerts,
    outcome,
    run_daemon_until_done,
)

BATCH = proof.size(8, 60)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


def _wait(what: str, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_a_full_disk_pauses_with_an_alert_and_resumes_when_space_returns(centre: LocalCentre, tmp_path: Path) -> None:
    started = time.monotonic()
    branch = make_branch_for(centre, tmp_path / "branch")
    var = branch.root / "var"
    kept = var.rename(branch.root / "var.enrolled")
    with tmpfs(var, 48) as state:
        for item in kept.iterdir():
            shutil.move(str(item), state / item.name)
        db = state / "state.db"
        loans = export_loans(branch, "DF-A", BATCH)
        filler = state / "filler"
        phase: dict[str, Any] = {"step": "first"}

        def fill_up(proc: Any, counts: Any) -> None:
            if phase["step"] == "first" and counts["done"] >= len(loans):
                free = shutil.disk_usage(state).free
                with open(filler, "wb") as fh:  # leave about 2 MB: under the 8 MB the agent needs
                    fh.write(b"\0" * max(0, free - 2 * 2**20))
                _wait("the disk_full alert", lambda: "disk_full" in open_alerts(branch))
                phase.update(step="full", at=time.monotonic(), done=counts["done"])
                loans.extend(export_loans(branch, "DF-B", BATCH, start=BATCH))
            elif phase["step"] == "full" and time.monotonic() - phase["at"] > 5:
                held = local_counts(branch)
                assert held["done"] + held["queued"] == phase["done"], f"ingested into a full disk: {held}"
                assert any(p.name == "DF-B.csv" for p in branch.inbox().iterdir()), "the export was not left waiting"
                filler.unlink()
                phase["step"] = "freed"

        run_daemon_until_done(branch, 2 * BATCH, log=tmp_path / "agent.stderr", timeout=300, during=fill_up,
                              REGBRIDGE_PAUSE_FREE_MB="8")  # fmt: skip
        assert phase["step"] == "freed"
        assert "disk_full" not in open_alerts(branch)
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()
        result = outcome(centre, branch, loans)
    proof.record(
        proof.Result("disk full (48 MB tmpfs): paused, alert, resumed", runs=1, applications=result.applications,
                     lost=result.lost, duplicated=result.duplicated, seconds=round(time.monotonic() - started, 1))
    )  # fmt: skip
    assert result.lost == 0 and result.duplicated == 0, result.explain()


def test_a_watched_share_that_vanishes_and_comes_back(centre: LocalCentre, tmp_path: Path) -> None:
    started = time.monotonic()
    branch = make_branch_for(centre, tmp_path / "branch")
    share = tmp_path / "fileserver" / "corebank"  # the share's side
    (share / "materials").mkdir(parents=True)
    inbox = branch.inbox()
    _mount("--bind", str(share), str(inbox))
    try:
        loans = export_loans(branch, "SH-A", BATCH)
        phase: dict[str, Any] = {"step": "first"}

        def vanish(proc: Any, counts: Any) -> None:
            if phase["step"] == "first" and counts["done"] >= len(loans) and not counts["_pending_receipts"]:
                _umount(inbox)
                _wait("the inbox alert", lambda: "inbox:corebank" in open_alerts(branch))
                # the loan system keeps writing to the share, which the branch cannot see
                loans.extend(
                    export_loans(
                        _ShareView(share),  # type: ignore[arg-type]
                        "SH-B",
                        BATCH,
                        start=BATCH,
                    )
                )
                phase.update(step="gone", at=time.monotonic())
            elif phase["step"] == "gone" and time.monotonic() - phase["at"] > 4:
                assert not list(inbox.glob("receipts/*")), "receipts written into the folder the share left behind"
                _mount("--bind", str(share), str(inbox))
                phase["step"] = "back"

        run_daemon_until_done(branch, 2 * BATCH, log=tmp_path / "agent.stderr", timeout=300, during=vanish)
        assert phase["step"] == "back"
        assert "inbox:corebank" not in open_alerts(branch)
        result = outcome(centre, branch, loans)
    finally:
        _umount(inbox)
    proof.record(
        proof.Result("watched share unmounted, exports dropped, remounted", runs=1, applications=result.applications,
                     lost=result.lost, duplicated=result.duplicated, seconds=round(time.monotonic() - started, 1))
    )  # fmt: skip
    assert result.lost == 0 and result.duplicated == 0, result.explain()


class _ShareView:
    """The branch as the loan system sees it: exports written straight onto the share."""

    def __init__(self, share: Path) -> None:
        self._share = share

    def inbox(self, name: str = "corebank") -> Path:
        return self._share


def test_a_document_store_refusing_writes_holds_certificates_until_it_accepts(
    centre: LocalCentre, tmp_path: Path
) -> None:
    started = time.monotonic()
    branch = make_branch_for(centre, tmp_path / "branch")
    docs = branch.root / "documents"
    with tmpfs(docs, 64):
        loans = export_loans(branch, "DS-A", BATCH)
        phase: dict[str, Any] = {"step": "first"}

        def refuse(proc: Any, counts: Any) -> None:
            if phase["step"] == "first" and counts["done"] >= len(loans):
                _mount("-o", "remount,ro", str(docs))
                loans.extend(export_loans(branch, "DS-B", BATCH, start=BATCH))
                _wait("the document_store alert", lambda: "document_store" in open_alerts(branch), timeout=120)
                phase.update(step="refusing", at=time.monotonic())
            elif phase["step"] == "refusing" and time.monotonic() - phase["at"] > 3:
                # the store refuses from the first sealed notice (受理凭证, issued on acceptance) on, before the
                # second batch has certificates: it is made writable again only once certificates are held
                if local_counts(branch)["_unstored"] == 0:
                    return
                _mount("-o", "remount,rw", str(docs))
                phase["step"] = "accepting"

        run_daemon_until_done(branch, 2 * BATCH, log=tmp_path / "agent.stderr", timeout=300, during=refuse)
        assert phase["step"] == "accepting"
        assert "document_store" not in open_alerts(branch)
        result = outcome(centre, branch, loans)
    proof.record(
        proof.Result("document store read-only, then writable", runs=1, applications=result.applications,
                     lost=result.lost, duplicated=result.duplicated, seconds=round(time.monotonic() - started, 1))
    )  # fmt: skip
    assert result.lost == 0 and result.duplicated == 0, result.explain()
