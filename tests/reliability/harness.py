"""The reliability suite's harness: loans in, the agent as a separate process, and the outcome counted.

:func:`outcome` counts, for a set of loans, what the centre holds, what the document store holds
and what the receipts say — lost (a loan without its one completed application, stored
certificate and ``registered`` receipt line) and duplicated (a second application at the centre,
a second copy of a certificate, a receipt line twice) — from the centre's database and the files,
not from the agent's own opinion of itself.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from agent.demo import samples
from agent.state.audit import verify_audit
from installer.enrol import enrol
from sandbox import register
from sandbox.local import LocalCentre
from tests.agent.conftest import SECRET, Branch, drop, make_branch
from tests.stored import stored_certificates

__all__ = [
    "Outcome",
    "agent_process",
    "export_loans",
    "host_process",
    "make_branch_for",
    "open_alerts",
    "outcome",
    "read_state",
    "run_agent",
    "running_agent",
    "shared_hosts",
    "shared_progress",
    "shared_query",
    "stop_agent",
    "units",
    "wait_done",
]

UNITS = [n for n in register.HOMES if n not in (register.SEIZED_UNIT, register.OBJECTION_UNIT)]
COREBANK = [{"name": "corebank", "path": "inbox/corebank", "profile": "corebank_csv", "completion": "rename"}]


def units(count: int, start: int = 0) -> list[int]:
    """Home units for ``count`` loans (a unit takes several mortgages, each with the next 顺位)."""
    return [UNITS[(start + i) % len(UNITS)] for i in range(count)]


def make_branch_for(centre: LocalCentre, root: Path, **settings: Any) -> Branch:
    defaults: dict[str, Any] = {"rescan_seconds": 1.0, "max_poll_seconds": 1.0, "concurrency": 4}
    return make_branch(centre, root, inboxes=COREBANK, **{**defaults, **settings})


def export_loans(branch: Branch, prefix: str, count: int, *, start: int = 0, name: str | None = None) -> list[str]:
    """Drop one core-banking export of ``count`` first mortgages (materials beside it); their loan numbers."""
    inbox = branch.inbox()
    rows: list[dict[str, str]] = []
    loans = []
    for i, n in enumerate(units(count, start)):
        loan = f"{prefix}-{i:05d}"
        samples.write_materials(inbox / "materials", loan, "mortgage_first")
        rows += samples.mortgage_rows(loan, n, amount="100")
        loans.append(loan)
    drop(inbox, name or f"{prefix}.csv", samples.corebank_csv(rows))
    return loans


def agent_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGBRIDGE_")}
    return {**env, "REGBRIDGE_AGENT_SECRET": SECRET.decode(), **extra}


def agent_process(branch: Branch, *args: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "agent.cli", "run", "--config", str(branch.config), *args]
    with open(log, "ab") as err:
        return subprocess.Popen(command, env=agent_env(**env), stdout=subprocess.DEVNULL, stderr=err)


def run_agent(branch: Branch, *, log: Path, timeout: float = 240.0, **env: str) -> int:
    """``regbridge run --until-idle`` as its own process; its exit status (-9: killed by a crash point)."""
    proc = agent_process(branch, "--until-idle", "--timeout", str(timeout), log=log, **env)
    try:
        return proc.wait(timeout=timeout + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class Outcome:
    applications: int
    lost: int
    duplicated: int
    details: list[str] = field(default_factory=list)

    def explain(self) -> str:
        return "; ".join(self.details[:12]) or "ok"


def _receipt_lines(folder: Path) -> list[dict[str, str]]:
    lines: list[dict[str, str]] = []
    for path in sorted(folder.glob("receipts-*.csv")):
        lines += list(csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030"))))
    return lines


def outcome(
    centre: LocalCentre,
    branch: Branch,
    loans: list[str],
    *,
    code: str = "DYSC",
    stages: dict[str, str] | None = None,
    audits: list[Path] | None = None,
) -> Outcome:
    """Count what was lost and what was duplicated for ``loans`` (all expected to register).

    ``stages`` (reference → the agent's stage) and ``audits`` (audit logs) for a shared state of several
    instances; default: the branch's own SQLite state and audit log."""
    details: list[str] = []
    wanted = {f"{loan}-{code}" for loan in loans}
    # UNIQUE (institution_id, client_reference) at the centre: a duplicate would be a second
    # application for the same loan under another reference, or a refused second one — count both ways
    at_centre = Counter(
        r["client_reference"]
        for r in centre.store.all(
            "SELECT client_reference FROM applications WHERE institution_id = ?", branch.institution_id
        )
    )
    per_loan = Counter(ref.rsplit("-", 1)[0] for ref in at_centre)
    completed = {
        r["client_reference"]
        for r in centre.store.all(
            "SELECT client_reference FROM applications WHERE institution_id = ? AND status = 'completed'",
            branch.institution_id,
        )
    }
    issued = {
        r["certificate_number"]: hashlib.sha256(bytes(r["content"])).hexdigest()
        for r in centre.store.all(
            "SELECT certificate_number, content FROM certificates WHERE institution_id = ?",
            branch.institution_id,
        )
    }
    docs = branch.root / "documents"
    # certificates only: the sealed notices the centre issues (受理凭证…) are stored beside them (a sidecar with
    # a notice_id), one each, and are not certificates
    stored = stored_certificates(docs)
    stored_count = Counter(p.stem for p in stored)
    leftovers = [p.name for p in docs.rglob(".*.tmp")]
    receipts = _receipt_lines(branch.inbox() / "receipts")
    leftovers += [p.name for p in (branch.inbox() / "receipts").glob(".*.tmp")]
    line_count = Counter((r["业务编号"], r["事件"], r["不动产登记证明号"]) for r in receipts)
    registered = Counter(r["业务编号"] for r in receipts if r["事件"] == "registered")
    state = _local_stages(branch) if stages is None else stages

    lost = 0
    for ref in sorted(wanted):
        why = []
        if at_centre[ref] == 0:
            why.append("not at the centre")
        elif ref not in completed:
            why.append("not completed at the centre")
        if registered[ref] == 0:
            why.append("no registered receipt")
        if state.get(ref) != "done":
            why.append(f"agent stage {state.get(ref)}")
        if why:
            lost += 1
            details.append(f"lost {ref}: {', '.join(why)}")
    missing_docs = [n for n in issued if stored_count[n] == 0]
    if missing_docs:
        details.append(f"{len(missing_docs)} certificate(s) issued but not stored, e.g. {missing_docs[0]}")
    lost += len(missing_docs)
    damaged = [
        p.stem for p in stored if p.stem in issued and hashlib.sha256(p.read_bytes()).hexdigest() != issued[p.stem]
    ]
    if damaged:
        details.append(f"stored copies differ from the issued certificates: {damaged[:3]}")
    lost += len(damaged)

    duplicated = sum(n - 1 for n in at_centre.values() if n > 1) + sum(n - 1 for n in per_loan.values() if n > 1)
    duplicated += sum(n - 1 for n in stored_count.values() if n > 1)
    duplicated += sum(n - 1 for n in line_count.values() if n > 1)
    duplicated += len([p for p in stored if p.stem not in issued])
    if duplicated:
        details.append(
            f"duplicates: centre {[r for r, n in at_centre.items() if n > 1][:3]}, "
            f"store {[k for k, n in stored_count.items() if n > 1][:3]}, "
            f"receipts {[k for k, n in line_count.items() if n > 1][:3]}"
        )
    if leftovers:
        details.append(f"half-written files left behind: {leftovers[:3]}")
        lost += len(leftovers)
    for audit in audits or [branch.root / "var" / "audit.log"]:
        if not verify_audit(audit).ok:
            details.append(f"the audit chain {audit} does not verify")
            lost += 1
    return Outcome(applications=len(wanted), lost=lost, duplicated=duplicated, details=details)


@contextmanager
def read_state(branch: Branch) -> Iterator[sqlite3.Connection | None]:
    """The agent's state, read-only (safe while it runs); None before the agent created it and committed
    its first schema (a freshly started daemon has the file before it has the tables)."""
    db = branch.root / "var" / "state.db"
    if not db.exists():
        yield None
        return
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        try:
            ready = con.execute("PRAGMA user_version").fetchone()[0] > 0
        except sqlite3.Error:  # the file exists but is not a database yet
            ready = False
        yield con if ready else None
    finally:
        con.close()


def _local_stages(branch: Branch) -> dict[str, str]:
    with read_state(branch) as con:
        assert con is not None, "the agent has no state"
        return {r[0]: r[1] for r in con.execute("SELECT reference, stage FROM applications")}


def open_alerts(branch: Branch) -> dict[str, str]:
    """The agent's alerts not cleared yet, kind → message (read while it runs)."""
    with read_state(branch) as con:
        if con is None:
            return {}
        return {r[0]: r[1] for r in con.execute("SELECT kind, message FROM alerts WHERE cleared_at IS NULL")}


def local_counts(branch: Branch) -> Counter[str]:
    """The agent's stages, receipts not yet written (unbatched or pending batches) and unstored certificates."""
    with read_state(branch) as con:
        if con is None:
            return Counter()
        try:
            counts = Counter(r[0] for r in con.execute("SELECT stage FROM applications"))
            pending = con.execute("SELECT COUNT(*) FROM receipt_batches WHERE written = 0").fetchone()[0]
            # lines queued and not yet in a batch count too: the last delivery's receipt is queued with its
            # "done" and batched by the next work round; stopping before that round would lose the file
            pending += con.execute("SELECT COUNT(*) FROM receipts WHERE batch IS NULL").fetchone()[0]
            counts["_pending_receipts"] = pending
            counts["_unstored"] = con.execute("SELECT COUNT(*) FROM certificates WHERE stage != 'stored'").fetchone()[0]
            return counts
        except sqlite3.Error:  # read while the agent is migrating a fresh state
            return Counter()


def stop_agent(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    """SIGTERM, then SIGKILL if it has not stopped in ``timeout`` seconds; its exit status (0: a clean stop)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


@contextmanager
def running_agent(branch: Branch, *args: str, log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """``regbridge run`` for the length of a with-block, stopped (:func:`stop_agent`) at its end."""
    proc = agent_process(branch, *args, log=log, **env)
    try:
        yield proc
    finally:
        stop_agent(proc)


def wait_done(
    branch: Branch,
    expected: int,
    proc: subprocess.Popen[bytes],
    *,
    log: Path,
    timeout: float,
    during: Any = None,
    stalled: float | None = None,
) -> float:
    """Until ``expected`` applications are finished (done, rejected or quarantined) with nothing left to
    deliver or write; ``during(proc, counts)`` is called about twice a second. The seconds it took.

    ``stalled``: give up as soon as nothing has finished for that many seconds while the agent holds an
    alert (a fee cap reached, a refusing store…): it is waiting for a person, not for time.
    """
    started = last_change = time.monotonic()
    finished_before = -1
    while True:
        counts = local_counts(branch)
        finished = counts["done"] + counts["rejected"] + counts["quarantined"]
        if finished >= expected and not counts["_pending_receipts"] and not counts["_unstored"]:
            return time.monotonic() - started
        if finished != finished_before:
            finished_before, last_change = finished, time.monotonic()
        if proc.poll() is not None:
            raise AssertionError(f"the agent died: {log.read_text()[-3000:]}")
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not done in {timeout:g} s: {counts}")
        if stalled is not None and time.monotonic() - last_change > stalled and (alerts := open_alerts(branch)):
            raise AssertionError(f"stalled for {stalled:g} s at {counts} with alerts: {alerts}")
        if during is not None:
            during(proc, counts)
        time.sleep(0.25)


def run_daemon_until_done(
    branch: Branch, expected: int, *, log: Path, timeout: float, during: Any = None, **env: str
) -> float:
    """``regbridge run`` until :func:`wait_done`, then SIGTERM (a clean stop is required); the seconds it took."""
    started = time.monotonic()
    with running_agent(branch, log=log, **env) as proc:
        wait_done(branch, expected, proc, log=log, timeout=timeout, during=during)
        assert stop_agent(proc) == 0, f"no clean stop: {log.read_text()[-3000:]}"
    return time.monotonic() - started


# --- several instances on one PostgreSQL state (the kill test, bench/instances.py) -------------------------


def shared_hosts(
    centre: LocalCentre, root: Path, pg_url: str, count: int, *, leader_seconds: float = 10.0, **settings: Any
) -> tuple[Branch, list[Path]]:
    """``count`` hosts of one institution on one PostgreSQL state: the first enrolled as usual, each other with
    a bundle and a signing key of its own (``--join``), the one agent secret; one inbox, one document store,
    one shared blobs folder. Answers the first host's branch and every host's config."""
    shared = {"url": pg_url, "blobs_dir": str(root / "shared" / "blobs"), "leader_seconds": leader_seconds,
              "claim_seconds": 60.0}  # fmt: skip
    first = make_branch_for(centre, root / "host-0", state=shared, **settings)
    configs = [first.config]
    for n in range(1, count):
        bundle = centre.centre.enrolment_bundle(first.institution_id, centre.url, valid_for=timedelta(days=1))
        configs.append(enrol(bundle, root / f"host-{n}", secret=SECRET, inboxes=[], join=first.config).path)
    return first, configs


def host_process(first: Branch, config: Path, *, log: Path) -> subprocess.Popen[bytes]:
    """``regbridge run`` of one host of :func:`shared_hosts`."""
    return agent_process(Branch(config.parent, config, first.institution_id, first.centre), log=log)


def shared_query(engine: Any, sql: str) -> list[Any]:
    """Rows of a query on the shared state (an SQLAlchemy engine)."""
    import sqlalchemy as sa

    with engine.connect() as db:
        return list(db.execute(sa.text(sql)).all())


def shared_progress(engine: Any) -> dict[str, int]:
    """The shared state's applications by stage, and ``_unstored`` certificates, ``_unwritten`` receipts,
    ``_files`` exports read; empty before the first instance made the schema."""
    import sqlalchemy as sa

    try:
        stages: dict[str, int] = {r[0]: int(r[1]) for r in shared_query(
            engine, "SELECT stage, COUNT(*) FROM applications GROUP BY stage")}  # fmt: skip
        unstored = shared_query(engine, "SELECT COUNT(*) FROM certificates WHERE stage != 'stored'")[0][0]
        unwritten = shared_query(engine, "SELECT COUNT(*) FROM receipt_batches WHERE written = 0")[0][0]
        unwritten += shared_query(engine, "SELECT COUNT(*) FROM receipts WHERE batch IS NULL")[0][0]
        files = shared_query(engine, "SELECT COUNT(*) FROM files WHERE status = 'done'")[0][0]
    except sa.exc.ProgrammingError:
        return {}
    return {**stages, "_unstored": unstored, "_unwritten": unwritten, "_files": files}
