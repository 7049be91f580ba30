"""docs/architecture.md is the one module map: it names every module, and its sandbox table is the layers contract."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
PROSE = re.sub(r"```.*?```", "", DOC, flags=re.S)  # the drawings' backticks would pair the wrong way


def _named() -> set[str]:
    names: set[str] = set()
    for quoted in re.findall(r"`([^`\n]+)`", PROSE):
        names |= {part.removesuffix(".py") for part in re.split(r"[\s,/|\\]+", quoted)}
    return names


def test_every_module_of_the_agent_installer_connectors_and_sandbox_is_in_the_map() -> None:
    folders = [ROOT / "installer", ROOT / "connectors", ROOT / "sandbox", ROOT / "agent"]
    folders += [p for base in ("agent", "connectors", "sandbox") for p in (ROOT / base).iterdir()
                if p.is_dir() and (p / "__init__.py").exists()]
    missing = sorted(
        str(f.relative_to(ROOT)) for folder in folders for f in folder.glob("*.py")
        if not f.stem.startswith("__") and f.stem not in _named()
    )
    assert not missing, f"modules docs/architecture.md does not name: {missing}"


def test_the_sandbox_table_is_the_layers_contract_row_for_row() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layered = next(c for c in contracts["contracts"] if c["name"].startswith("the sandbox is layered"))
    layers = [[m.strip() for m in layer.split("|")] for layer in layered["layers"]]
    rows = re.findall(r"^\| (\d+) \| (.*?) \|", DOC, re.M)
    assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1))
    assert [[m.strip("` /") for m in mods.split(",")] for _, mods in rows] == layers
