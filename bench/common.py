"""What every benchmark shares: the result record, machine details, the report."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Result", "machine", "median_time", "percentile", "render"]


@dataclass
class Result:
    """One figure: measured, its same-run baseline, their ratio, and the target it is held to."""

    benchmark: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}×"
        verdict = {True: "met", False: "**missed**", None: "—"}[self.met]
        return f"| {self.benchmark} | {self.measured} | {self.baseline} | {ratio} | {self.target} | {verdict} |"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(
            next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1]
        )
        memory = f"{mem_kb / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        memory = "?"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def render(results: list[Result], sections: list[str], info: dict[str, str], command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Each figure is a ratio against a baseline measured in the same run, on the same machine, a moment",
        "before or after: absolute times drift on a shared machine, ratios do not. Produced by",
        f"`{command}` (bench/); this file is written by it.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "| benchmark | measured | same-run baseline | ratio | target | |",
        "| --- | --- | --- | --- | --- | --- |",
        *(r.row() for r in results),
        "",
    ]
    for r in results:
        if r.notes:
            lines += [f"**{r.benchmark}.** " + " ".join(r.notes), ""]
    lines += sections
    return "\n".join(lines).rstrip() + "\n"
