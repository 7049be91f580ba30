"""Session-wide hooks.

- The proof table (tests/proof.py) after the reliability and security suites.
- A real PostgreSQL server per process (tests/postgres.py), started only when a test asks for
  ``postgres`` or ``pg_url`` (a fresh database per test), stopped at the end of the session.
- The order files run in, the longest first (tests/scheduling.py), so the two workers of ``make test`` end
  together; the controller keeps each file's cost of a whole run for the next one.
- The privacy scan (tests/privacy_scan.py) over everything the whole run wrote: every test's
  temporary folders, and the agent's log records of the run (written as the agent writes its
  log, to ``session-agent.log``). A finding fails the run, naming the file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from agent.logs import JsonFormatter
from tests import proof, scheduling
from tests.postgres import EXTERNAL, PostgresServer, external_database
from tests.privacy_scan import PLANTED, scan

_HANDLER: logging.Handler | None = None


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")  # a pytest-xdist worker


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config) and not os.environ.get("REGBRIDGE_PROOF_OUT"):
        # the proof figures of every worker, gathered here for the table (workers inherit the variable)
        fd, path = tempfile.mkstemp(prefix="regbridge-proof-", suffix=".jsonl")
        os.close(fd)
        os.environ["REGBRIDGE_PROOF_OUT"] = path
        config.stash[_OWN_OUT] = path


def pytest_unconfigure(config: pytest.Config) -> None:
    path = config.stash.get(_OWN_OUT, None)
    if path:
        os.unlink(path)
        os.environ.pop("REGBRIDGE_PROOF_OUT", None)


def pytest_sessionstart(session: pytest.Session) -> None:
    global _HANDLER
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    _HANDLER = logging.FileHandler(base / "session-agent.log", encoding="utf-8")
    _HANDLER.setFormatter(JsonFormatter())
    _HANDLER.setLevel(logging.INFO)
    logger = logging.getLogger("regbridge")
    logger.addHandler(_HANDLER)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    scheduling.order_by_cost(config, items)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    scheduling.record_cost(report)


def _whole_suite(config: pytest.Config) -> bool:
    """Was this run the whole suite (no paths, no -k, no -m)? Only such a run's costs order the next one."""
    return (
        config.args_source is pytest.Config.ArgsSource.TESTPATHS
        and not config.option.keyword
        and not config.option.markexpr
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _is_worker(session.config) and _whole_suite(session.config):
        scheduling.save_costs(session.config)
    if _HANDLER is not None:
        logging.getLogger("regbridge").removeHandler(_HANDLER)
        _HANDLER.close()
    if os.environ.get("REGBRIDGE_PRIVACY_SCAN", "1") == "0" or _is_worker(session.config):
        return  # the controller scans, once, everything its workers wrote too
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    findings = scan(base, exclude=frozenset({PLANTED}))
    session.config.stash[_FINDINGS] = findings
    if findings and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for this process (each xdist worker has its own), as an unprivileged user."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty PostgreSQL database for one test (its SQLAlchemy URL, psycopg 3 driver): on this process's
    own server, or, with ``REGBRIDGE_TEST_POSTGRES`` set, on that server (the database a bank is given)."""
    external = os.environ.get(EXTERNAL)
    if external:
        return external_database(external)
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


_FINDINGS = pytest.StashKey[list[Any]]()
_OWN_OUT = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    findings = terminalreporter.config.stash.get(_FINDINGS, None)
    if findings is not None:
        terminalreporter.section("privacy scan")
        if findings:
            for finding in findings[:50]:
                terminalreporter.write_line(f"PERSONAL DATA UNMASKED: {finding}")
        else:
            terminalreporter.write_line("no unmasked ID number or full name in anything this run wrote")
    rows = proof.results()
    if not rows:
        return
    terminalreporter.section(f"proof ({'full size' if proof.FULL else 'bounded size; make proof for full'})")
    terminalreporter.write_line(proof.table(rows))
    bad = [
        r.scenario
        for r in rows
        if r.lost or r.duplicated or (r.refused is not None and r.refused != r.expected_refusals)
    ]
    terminalreporter.write_line(
        "all zero lost, zero duplicated, every refusal as expected" if not bad else f"NOT PROVEN: {bad}"
    )
