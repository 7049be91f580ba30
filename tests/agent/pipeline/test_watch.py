"""Which inbox files are complete, and a watcher that survives its folder vanishing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from agent.pipeline import watch
from agent.pipeline.watch import InboxWatcher, ready_files

from ..conftest import Branch, make_branch


def _branch(centre: object, tmp_path: Path, completion: str, **extra: object) -> Branch:
    inbox = {"name": "corebank", "path": "inbox/corebank", "profile": "corebank_csv", "completion": completion, **extra}
    return make_branch(centre, tmp_path / completion, inboxes=[inbox])  # type: ignore[arg-type]


def test_rename_into_place_ignores_files_still_being_written(centre: object, tmp_path: Path) -> None:
    branch = _branch(centre, tmp_path, "rename")
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        for name in (".a.csv.part", "b.csv.tmp", "~$c.csv", "d.txt", "e.csv"):
            (inbox / name).write_bytes(b"x")
        assert [p.name for p in ready_files(agent.context, agent.config.inbox[0])] == ["e.csv"]
    finally:
        agent.close()


def test_a_done_marker_says_the_file_is_complete(centre: object, tmp_path: Path) -> None:
    branch = _branch(centre, tmp_path, "marker")
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        (inbox / "a.csv").write_bytes(b"x")
        assert ready_files(agent.context, agent.config.inbox[0]) == []
        (inbox / "a.csv.done").write_bytes(b"")
        assert [p.name for p in ready_files(agent.context, agent.config.inbox[0])] == ["a.csv"]
    finally:
        agent.close()


def test_a_file_is_complete_when_its_size_and_mtime_stay_still(centre: object, tmp_path: Path) -> None:
    branch = _branch(centre, tmp_path, "stable", stable_seconds=0.3)
    agent = branch.agent()
    try:
        spec = agent.config.inbox[0]
        path = branch.inbox() / "a.csv"
        path.write_bytes(b"first part")
        assert ready_files(agent.context, spec) == []
        time.sleep(0.2)
        with open(path, "ab") as fh:
            fh.write(b" and more")  # still growing: the clock starts again
        assert ready_files(agent.context, spec) == []
        time.sleep(0.35)
        assert [p.name for p in ready_files(agent.context, spec)] == ["a.csv"]
    finally:
        watch._stability.clear()
        agent.close()


def test_a_vanished_inbox_raises_an_alert_and_is_rearmed_when_it_returns(centre: object, tmp_path: Path) -> None:
    branch = _branch(centre, tmp_path, "rename", polling=True)
    agent = branch.agent()
    woken: list[int] = []
    agent.supervision.wakers.append(lambda: woken.append(1))
    watcher = InboxWatcher(agent.context)
    try:
        watcher.supervise()
        assert watcher.observers["corebank"].is_alive()
        shutil.rmtree(branch.inbox())
        watcher.supervise()
        assert "corebank" not in watcher.observers
        assert [a["kind"] for a in agent.store.alerts()] == ["inbox:corebank"]
        branch.inbox().mkdir(parents=True)
        watcher.supervise()
        assert watcher.observers["corebank"].is_alive() and agent.store.alerts() == []
        (branch.inbox() / "new.csv").write_bytes(b"x")
        deadline = time.monotonic() + 5
        while not woken and time.monotonic() < deadline:
            time.sleep(0.1)
        assert woken, "the re-armed observer wakes the agent"
    finally:
        watcher.stop()
        agent.close()
