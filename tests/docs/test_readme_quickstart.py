"""The README's SDK quick-start runs exactly as written, as a new user would run it.

Its blocks are taken from README.md verbatim: the first terminal's block starts the sandbox centre,
the second terminal's block opens the bank's account and runs the program (the README's python
block, saved as ``quickstart.py``). The only change is the port: a free loopback port instead of
8600, so that the test does not collide with a centre already running.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _quick_start_blocks() -> tuple[list[str], str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## SDK quick-start") :]
    section = section[: section.index("\n## ", 3)]
    shell = re.findall(r"```sh\n(.*?)```", section, re.S)
    python = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(shell) == 3 and len(python) == 1, "the quick-start's blocks: install, centre, bank + program"
    return shell, python[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user who installed the package: its scripts on PATH, nothing else set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGBRIDGE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # this checkout, as the editable install would give
    env["HOME"] = str(tmp_path)  # no keyring or config of the person running the tests
    return env


@pytest.fixture
def centre(tmp_path: Path, user_env: dict[str, str]) -> Iterator[int]:
    """The first terminal: its block run as written (on a free port), until the centre answers."""
    _, start, _ = _quick_start_blocks()[0]
    port = _free_port()
    lines = [line for line in start.strip().splitlines() if line and not line.startswith("#")]
    *setup, serve = lines
    for line in setup:
        subprocess.run(["bash", "-euc", line], cwd=tmp_path, env=user_env, check=True, timeout=60)
    assert serve.startswith("regbridge sandbox serve") and "--port 8600" in serve
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", "exec " + serve.replace("8600", str(port))],
            cwd=tmp_path,
            env=user_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the centre did not start: {log.read_text(encoding='utf-8')}")
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_readme_quick_start_runs_as_written(tmp_path: Path, user_env: dict[str, str], centre: int) -> None:
    (_, _, bank), program = _quick_start_blocks()
    (tmp_path / "quickstart.py").write_text(program, encoding="utf-8")
    script = bank.replace("8600", str(centre))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=user_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the certificate the program downloaded is the one the centre issued, byte for byte
    with closing(sqlite3.connect(tmp_path / "centre" / "centre.sqlite3")) as db:
        issued = db.execute("SELECT id, certificate_number, content FROM certificates").fetchall()
    assert len(issued) == 1
    certificate_id, number, content = issued[0]
    downloaded = tmp_path / f"{certificate_id}.pdf"
    assert downloaded.read_bytes() == bytes(content)
    assert downloaded.read_bytes().startswith(b"%PDF")
    assert f"{number}: {certificate_id}.pdf" in done.stdout and "seal verified" in done.stdout
    assert re.search(r"^paid \d+\.\d{2} 元, receipt \d+$", done.stdout, re.M), done.stdout
    assert "certificate.issued" in done.stdout  # the feed read at the end
