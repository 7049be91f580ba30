"""The offline bundle (``make bundle``) installs with the package index disabled, and the agent runs."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from sdk import __version__

DIST = Path(__file__).resolve().parents[2] / "dist"


def test_the_offline_bundle_installs_without_a_package_index_and_runs(tmp_path: Path) -> None:
    bundles = sorted(DIST.glob(f"regbridge-{__version__}-*.tar.gz"))
    if not bundles:
        pytest.fail("no offline bundle in dist/: `make bundle` builds it (`make test` does so first)")
    with tarfile.open(bundles[-1]) as tar:
        tar.extractall(tmp_path, filter="data")
    folder = tmp_path / f"regbridge-{__version__}"
    meta = json.loads((folder / "bundle.json").read_text())
    assert meta["version"] == __version__ and meta["wheels"] == len(list((folder / "wheels").glob("*.whl")))
    # an index that cannot answer: anything pip tried to fetch would fail the install
    env = {**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
           "PIP_CONFIG_FILE": os.devnull, "PATH": os.environ["PATH"]}  # fmt: skip
    prefix = tmp_path / "opt" / "regbridge"
    done = subprocess.run(
        ["sh", str(folder / "install.sh"), str(prefix)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    version = subprocess.run([str(prefix / "bin" / "regbridge"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"regbridge {__version__}"
    commands = subprocess.run([str(prefix / "bin" / "regbridge"), "--help"], capture_output=True, text=True).stdout
    assert all(c in commands for c in ("enroll", "doctor", "keys", "install", "run", "console", "users"))
    # the web console's stack came from the bundle too (issue 23): its modules, templates and password hashing
    console = subprocess.run(
        [str(prefix / "bin" / "python"), "-c",
         "import agent.console, argon2, multipart, jinja2, uvicorn; from pathlib import Path; "
         "print((Path(agent.console.__file__).parent / 'templates' / 'login.html').is_file())"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert console.returncode == 0 and console.stdout.strip() == "True", console.stderr

    # a damaged bundle is refused before anything is installed
    wheel = next((folder / "wheels").glob("httpx-*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:-10])
    damaged = subprocess.run(
        ["sh", str(folder / "install.sh"), str(tmp_path / "other")], env=env, capture_output=True, text=True
    )
    assert damaged.returncode == 1 and "checksums differ" in damaged.stderr
    assert not (tmp_path / "other").exists()
