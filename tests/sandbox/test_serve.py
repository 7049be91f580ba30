"""`regbridge sandbox serve` as an operator runs it: a data directory, keys locked by a secret file."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_a_data_directory_restarts_with_the_same_keys(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("a long sandbox passphrase\n")
    data = tmp_path / "centre"
    port = _free_port()
    cmd = [sys.executable, "-m", "agent.cli", "sandbox", "serve", "--port", str(port), "--data", str(data),
           "--secret-file", str(secret)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    keys = []
    statuses: list[int] = []
    for _ in range(2):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline() + proc.stdout.readline()
            assert "admin API token" in banner, banner
            token = banner.split("shown once): ")[1].strip()
            deadline = time.monotonic() + 60
            while True:
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/admin/v1/institutions",
                                  headers={"Authorization": f"Bearer {token}"}, timeout=60)  # fmt: skip
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "serve did not come up"
                    time.sleep(0.1)
            assert r.status_code == 200 and len(r.json()) == len(statuses)  # the first run's account survives
            made = httpx.post(
                f"http://127.0.0.1:{port}/admin/v1/institutions",
                headers={"Authorization": f"Bearer {token}"},
                json={"name": "示例银行", "uscc": "91340100781081199K", "licence_no": "B1"},
                timeout=60,
            )
            statuses.append(made.status_code)
            # the first /openapi.json builds the schema: seconds on a loaded machine, past httpx's 5 s default
            spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=60).json()
            assert spec["info"]["title"].startswith("RegBridge sandbox")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            if proc.stdout is not None:
                proc.stdout.close()
        with sqlite3.connect(data / "centre.sqlite3") as db:
            pems = dict(db.execute("SELECT name, pem FROM secrets").fetchall())
        db.close()
        assert all(b"ENCRYPTED PRIVATE KEY" in pems[k] for k in ("ca_key", "seal_key", "centre_key"))
        keys.append(pems["centre_key"])
    assert oct(data.stat().st_mode & 0o777) == "0o700"
    assert statuses == [201, 409]  # the second start found the account the first one opened
    assert keys[0] == keys[1]  # created once, encrypted, kept across the restart
