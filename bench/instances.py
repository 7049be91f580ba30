"""Several instances on one PostgreSQL state (issue 22): throughput two instances vs one, and the event feed
leader's failover time, in one run.

- **Throughput**: ``apps`` first mortgages, drop → stored certificate and written receipt, by one agent
  instance on a fresh PostgreSQL state, then by two instances (each its own host folder and signing key) on
  another fresh one; each ``regbridge run`` its own process, against one sandbox centre.
- **Failover**: with the two instances running and applications in flight, the leader (the holder of the
  ``leader`` lease: it reads the event feed) is SIGKILLed; measured is the time until the other instance
  reads events again (the feed's cursor moves). ``state.leader_seconds`` is the default (10 s): the lease
  must expire before another instance may take it.

PostgreSQL is Debian's, started in a temporary directory as the tests do (tests/postgres.py).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from bench.common import Result
from sandbox.local import LocalCentre
from tests.postgres import PostgresServer
from tests.reliability.harness import (
    export_loans,
    host_process,
    shared_hosts,
    shared_progress,
    shared_query,
    stop_agent,
)  # fmt: skip

__all__ = ["run"]

LEADER_SECONDS = 10.0


def _done(engine: sa.Engine, expected: int, files: int) -> bool:
    p = shared_progress(engine)
    finished = sum(p.get(s, 0) for s in ("done", "rejected", "quarantined"))
    settled = not p.get("_unstored", 1) and not p.get("_unwritten", 1)
    return finished >= expected and p.get("_files") == files and settled


def _round(centre: LocalCentre, server: PostgresServer, work: Path, instances: int, apps: int, start: int) -> float:
    """Seconds for ``instances`` processes on a fresh state to take ``apps`` applications all the way."""
    url = server.new_database()
    first, configs = shared_hosts(centre, work, url, instances, leader_seconds=LEADER_SECONDS, concurrency=8,
                                  straggler_seconds=3600)  # fmt: skip
    files = max(1, instances * 2)
    per_file = max(1, apps // files)
    for f in range(files):
        export_loans(first, f"TP{instances}-{f}", per_file, start=start + f * per_file)
    engine = sa.create_engine(url)
    procs = [host_process(first, c, log=work / f"host-{n}.stderr") for n, c in enumerate(configs)]
    try:
        started = time.monotonic()
        while not _done(engine, per_file * files, files):
            for n, p in enumerate(procs):
                if p.poll() is not None:
                    raise RuntimeError(f"instance {n} died: {(work / f'host-{n}.stderr').read_text()[-2000:]}")
            if time.monotonic() - started > apps * 3.0 + 180:
                raise RuntimeError(f"not done: {shared_progress(engine)}")
            time.sleep(0.25)
        return (time.monotonic() - started) / (per_file * files)
    finally:
        for p in procs:
            stop_agent(p)
        engine.dispose()


def _failover(centre: LocalCentre, server: PostgresServer, work: Path, apps: int, start: int) -> float:
    """Seconds from SIGKILL of the leader until the other instance reads the event feed again."""
    url = server.new_database()
    first, configs = shared_hosts(centre, work, url, 2, leader_seconds=LEADER_SECONDS, concurrency=8,
                                  straggler_seconds=3600)  # fmt: skip
    engine = sa.create_engine(url)
    procs: list[subprocess.Popen[bytes]] = [
        host_process(first, c, log=work / f"host-{n}.stderr") for n, c in enumerate(configs)
    ]
    ids = [(c.parent / "var" / "instance.id") for c in configs]
    try:
        deadline = time.monotonic() + 120
        while True:  # both up, one leading
            try:
                rows = shared_query(engine, "SELECT holder FROM leases WHERE name = 'leader'")
            except sa.exc.ProgrammingError:  # the schema is being made
                rows = []
            if rows and all(i.exists() for i in ids) and len(shared_query(engine, "SELECT id FROM instances")) == 2:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the two instances did not come up")
            time.sleep(0.25)
        export_loans(first, "FO", apps, start=start)
        while not shared_query(engine, "SELECT 1 FROM applications WHERE stage = 'tracking' LIMIT 1"):
            time.sleep(0.1)  # applications at the centre: events are coming
        leader = shared_query(engine, "SELECT holder FROM leases WHERE name = 'leader'")[0][0]
        victim = next(n for n, i in enumerate(ids) if i.read_text(encoding="utf-8").strip() == leader)
        cursor = shared_query(engine, "SELECT value FROM meta WHERE key = 'event_cursor'")
        procs[victim].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        procs[victim].wait()
        while True:
            now = shared_query(engine, "SELECT value FROM meta WHERE key = 'event_cursor'")
            holder = shared_query(engine, "SELECT holder FROM leases WHERE name = 'leader'")
            if now != cursor and holder and holder[0][0] != leader:
                return time.monotonic() - killed
            if time.monotonic() - killed > 10 * LEADER_SECONDS:
                raise RuntimeError("no instance took the event feed over")
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                stop_agent(p)
        engine.dispose()


def run(apps: int, work: Path) -> list[Result]:
    work.mkdir(parents=True, exist_ok=True)
    server = PostgresServer().start()
    try:
        with LocalCentre() as centre:  # a fresh centre each (one bank account per centre)
            one = _round(centre, server, work / "one", 1, apps, 0)
        with LocalCentre() as centre:
            two = _round(centre, server, work / "two", 2, apps, 0)
        with LocalCentre() as centre:
            failover = _failover(centre, server, work / "failover", 8, 0)
    finally:
        server.stop()
    return [
        Result(
            f"Several instances: throughput, {apps} applications, two instances vs one on one PostgreSQL state",
            f"two: {1 / two:.1f} applications/s",
            f"one: {1 / one:.1f} applications/s",
            one / two,
            "two ≥ 1.0× one (sharing the state costs nothing)",
            one / two >= 1.0,
            [f"Drop → stored certificate and written receipt, each instance `regbridge run` in its own process "
             f"(concurrency 8) on a fresh PostgreSQL 15 state, one sandbox centre in the bench's process, on the "
             f"same machine; submit and deliver claim their work with SELECT … FOR UPDATE SKIP LOCKED. "
             f"One instance {one * apps:.0f} s, two {two * apps:.0f} s."],
        ),
        Result(
            "Several instances: the event feed leader's failover (SIGKILL the leader → events read again)",
            f"{failover:.1f} s",
            f"leader lease {LEADER_SECONDS:g} s",
            failover / LEADER_SECONDS,
            f"≤ leader_seconds + 5 s ({LEADER_SECONDS + 5:g} s)",
            failover <= LEADER_SECONDS + 5,
            ["Two instances with applications in flight; the leader lease's holder SIGKILLed; measured until the "
             "other instance holds the lease and the feed's cursor has moved. The lease must expire first "
             "(state.leader_seconds, default 10 s); a clean stop hands it over at once."],
        ),
    ]
