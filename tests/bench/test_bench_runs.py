"""The benchmarks themselves work (their figures come from ``make bench``, not from here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_quick_benchmarks_produce_a_report_with_ratios(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "sdk,cold,ingest", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = out.read_text(encoding="utf-8")
    assert report.startswith("# Benchmarks") and "Machine: " in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "×" in line]
    assert len(rows) == 3, report
    assert all(("met" in r) or ("missed" in r) for r in rows)
