"""The crash matrix: SIGKILL at each named point of the pipeline, restart, and count.

For every point of :data:`agent.failpoints.POINTS` the agent runs as its own process
(``regbridge run --until-idle``) with ``REGBRIDGE_FAILPOINT`` armed; it must die there (exit -9,
so the point was really reached), then a plain restart must finish the work. Afterwards the
centre holds one completed application per loan, the document store one intact copy of each
certificate, the receipts one ``registered`` line per loan and no line twice, no half-written
file is left, the audit chain verifies — and the state schema is current after a migration crash.

Bounded: one crash per point. ``make proof``: a crash at the 1st, 2nd and 3rd passage of each point.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from agent.state.migrations import MIGRATIONS, SCHEMA_VERSION
from sandbox.local import LocalCentre
from sdk.support.failpoints import POINTS
from tests import proof
from tests.reliability.harness import export_loans, make_branch_for, outcome, run_agent

PASSAGES = (1, 2, 3) if proof.FULL else (1,)
LOANS_PER_RUN = proof.size(3, 5)


def _back_to_previous_schema(db: Path) -> None:
    """Undo the last migration, as if this state had been written by the previous release."""
    con = sqlite3.connect(db)
    try:
        for statement in reversed(MIGRATIONS[-1].split(";")):
            words = statement.split()
            if "CREATE INDEX" in statement:
                con.execute(f"DROP INDEX {statement.split('INDEX')[1].split()[0]}")
            elif words[:2] == ["ALTER", "TABLE"] and words[3:5] == ["ADD", "COLUMN"]:
                con.execute(f"ALTER TABLE {words[2]} DROP COLUMN {words[5]}")
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
        con.commit()
    finally:
        con.close()


def _schema_version(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_a_named_point_loses_and_duplicates_nothing(point: str, centre: LocalCentre, tmp_path: Path) -> None:
    started = time.monotonic()
    branch = make_branch_for(centre, tmp_path / "branch")
    log = tmp_path / "agent.stderr"
    db = branch.root / "var" / "state.db"
    loans: list[str] = []
    if point == "migration.during":
        # a state written by the previous release, with work in it, waiting for the upgrade
        loans += export_loans(branch, "MG-0", LOANS_PER_RUN, start=0)
        assert run_agent(branch, log=log) == 0, log.read_text()
    for run, passage in enumerate(PASSAGES, 1):
        loans += export_loans(branch, f"CM-{run}", LOANS_PER_RUN, start=run * LOANS_PER_RUN)
        if point == "migration.during":
            _back_to_previous_schema(db)
        rc = run_agent(branch, log=log, REGBRIDGE_FAILPOINT=f"{point}@{passage}")
        assert rc == -signal.SIGKILL, f"{point}@{passage} was never reached (exit {rc}); {log.read_text()[-2000:]}"
        assert run_agent(branch, log=log) == 0, f"the restart after {point} did not finish: {log.read_text()[-3000:]}"
        if point == "migration.during":
            assert _schema_version(db) == SCHEMA_VERSION

    result = outcome(centre, branch, loans)
    proof.record(
        proof.Result(
            f"crash: SIGKILL at {point}",
            runs=len(PASSAGES),
            applications=result.applications,
            lost=result.lost,
            duplicated=result.duplicated,
            seconds=round(time.monotonic() - started, 1),
        )
    )
    assert result.lost == 0 and result.duplicated == 0, result.explain()
