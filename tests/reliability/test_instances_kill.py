"""The kill test (issue 22): three agent instances on one PostgreSQL, SIGKILLed at random moments.

Three hosts (a data folder, its own signing key enrolled for the one institution with ``--join``, the
one agent secret) run ``regbridge run`` as their own processes on one PostgreSQL state, one shared
inbox, one document store. Exports arrive in several files; at random moments (when the work done
crosses random points) a random live instance is SIGKILLed — the first one killed stays dead, every
later one is restarted after a random pause — so the leader (event feed, receipt files), exports being
read, applications being sent and certificates being stored are all cut at some point. Then: the centre
holds exactly one application per loan operation, each completed; the document store one intact copy of
each certificate; the receipt files one ``registered`` line per loan and no line twice; every
instance's audit chain valid.

Bounded in ``make test`` (15 applications, 2 kills); ``make proof`` (``REGBRIDGE_PROOF=full``): 510
applications, 6 kills. The random seed is printed and taken from ``REGBRIDGE_KILL_SEED`` when set.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from sandbox.local import LocalCentre
from tests import proof
from tests.reliability.harness import (
    export_loans,
    host_process,
    outcome,
    shared_hosts,
    shared_progress,
    shared_query,
    stop_agent,
)  # fmt: skip

FILES = proof.size(3, 10)
PER_FILE = proof.size(5, 51)
KILLS = proof.size(2, 6)


def test_three_instances_on_one_postgresql_killed_at_random_lose_and_duplicate_nothing(
    centre: LocalCentre, tmp_path: Path, pg_url: str
) -> None:
    seed = int(os.environ.get("REGBRIDGE_KILL_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"kill test seed: {seed} (REGBRIDGE_KILL_SEED={seed} repeats it)")
    rng = random.Random(seed)
    started = time.monotonic()
    branch, configs = shared_hosts(centre, tmp_path, pg_url, 3, leader_seconds=1.5)
    loans: list[str] = []
    for f in range(FILES):
        loans += export_loans(branch, f"KT-{f}", PER_FILE, start=f * PER_FILE)
    logs = [tmp_path / f"host-{n}.stderr" for n in range(3)]

    def start(n: int) -> subprocess.Popen[bytes]:
        return host_process(branch, configs[n], log=logs[n])

    procs: dict[int, subprocess.Popen[bytes] | None] = {n: start(n) for n in range(3)}  # migrations: one at a time
    engine = sa.create_engine(pg_url)
    total = 2 * len(loans)  # each application: sent (past queued), then finished
    # kill when the work done crosses random points, so every phase (reading the exports, sending, the
    # event feed, storing certificates, writing receipts) may be cut
    kill_at = sorted(rng.uniform(0.02, 0.9) * total for _ in range(KILLS))
    try:
        kills: list[str] = []
        dead_for_good: int | None = None
        restarts: list[tuple[float, int]] = []
        timeout = time.monotonic() + proof.size(150, 1500)
        while True:
            now = time.monotonic()
            progress = shared_progress(engine)
            finished = sum(progress.get(s, 0) for s in ("done", "rejected", "quarantined"))
            score = sum(n for s, n in progress.items() if not s.startswith("_") and s != "queued") + finished
            for n, p in procs.items():
                if p is not None and p.poll() is not None:
                    raise AssertionError(f"instance {n} died on its own: {logs[n].read_text()[-3000:]}")
            settled = finished >= len(loans) and not progress.get("_unstored", 1)
            settled = settled and not progress.get("_unwritten", 1)
            if len(kills) >= KILLS and not restarts and progress.get("_files") == FILES and settled:
                # a stop is clean once every live instance is up (registered with its pid): a restart may be late
                up = {r[0] for r in shared_query(engine, "SELECT pid FROM instances")}
                if all(p.pid in up for p in procs.values() if p is not None):
                    break
            if now >= timeout:
                stuck = shared_query(
                    engine,
                    "SELECT reference, stage, centre_status, needs_refresh, claimed_by FROM applications "
                    "WHERE stage NOT IN ('done', 'rejected', 'quarantined')",
                )
                warnings = [line for log in logs for line in log.read_text().splitlines() if '"warning"' in line]
                raise AssertionError(f"not done in time: {progress}, kills {kills}, stuck {stuck[:5]}, {warnings[-5:]}")
            for at, n in list(restarts):
                if now >= at:
                    procs[n] = start(n)
                    restarts.remove((at, n))
            alive = [n for n, p in procs.items() if p is not None]
            if len(kills) < KILLS and score >= kill_at[len(kills)] and len(alive) > 1:
                victim = rng.choice(alive)
                proc = procs[victim]
                assert proc is not None
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                procs[victim] = None
                kills.append(f"host-{victim}@{score}/{total}")
                if dead_for_good is None:
                    dead_for_good = victim  # the first one killed stays dead: its claims and lead are taken over
                else:
                    restarts.append((now + rng.uniform(0.0, 2.0), victim))
            time.sleep(0.2)
        print(f"kills (instance@work done): {kills}; done in {time.monotonic() - started:.1f} s")
        for n, p in procs.items():
            if p is not None:
                assert stop_agent(p) == 0, f"host-{n}: no clean stop: {logs[n].read_text()[-3000:]}"
        with engine.connect() as db:
            stages: dict[str, str] = dict(db.execute(sa.text("SELECT reference, stage FROM applications")).all())
    finally:
        for p in procs.values():
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        engine.dispose()
    result = outcome(
        centre, branch, loans, stages=stages, audits=[c.parent / "var" / "audit.log" for c in configs]
    )
    proof.record(
        proof.Result(
            "kill: 3 instances on PostgreSQL, SIGKILLed at random",
            runs=len(kills) + 1,
            applications=result.applications,
            lost=result.lost,
            duplicated=result.duplicated,
            seconds=round(time.monotonic() - started, 1),
        )
    )
    assert len(kills) == KILLS, kills
    assert result.lost == 0 and result.duplicated == 0, f"seed {seed}, kills {kills}: {result.explain()}"
