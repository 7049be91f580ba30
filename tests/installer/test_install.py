"""``regbridge install`` lays out a hardened service that really runs; ``uninstall`` keeps data unless asked."""

from __future__ import annotations

import getpass
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.local import LocalCentre
from tests.agent.conftest import drop, mortgage_export
from tests.stored import stored_certificates

from .keyscan import key_forms, scan_for_keys

HARDENING = (
    "Type=notify", "WatchdogSec=", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=",
    "PrivateTmp=yes", "Restart=on-failure", "LoadCredential=regbridge-secret:", "CapabilityBoundingSet=",
)  # fmt: skip


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("REGBRIDGE_", "CREDENTIALS_DIRECTORY"))}


def _regbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], env=env or _env(), capture_output=True, text=True, timeout=120
    )


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_install_enrols_a_hardened_service_that_runs_and_uninstall_keeps_data(
    centre: LocalCentre, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    _, bundle = centre.bank()
    (tmp_path / "bank.json").write_text(json.dumps(bundle), encoding="utf-8")
    user = getpass.getuser()
    args = ["install", "--root", str(root), "--user", user, "--bundle", str(tmp_path / "bank.json"),
            "--inbox", "corebank=/srv/regbridge/inbox/corebank:corebank_csv", "--no-start"]  # fmt: skip
    done = _regbridge(*args)
    assert done.returncode == 0, done.stderr
    assert "enrolled: key key_" in done.stdout

    etc, state = root / "etc" / "regbridge", root / "var" / "lib" / "regbridge"
    unit = root / "etc" / "systemd" / "system" / "regbridge-agent.service"
    inbox = root / "srv" / "regbridge" / "inbox" / "corebank"
    modes = {
        etc: 0o750, etc / "agent.toml": 0o640, etc / "agent.secret": 0o600, state: 0o700, state / "keys": 0o700,
        state / "state": 0o700, inbox: 0o750, unit: 0o644,
    }  # fmt: skip
    assert {p: _mode(p) for p in modes} == modes
    [key_file] = (state / "keys").glob("*.key")
    assert _mode(key_file) == 0o600 and key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    text = unit.read_text()
    assert all(directive in text for directive in HARDENING), text
    assert f"ReadWritePaths={state} {inbox}" in text

    # the unit verifies cleanly; the same check catches a broken one
    if shutil.which("systemd-analyze"):
        check = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert check.returncode == 0 and not check.stderr.strip(), check.stderr
        broken = tmp_path / "broken.service"
        broken.write_text(text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
        check = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True)
        assert "Unknown key" in check.stderr

    # installing again is safe
    again = _regbridge(*args)
    assert again.returncode == 0 and "already enrolled" in again.stdout, again.stderr

    config = etc / "agent.toml"
    doctor = _regbridge("doctor", "--json", "-c", str(config))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert all(f["status"] == "ok" for f in json.loads(doctor.stdout))

    # run the unit's command as systemd would: the secret as a credential, nothing else
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    shutil.copy(etc / "agent.secret", creds / "regbridge-secret")
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))[len("ExecStart=") :]
    env = {**_env(), "CREDENTIALS_DIRECTORY": str(creds), "REGBRIDGE_DEFAULT_OPERATOR": "op-001",
           "REGBRIDGE_METRICS__PORT": "0", "REGBRIDGE_FEES__AUTO_PAY": "true",
           "REGBRIDGE_FEES__DAILY_CAP": "1000", "REGBRIDGE_RESCAN_SECONDS": "1"}  # fmt: skip
    os.rename(etc / "agent.secret", tmp_path / "agent.secret.away")  # only the credential is left
    drop(inbox, "loans.csv", mortgage_export(inbox, {"I-1": 21, "I-2": 22}))
    with open(tmp_path / "agent.stderr", "wb") as err:
        proc = subprocess.Popen(shlex.split(exec_start), env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        db = state / "state" / "state.db"
        deadline = time.monotonic() + 90
        done_count = 0
        while time.monotonic() < deadline and done_count < 2:
            time.sleep(0.5)
            if db.exists():
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    done_count = con.execute("SELECT COUNT(*) FROM applications WHERE stage = 'done'").fetchone()[0]
                except sqlite3.Error:
                    done_count = 0
                finally:
                    con.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert done_count == 2, (tmp_path / "agent.stderr").read_text()[-2000:]
    assert sorted(p.parent.name for p in stored_certificates(state / "documents")) == ["I-1", "I-2"]
    os.rename(tmp_path / "agent.secret.away", etc / "agent.secret")

    # nothing the installer or the agent wrote holds the private key in plaintext
    from agent.config import load_config
    from agent.credentials.custody import custody_for

    cfg = load_config(config)
    custody = custody_for(cfg, (etc / "agent.secret").read_bytes().strip())
    forms = key_forms(custody.load(custody.entry(cfg.centre.key_id)))
    assert scan_for_keys([root, tmp_path / "agent.stderr"], forms) == []

    gone = _regbridge("uninstall", "--root", str(root), "--user", user)
    assert gone.returncode == 0 and not unit.exists()
    assert config.exists() and key_file.exists() and (state / "state" / "state.db").exists()
    purged = _regbridge("uninstall", "--root", str(root), "--user", user, "--purge")
    assert purged.returncode == 0 and not etc.exists() and not state.exists()


def test_install_without_root_says_it_needs_root_to_create_the_service_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from installer.linux import InstallPlan, install

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    plan = InstallPlan(root=tmp_path, user="regbridge-no-such-user-here")
    with pytest.raises(PermissionError, match="needs root"):
        install(plan, start=False, say=lambda _: None)
    assert not (tmp_path / "etc").exists()
