"""Session-wide hooks: the proof table (tests/proof.py) after the reliability and security suites."""

from __future__ import annotations

from typing import Any

from tests import proof


def pytest_terminal_summary(terminalreporter: Any) -> None:
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
