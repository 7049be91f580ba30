"""``regbridge install`` / ``regbridge uninstall`` on Linux: a service user, folders with tight
permissions, the agent enrolled, and a hardened systemd unit (``Type=notify`` with a watchdog).

Layout (every path under ``root``, ``/`` for a real install; another root gives a relocatable
install the tests use):

=====================================  ==========================  =====
path                                   owner                       mode
=====================================  ==========================  =====
/etc/regbridge/agent.toml              root:regbridge              0640
/etc/regbridge/agent.secret            regbridge:regbridge         0600   (also a systemd credential)
/var/lib/regbridge/                    regbridge:regbridge         0700   state/, keys/, documents/, …
<each inbox>                           regbridge:regbridge         0750
/etc/systemd/system/regbridge-agent.service                        0644
=====================================  ==========================  =====

The service reads its secret as the systemd credential ``regbridge-secret`` (``LoadCredential=``),
may write only its state and its inboxes (``ProtectSystem=strict`` + ``ReadWritePaths=``), and
cannot gain privileges. ``uninstall`` stops and removes the unit and keeps config, keys and
state unless ``purge`` is asked for.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["InstallPlan", "install", "render_unit", "uninstall"]

UNIT_NAME = "regbridge-agent.service"


@dataclass
class InstallPlan:
    root: Path = Path("/")
    user: str = "regbridge"
    executable: Path = Path("/opt/regbridge/bin/regbridge")
    inboxes: list[dict[str, Any]] = field(default_factory=list)
    watchdog_seconds: int = 120

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    @property
    def config_dir(self) -> Path:
        return self.path("/etc/regbridge")

    @property
    def state_dir(self) -> Path:
        return self.path("/var/lib/regbridge")

    @property
    def unit_path(self) -> Path:
        return self.path(f"/etc/systemd/system/{UNIT_NAME}")

    def writable(self) -> list[Path]:
        paths = [self.state_dir]
        for inbox in self.inboxes:
            paths.append(Path(inbox["path"]))
            if inbox.get("receipts"):
                paths.append(Path(inbox["receipts"]))
        return paths


def render_unit(plan: InstallPlan) -> str:
    """The hardened systemd unit for ``plan``."""
    config = plan.config_dir / "agent.toml"
    writable = " ".join(str(p) for p in plan.writable())
    under_home = any(str(p).startswith(("/home/", "/root/")) for p in plan.writable())
    return f"""# RegBridge agent: written by `regbridge install` (docs/install.md)
[Unit]
Description=RegBridge agent (互联网+不动产抵押登记, bank side)
Documentation=https://regbridge.example/docs/install.md
Wants=network-online.target
After=network-online.target time-sync.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={plan.executable} run --config {config}
# SIGHUP: the agent reads its config and mapping profiles again, without losing work (`systemctl reload`)
ExecReload=/bin/kill -HUP $MAINPID
User={plan.user}
Group={plan.user}
LoadCredential=regbridge-secret:{plan.config_dir / "agent.secret"}
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec=5
# the JSON log lines on stderr carry their syslog priority (<3>, <4>, <6>…): `journalctl -p warning`
SyslogLevelPrefix=yes
WatchdogSec={plan.watchdog_seconds}
TimeoutStartSec=120
TimeoutStopSec=120
UMask=0027

# hardening: the agent may write only its state and its inboxes, and gains nothing
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={writable}
{"ProtectHome=read-only" if under_home else "ProtectHome=yes"}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
CapabilityBoundingSet=
AmbientCapabilities=

[Install]
WantedBy=multi-user.target
"""


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _ensure_user(name: str, home: Path, say: Any) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise PermissionError(f"creating the service user {name} needs root (sudo regbridge install …)")
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    done = _run("useradd", "--system", "--user-group", "--home-dir", str(home), "--no-create-home",
                "--shell", nologin, "--comment", "RegBridge agent", name)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"useradd {name} failed: {done.stderr.strip()}")
    say(f"created the service user {name}")
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _folder(path: Path, mode: int, owner: tuple[int, int] | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, *owner)


def install(
    plan: InstallPlan,
    *,
    bundle: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    key_store: str = "file",
    start: bool = True,
    say: Any = print,
) -> dict[str, Any]:
    """Install the agent as ``plan`` says; enrol it when given a ``bundle``. Safe to run again."""
    from installer.enrol import enrol
    from sdk.support.files import atomic_write

    uid, gid = _ensure_user(plan.user, plan.state_dir, say)
    service = (uid, gid)
    _folder(plan.config_dir, 0o750, (0, gid))
    _folder(plan.state_dir, 0o700, service)
    for sub in ("state", "keys", "documents", "transmittals"):
        _folder(plan.state_dir / sub, 0o700, service)
    for inbox in plan.inboxes:
        _folder(Path(inbox["path"]), 0o750, service)
    enrolled = None
    if bundle is not None:
        done = enrol(
            bundle,
            plan.config_dir,
            inboxes=plan.inboxes,
            settings={
                "data_dir": str(plan.state_dir / "state"),
                "documents": {"kind": "filesystem", "root": str(plan.state_dir / "documents")},
                "transmittal_dir": str(plan.state_dir / "transmittals"),
                **(settings or {}),
            },
            key_store=key_store,  # type: ignore[arg-type]
            key_dir=plan.state_dir / "keys",
            secret_file=plan.config_dir / "agent.secret",
        )
        enrolled = {"key_id": done.key_id, "already": done.already, "kept": done.key_where}
        say(("already enrolled: key " if done.already else "enrolled: key ") + done.key_id)
        if os.geteuid() == 0:
            os.chown(done.path, 0, gid)
            os.chmod(done.path, 0o640)
            secret = plan.config_dir / "agent.secret"
            if secret.exists():
                os.chown(secret, uid, gid)
            for path in (plan.state_dir / "keys").rglob("*"):
                os.chown(path, uid, gid)
            for path in (plan.state_dir / "state").rglob("*"):
                os.chown(path, uid, gid)
    atomic_write(plan.unit_path, render_unit(plan).encode(), mode=0o644)
    say(f"wrote {plan.unit_path}")
    started = False
    if start and plan.root == Path("/") and _systemd_running():
        for command in (("systemctl", "daemon-reload"), ("systemctl", "enable", "--now", UNIT_NAME)):
            done_cmd = _run(*command)
            if done_cmd.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {done_cmd.stderr.strip()}")
        started = True
        say(f"started {UNIT_NAME}; follow it with: journalctl -u {UNIT_NAME} -f")
    elif start:
        say(f"systemd is not running here: start it with `systemctl enable --now {UNIT_NAME}` where it is")
    manifest = {
        "unit": str(plan.unit_path),
        "config": str(plan.config_dir / "agent.toml"),
        "state": str(plan.state_dir),
        "user": plan.user,
        "enrolled": enrolled,
        "started": started,
    }
    atomic_write(plan.config_dir / "install.json", json.dumps(manifest, indent=2).encode(), mode=0o640)
    return manifest


def uninstall(plan: InstallPlan, *, purge: bool = False, say: Any = print) -> list[str]:
    """Stop and remove the service; config, keys and state stay unless ``purge``."""
    removed = []
    if plan.root == Path("/") and _systemd_running():
        _run("systemctl", "disable", "--now", UNIT_NAME)
    if plan.unit_path.exists():
        plan.unit_path.unlink()
        removed.append(str(plan.unit_path))
        if plan.root == Path("/") and _systemd_running():
            _run("systemctl", "daemon-reload")
    if purge:
        for path in (plan.config_dir, plan.state_dir):
            if path.exists():
                shutil.rmtree(path)
                removed.append(str(path))
        if plan.root == Path("/") and os.geteuid() == 0:
            try:
                pwd.getpwnam(plan.user)
                _run("userdel", plan.user)
                removed.append(f"user {plan.user}")
            except KeyError:
                pass
    else:
        say(f"kept {plan.config_dir} and {plan.state_dir} (config, keys, state); --purge removes them")
    for item in removed:
        say(f"removed {item}")
    return removed
