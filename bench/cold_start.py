"""The CLI's cold start: ``regbridge --help`` in a fresh process, against the interpreter's own start."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from bench.common import Result

__all__ = ["run"]


def _time(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def run(repeat: int = 15) -> Result:
    regbridge = shutil.which("regbridge", path=str(__import__("pathlib").Path(sys.executable).parent)) or "regbridge"
    _time([regbridge, "--help"], 2)  # warm the page cache
    cli = _time([regbridge, "--help"], repeat)
    bare = _time([sys.executable, "-c", "pass"], repeat)
    return Result(
        "CLI cold start (`regbridge --help`)",
        f"{cli * 1e3:.0f} ms",
        f"{bare * 1e3:.0f} ms (`python -c pass`)",
        cli / bare,
        "< 0.5 s",
        cli < 0.5,
        [
            f"median of {repeat} fresh processes; the CLI imports the SDK, the agent and the sandbox only for the "
            "command that needs them (before: the whole SDK for every command, 0.55 s)."
        ],
    )
