from __future__ import annotations

import contextlib
import csv
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.daemon import Agent
from agent.demo import samples
from installer.enrol import enrol
from sandbox.esign import EsignAuthority
from sandbox.local import LocalCentre

SECRET = b"test-agent-secret"


@pytest.fixture
def centre() -> Iterator[LocalCentre]:
    with LocalCentre() as running:
        yield running


@dataclass
class Branch:
    root: Path
    config: Path
    institution_id: str
    centre: LocalCentre

    def agent(self) -> Agent:
        return Agent(load_config(self.config), secret=SECRET)

    def inbox(self, name: str = "corebank") -> Path:
        return self.root / "inbox" / name


INBOXES = [
    {"name": "corebank", "path": "inbox/corebank", "profile": "corebank_csv", "completion": "rename"},
    {"name": "presale", "path": "inbox/presale", "profile": "presale_xlsx", "completion": "rename"},
    {"name": "legacy", "path": "inbox/legacy", "profile": "legacy_fixed", "completion": "rename"},
]


def make_branch(
    centre: LocalCentre,
    root: Path,
    inboxes: list[dict[str, Any]] | None = None,
    *,
    filed: bool = True,
    **settings: Any,
) -> Branch:
    iid, bundle = centre.bank(filed=filed)
    settings = {
        "default_operator": "op-001",
        "fees": {"auto_pay": True, "daily_cap": "100000"},
        "metrics": {"port": 0},
        **settings,
    }
    done = enrol(bundle, root, secret=SECRET, inboxes=inboxes or INBOXES, settings=settings)
    return Branch(root, done.path, iid, centre)


@pytest.fixture
def branch(centre: LocalCentre, tmp_path: Path) -> Branch:
    """A bank branch enrolled with the sandbox centre, its agent configured with the three sample inboxes."""
    return make_branch(centre, tmp_path / "branch")


def run_until(agent: Agent, done: Callable[[], bool], timeout: float = 60) -> None:
    """Drive the agent until ``done()``: for states that never make it idle (an application held at the
    centre, a fee left unpaid). Waits on the condition, not on a fixed time, so a loaded machine only
    makes it slower; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the agent did not get there in time"
        agent.run_until_idle(timeout=0.5)


def drop(folder: Path, name: str, content: bytes, *, authority: EsignAuthority | None = None) -> Path:
    """Drop an export as a loan system does (temporary name, then rename); a core banking CSV's applicants'
    signed 申请书 (the files its 电子签名文件 column names) are written beside it first, as the signing platform
    leaves them (signed by ``authority``, by default this process's in-memory e-signature CA, the one in-memory
    centres trust; a centre in another process has its own: pass it)."""
    folder.mkdir(parents=True, exist_ok=True)
    if name.lower().endswith(".csv"):
        with contextlib.suppress(UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError):
            # not a core banking export: nothing to sign
            samples.write_corebank_esignatures(folder, content, authority=authority)
    tmp = folder / f".{name}.part"
    tmp.write_bytes(content)
    os.replace(tmp, folder / name)
    return folder / name


def mortgage_export(
    inbox: Path, loans: dict[str, int], amount: str = "150", *, authority: EsignAuthority | None = None
) -> bytes:
    """A core-banking export of first mortgages on seeded units, their materials and the applicants' signed 申请书
    written beside it (signed by ``authority``, as :func:`drop`)."""
    rows: list[dict[str, str]] = []
    for loan, n in loans.items():
        samples.write_materials(inbox / "materials", loan, "mortgage_first")
        rows += samples.mortgage_rows(loan, n, amount=amount)
    samples.write_esignatures(inbox, samples.corebank_signers(rows), authority=authority, keep=True)
    return samples.corebank_csv(rows)
