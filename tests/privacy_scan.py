"""The privacy scan: unmasked resident ID numbers and full names of people in what the agent wrote.

Looks for every person of the sandbox's register (its owners and buyers: the people the tests
put through the agent) by full name and ID number, and for any valid 18-character resident ID,
in every file under a folder — logs, the audit chain, receipts, quarantine reports, status and
doctor output, document sidecars, the state database itself. Allowed to hold them, and skipped:
the centre's sealed documents (PDF or OFD) and the materials, the exports the loan system dropped (the input), the blob
store (sealed with the data cipher), and the centre's own data (the register is the centre's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sandbox import register
from sandbox.samples import buyer
from sdk import identifiers

__all__ = ["Finding", "people", "scan"]

_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
INPUT_SUFFIXES = {".csv", ".xlsx", ".dat", ".json", ".jsonl", ".xml", ".txt", ".tsv"}
OUTPUT_FOLDERS = {"receipts", "quarantine", "transmittals", "reports"}


@dataclass(frozen=True)
class Finding:
    path: Path
    what: str
    value: str

    def __str__(self) -> str:
        return f"{self.path}: unmasked {self.what} {self.value[:2]}…"


@cache
def people() -> tuple[frozenset[str], frozenset[str]]:
    """(full names, ID numbers) of every natural person the sandbox and the tests use."""
    names: set[str] = set()
    ids: set[str] = set()
    for n in range(1, register.SEED_UNITS + 1):
        for owner in register.owners_of(n):
            if len(owner.id_number) == 18 and owner.id_number[:17].isdigit():
                names.add(owner.name)
                ids.add(owner.id_number)
    for k in range(400):
        person = buyer(k)
        names.add(person.name)
        ids.add(person.id_number)
    return frozenset(n for n in names if len(n) >= 2), frozenset(ids)


def _skipped(path: Path, root: Path, exclude: frozenset[str]) -> bool:
    parts = path.relative_to(root).parts
    if exclude & set(parts):
        return True
    if "site-packages" in parts or "wheels" in parts or path.suffix in {".whl", ".py", ".pyc", ".so"}:
        return True  # installed software (the offline bundle's test), with its sample data
    if path.suffix.lower() in {".pdf", ".ofd"} or "blobs" in parts or "materials" in parts:
        return True  # certificates, notices and 查询结果 (PDF or OFD: the centre's sealed documents), materials
    if path.name.startswith(("sandbox.db", "centre.sqlite3")) or "centre" in parts:
        return True  # the centre's register
    # an export the loan system dropped (not yet retired, or the test's own input)
    return path.suffix.lower() in INPUT_SUFFIXES and not (OUTPUT_FOLDERS & set(parts)) and "inbox" in parts


#: where the scanner's own test plants leaks on purpose (left out of the whole run's scan)
PLANTED = "planted-leaks"


@cache
def _runs() -> tuple[re.Pattern[str], list[int], re.Pattern[str], list[int]]:
    """Patterns of the runs of characters a name (an ID number) is made of, and the lengths they come in.

    A name occurs in a text only inside a maximal run of the characters names are written with, so the
    text is searched once for such runs and only the runs are looked into — the same findings as looking
    for each of the hundreds of people in every text, at a fraction of the cost (it ran last in every run).
    """
    names, ids = people()

    def run_of(words: frozenset[str]) -> tuple[re.Pattern[str], list[int]]:
        chars = "".join(sorted(set("".join(words))))
        lengths = sorted({len(w) for w in words})
        return re.compile(f"[{re.escape(chars)}]{{{lengths[0]},}}"), lengths

    return (*run_of(names), *run_of(ids))


def _occurring(pattern: re.Pattern[str], lengths: list[int], wanted: frozenset[str], text: str) -> set[str]:
    """The members of ``wanted`` that occur in ``text`` (``pattern``: runs of their characters)."""
    found: set[str] = set()
    for match in pattern.finditer(text):
        run = match.group(0)
        for size in lengths:
            found.update(run[i : i + size] for i in range(len(run) - size + 1) if run[i : i + size] in wanted)
    return found


def scan(root: Path, *, extra: list[Path] | None = None, exclude: frozenset[str] = frozenset()) -> list[Finding]:
    names, ids = people()
    name_runs, name_lengths, id_runs, id_lengths = _runs()
    findings: list[Finding] = []
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and not _skipped(p, root, exclude)]
    for path in files + list(extra or []):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        texts = {data.decode("utf-8", "ignore"), data.decode("gb18030", "ignore")}
        for text in texts:
            for match in _ID.finditer(text):
                value = match.group(0)
                try:
                    identifiers.check_resident_id(value)
                except ValueError:
                    continue
                findings.append(Finding(path, "resident ID", value))
            for value in _occurring(id_runs, id_lengths, ids, text):
                findings.append(Finding(path, "resident ID", value))
            for name in _occurring(name_runs, name_lengths, names, text):
                findings.append(Finding(path, "name", name))
    return sorted(set(findings), key=lambda f: (str(f.path), f.what, f.value))
