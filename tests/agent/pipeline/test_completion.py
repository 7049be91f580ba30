"""Never take a file still being written, never delete what was not taken (issue 16 §2).

The writers here run as another user (``nobody``, through ``setpriv``: the tests run as root) and hold
the export open while they pause, as a slow query or a network share does. The cases without a file in
tests/data/cases/README.md (slow writer, upper-case extension, ``ingest FILE`` outside an inbox) are here;
each failed on the code before issue 16.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.demo import samples
from agent.pipeline import watch, writers
from agent.pipeline.watch import settling_files
from agent.pipeline.writers import writer_state
from sandbox.local import LocalCentre

from ..conftest import SECRET, Branch, drop, make_branch, mortgage_export

SETPRIV = shutil.which("setpriv")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None, reason="needs root and setpriv")

CLI = CliRunner(env={"REGBRIDGE_AGENT_SECRET": SECRET.decode()})
AS_NOBODY = [SETPRIV or "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

WRITER = r"""
import os, sys, time
fd = int(sys.argv[1])
parts = sys.argv[2:]
os.write(fd, bytes.fromhex(parts[0]))
time.sleep(float(parts[1]))  # the slow query: the file is open, its size and mtime stand still
os.write(fd, bytes.fromhex(parts[2]))
os.close(fd)
"""


def _stable_branch(centre: LocalCentre, tmp_path: Path, seconds: float = 0.5) -> Branch:
    inbox = {
        "name": "corebank",
        "path": "inbox/corebank",
        "profile": "corebank_csv",
        "completion": "stable",
        "stable_seconds": seconds,
    }
    return make_branch(centre, tmp_path / "stable", inboxes=[inbox])


def _slow_writer(path: Path, first: bytes, pause: float, rest: bytes) -> subprocess.Popen[bytes]:
    """Another user's process writing ``path`` through a descriptor it holds open: ``first``, a pause, ``rest``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        return subprocess.Popen(
            [*AS_NOBODY, sys.executable, "-c", WRITER, str(fd), first.hex(), str(pause), rest.hex()], pass_fds=[fd]
        )
    finally:
        os.close(fd)


def test_a_writer_that_pauses_is_not_taken_while_it_holds_the_file(centre: LocalCentre, tmp_path: Path) -> None:
    """Slow writer: the default rule (stable) waited 2 s, took the first row and deleted the file under the writer."""
    branch = _stable_branch(centre, tmp_path)
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        content = mortgage_export(inbox, {"SLOW-1": 1, "SLOW-2": 2})
        head, _, tail = content.partition(b"\r\nSLOW-2")
        writer = _slow_writer(inbox / "slow.csv", head + b"\r\n", 2.5, b"SLOW-2" + tail)
        try:
            time.sleep(0.3)
            assert writer_state(inbox / "slow.csv").state == "writing"
            until = time.monotonic() + 2.0
            while time.monotonic() < until:  # well past stable_seconds while the writer pauses
                assert agent.scan() == 0
                time.sleep(0.1)
            assert (inbox / "slow.csv").exists() and agent.store.files() == []
        finally:
            writer.wait(timeout=30)
        assert agent.run_until_idle(timeout=30)
        [file] = agent.store.files()
        rows = content.count(b"\r\n") - 1  # every row, the ones written after the pause too
        assert rows >= 2 and file["records"] == rows and file["rows_queued"] == rows
        assert sorted(a.loan_no for a in agent.store.applications()) == ["SLOW-1", "SLOW-2"]
    finally:
        watch._stability.clear()
        agent.close()


def test_run_until_idle_waits_for_a_settling_file(centre: LocalCentre, tmp_path: Path) -> None:
    """``run --until-idle`` with the default rule exited 0 at once, the fresh export untouched."""
    branch = _stable_branch(centre, tmp_path, seconds=1.0)
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        drop(inbox, "fresh.csv", mortgage_export(inbox, {"FRESH-1": 1}))
        assert settling_files(agent.context, agent.config.inbox[0])
        assert agent.run_until_idle(timeout=30)
        assert not (inbox / "fresh.csv").exists()
        assert [a.loan_no for a in agent.store.applications()] == ["FRESH-1"]
    finally:
        watch._stability.clear()
        agent.close()


def test_where_no_writer_can_be_ruled_out_the_answer_is_unknown(tmp_path: Path) -> None:
    """The agent as an unprivileged user cannot see another user's open files: it never assumes "no writer"."""
    folder = tmp_path / "share"
    folder.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(folder, 0o755)
    path = folder / "export.csv"
    with open(path, "wb") as held:  # root writes; the check runs as nobody
        held.write(b"a,b\r\n")
        held.flush()
        os.chmod(path, 0o644)
        # the module under test (standard library only), where nobody can read it whatever the checkout's
        # permissions (a clone in a 0700 folder is not readable by nobody)
        code = Path(tempfile.mkdtemp(prefix="regbridge-writers-"))
        try:
            os.chmod(code, 0o755)
            shutil.copy(writers.__file__, code / "writers_probe.py")
            os.chmod(code / "writers_probe.py", 0o644)
            probe = (
                "from pathlib import Path; from writers_probe import writer_state; "
                f"print(writer_state(Path({str(path)!r})).state)"
            )
            done = subprocess.run(
                [*AS_NOBODY, sys.executable, "-c", probe],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(code)},
                cwd="/",
                timeout=60,
            )
        finally:
            shutil.rmtree(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unknown"
    assert writer_state(path).state == "none"  # root can tell, once the writer closed it


def test_patterns_match_whatever_the_case_and_a_file_no_profile_reads_raises_an_alert(branch: Branch) -> None:
    """``export.CSV`` or an ``.xlsx`` in a CSV inbox sat in the folder forever, with no alert, log line or status."""
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        drop(inbox, "EXPORT.CSV", mortgage_export(inbox, {"UPPER-1": 1}))
        drop(inbox, "stray.xlsx", b"PK\x03\x04 not for this inbox")
        assert agent.scan() == 1
        assert [a.loan_no for a in agent.store.applications()] == ["UPPER-1"]
        alerts = [a for a in agent.store.alerts() if "stray.xlsx" in a["message"]]
        assert alerts and (inbox / "stray.xlsx").exists()
        status = CLI.invoke(app, ["status", "--config", str(branch.config)])
        assert "stray.xlsx" in status.output
        (inbox / "stray.xlsx").unlink()
        agent.scan()
        assert not [a for a in agent.store.alerts() if "stray.xlsx" in a["message"]]
    finally:
        agent.close()


def test_an_export_reached_through_a_symlink_is_refused(branch: Branch, tmp_path: Path) -> None:
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        outside = tmp_path / "elsewhere.csv"
        outside.write_bytes(mortgage_export(inbox, {"LINK-1": 1}))
        (inbox / "linked.csv").symlink_to(outside)
        assert agent.scan() == 0
        assert agent.store.applications() == [] and outside.exists()
        assert any("linked.csv" in a["message"] for a in agent.store.alerts())
        args = ["ingest", str(inbox / "linked.csv"), "--inbox", "corebank", "--config", str(branch.config)]
        result = CLI.invoke(app, args)
        assert result.exit_code == 2 and outside.exists()
    finally:
        agent.close()
        outside.unlink(missing_ok=True)  # the test's own input (the privacy scan allows inputs only in an inbox)


def test_ingest_file_never_deletes_a_file_outside_an_inbox(branch: Branch, tmp_path: Path) -> None:
    """``regbridge ingest FILE`` deleted FILE from a folder outside every inbox, even when already processed."""
    samples.write_materials(branch.inbox() / "materials", "OUT-1", "mortgage_first")
    export = tmp_path / "mine" / "export.csv"
    export.parent.mkdir()
    export.write_bytes(mortgage_export(branch.inbox(), {"OUT-1": 1}))
    args = ["ingest", str(export), "--inbox", "corebank", "--config", str(branch.config)]
    first = CLI.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert export.exists(), "a file outside the inbox is the user's: it stays"
    again = CLI.invoke(app, args)
    assert again.exit_code == 0 and "already processed" in again.output
    assert export.exists()
    inside = drop(branch.inbox(), "inside.csv", export.read_bytes() + b"\r\n")
    CLI.invoke(app, ["ingest", str(inside), "--inbox", "corebank", "--config", str(branch.config)])
    assert not inside.exists(), "a file in the inbox is retired as the daemon would"
    export.unlink()  # the test's own input (the privacy scan allows inputs only in an inbox)
