"""The order test files start in: the longest first, so that ``make test``'s two workers finish together.

``make test`` runs ``pytest -n 2 --dist loadfile --no-loadscope-reorder``: a file runs whole on one worker,
and the workers take files in collection order. pytest-xdist's own reordering (by number of tests, on by
default) put the one-test files last — the random-SIGKILL run, the offline bundle, the enrolment walk-through —
so one worker ran a five-minute test alone at the end while the other had finished. Here files are ordered by
what they cost in the last run on this checkout (``.pytest_cache``: regbridge/file-seconds, written by the
controller at the end of each run), else by :data:`KNOWN`; a file neither
knows keeps its place after them. The order of the tests inside a file is kept.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

__all__ = ["KNOWN", "order_by_cost", "record_cost", "save_costs"]

CACHE_KEY = "regbridge/file-seconds"

#: seconds per file (all phases) in a whole run with two workers, for a checkout without a cache
KNOWN: dict[str, float] = {  # a whole run on 2026-11-30 with the machine loaded ~4x, divided by 3
    "tests/reliability/test_network_faults.py": 245.0,
    "tests/reliability/test_crash_matrix.py": 190.0,
    "tests/reliability/test_filesystem_faults.py": 120.0,
    "tests/installer/test_docs_walkthrough.py": 88.0,
    "tests/installer/test_bundle.py": 83.0,
    "tests/installer/test_enrolment_e2e.py": 82.0,
    "tests/security/test_privacy.py": 66.0,
    "tests/agent/daemon/test_crash.py": 63.0,
    "tests/installer/test_install.py": 62.0,
    "tests/bench/test_bench_runs.py": 51.0,
    "tests/agent/pipeline/test_pipeline.py": 35.0,
    "tests/agent/pipeline/test_pipeline_postgres.py": 30.0,
    "tests/sandbox/test_openapi.py": 29.0,
    "tests/security/test_no_server_error.py": 26.0,
    "tests/docs/test_readme_quickstart.py": 25.0,
    "tests/connectors/test_readers.py": 24.0,
    "tests/agent/pipeline/test_accounting.py": 22.0,
    "tests/sandbox/test_gm_centre.py": 21.0,
    "tests/security/test_agent_attacks.py": 19.0,
}

_measured: dict[str, float] = defaultdict(float)


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def order_by_cost(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: files by descending cost, each file's tests together and in their order."""
    cache = getattr(config, "cache", None)
    costs: dict[str, float] = {**KNOWN, **((cache.get(CACHE_KEY, None) if cache is not None else None) or {})}
    first_seen: dict[str, int] = {}
    for i, item in enumerate(items):
        first_seen.setdefault(_file(item.nodeid), i)
    items.sort(key=lambda it: (-costs.get(_file(it.nodeid), 0.0), first_seen[_file(it.nodeid)]))


def record_cost(report: Any) -> None:
    """Add one phase's duration (setup, call or teardown) to its file's cost in this run."""
    _measured[_file(report.nodeid)] += float(getattr(report, "duration", 0.0) or 0.0)


def save_costs(config: pytest.Config) -> None:
    """Keep this run's file costs for the next run's order (files this run did not touch keep theirs)."""
    cache = getattr(config, "cache", None)
    if cache is None or not _measured:
        return
    known = cache.get(CACHE_KEY, None) or {}
    known.update({path: round(seconds, 1) for path, seconds in _measured.items()})
    cache.set(CACHE_KEY, known)
