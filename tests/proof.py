"""What the reliability and security suites prove, gathered for ``make proof``'s table.

Each scenario records its runs, applications, what was lost, what was duplicated and how many
hostile or broken inputs were refused as they should be; the figures are counted from the
centre's database, the document store, the receipts and the agent's state — never assumed.
``REGBRIDGE_PROOF=full`` runs the suites at full size (``make proof``); unset, at the size
``make test`` can afford.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["FULL", "Result", "record", "results", "size", "table"]

FULL = os.environ.get("REGBRIDGE_PROOF", "") == "full"


def size(bounded: int, full: int) -> int:
    return full if FULL else bounded


@dataclass
class Result:
    scenario: str
    runs: int
    applications: int
    lost: int
    duplicated: int
    refused: int | None = None  # refused as expected (attacks, bad input); None where nothing should be
    expected_refusals: int | None = None
    seconds: float | None = None


_RESULTS: list[Result] = []


def record(result: Result) -> Result:
    """Keep a scenario's figures: in this process, and in ``$REGBRIDGE_PROOF_OUT`` (shared by test workers)."""
    _RESULTS.append(result)
    out = os.environ.get("REGBRIDGE_PROOF_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
    return result


def results() -> list[Result]:
    out = os.environ.get("REGBRIDGE_PROOF_OUT")
    if out and Path(out).exists():
        return load(Path(out))
    return list(_RESULTS)


def table(rows: list[Result]) -> str:
    head = ("scenario", "runs", "applications", "lost", "duplicated", "refused-as-expected")
    lines = [
        (
            r.scenario,
            str(r.runs),
            str(r.applications),
            str(r.lost),
            str(r.duplicated),
            "—" if r.refused is None else f"{r.refused}/{r.expected_refusals}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def load(path: Path) -> list[Result]:
    return [Result(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
