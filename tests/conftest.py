"""Session-wide hooks.

- The proof table (tests/proof.py) after the reliability and security suites.
- The privacy scan (tests/privacy_scan.py) over everything the whole run wrote: every test's
  temporary folders, and the agent's log records of the run (written as the agent writes its
  log, to ``session-agent.log``). A finding fails the run, naming the file.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from agent.logs import JsonFormatter
from tests import proof
from tests.privacy_scan import PLANTED, scan

_HANDLER: logging.Handler | None = None


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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _HANDLER is not None:
        logging.getLogger("regbridge").removeHandler(_HANDLER)
        _HANDLER.close()
    if os.environ.get("REGBRIDGE_PRIVACY_SCAN", "1") == "0":
        return
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    findings = scan(base, exclude=frozenset({PLANTED}))
    session.config.stash[_FINDINGS] = findings
    if findings and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_FINDINGS = pytest.StashKey[list[Any]]()


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
