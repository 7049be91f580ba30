"""Footprint: the daemon's resident memory and idle CPU with many tracked applications.

The state is filled with N applications waiting at the centre (``tracking``, submitted, nothing
due for an hour), written through the agent's own store so they are sealed like real ones. Then
``regbridge run`` starts against the sandbox and is left alone: its resident set is read from
``/proc`` after it settles, and its CPU time over an idle window. The same is measured in the same
run for the daemon with an empty state, the baseline.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from bench.common import Result
from sandbox.local import LocalCentre
from tests.reliability.harness import agent_process, make_branch_for

__all__ = ["run"]

TICK = 100  # clock ticks per second (/proc/<pid>/stat)


def _fill(branch: Any, count: int) -> None:
    agent = branch.agent()
    try:
        template = {
            "type": "mortgage_first",
            "client_reference": "",
            "mortgagors": [{"name": "王伟", "id_number": "340121197605170166"}],
            "properties": [{"unit_id": "340121261006GB00014F00010008"}],
            "materials": [],
        }
        future = time.time() + 3600
        store = agent.store
        with store.transaction() as db:
            for i in range(count):
                ref = f"FP-{i:06d}-DYSC"
                store.add_application({
                    "reference": ref, "loan_no": f"FP-{i:06d}", "type": "mortgage_first", "inbox": "corebank",
                    "profile": "corebank_csv", "source": [{"file": "fill.csv", "rows": [i + 2]}],
                    "payload": {**template, "client_reference": ref}, "payload_sha256": "0" * 64,
                    "idem_create": f"idem-c-{i}", "idem_submit": f"idem-s-{i}", "materials": [],
                })  # fmt: skip
            db.execute(
                "UPDATE applications SET stage = 'tracking', centre_status = 'submitted', "
                "application_id = 'app_' || substr(reference, 4, 6), next_attempt_at = ?",
                (future,),
            )
    finally:
        agent.close()


def _sample(pid: int) -> tuple[int, int]:
    """(resident kB, CPU ticks so far) of a process."""
    rss = next(int(x.split()[1]) for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, int(fields[11]) + int(fields[12])


def _measure(branch: Any, work: Path, settle: float, idle: float) -> tuple[float, float]:
    proc = agent_process(branch, log=work / "agent.stderr")
    try:
        time.sleep(settle)
        _, before = _sample(proc.pid)
        time.sleep(idle)
        rss, after = _sample(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rss / 1024, (after - before) / TICK / idle * 100


def run(tracked: int, work: Path, *, settle: float = 15.0, idle: float = 30.0) -> list[Result]:
    with LocalCentre() as centre:
        branch = make_branch_for(centre, work / "branch")
        base_rss, base_cpu = _measure(branch, work, settle, idle)  # empty first, then the same branch filled
        started = time.perf_counter()
        _fill(branch, tracked)
        fill_s = time.perf_counter() - started
        rss, cpu = _measure(branch, work, settle, idle)
    return [
        Result(
            f"Resident memory, daemon with {tracked:,} tracked applications",
            f"{rss:.0f} MB",
            f"{base_rss:.0f} MB with none",
            rss / base_rss,
            "≤ 150 MB",
            rss <= 150,
            [f"read from /proc after {settle:g} s; the applications are rows in the state store, read a page at a "
             f"time, never all held in memory (filled in {fill_s:.0f} s)."],
        ),
        Result(
            f"Idle CPU, daemon with {tracked:,} tracked applications",
            f"{cpu:.2f} %",
            f"{base_cpu:.2f} % with none",
            (cpu / base_cpu) if base_cpu else None,
            "< 1 %",
            cpu < 1.0,
            [f"CPU time over {idle:g} s with nothing due: the scheduler's ticks, the event feed every "
             "`max_poll_seconds`, one stat of the config per second."],
        ),
    ]  # fmt: skip
