"""A branch from an empty folder to a supervised, enrolled agent, through the real commands.

The sandbox centre runs as its own process (``regbridge sandbox serve``); its admin opens the
bank's account and writes an enrolment bundle; then ``regbridge enroll`` → ``regbridge doctor``
(all green) → ``regbridge run`` (as systemd would run it: notify socket and watchdog) processes
an export → ``regbridge keys rotate`` while applications are in flight → a second export after
the old key's grace has ended. Nothing is lost or duplicated, the old key is revoked at the centre
and erased here, and no file written holds private key material in plaintext.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import load_config
from agent.credentials.custody import custody_for
from agent.mapping import TYPE_CODES
from agent.state.secrets import load_secret
from sandbox import register
from sandbox.esign import EsignAuthority
from sandbox.store import Store
from tests.agent.conftest import drop, mortgage_export
from tests.stored import stored_certificates

from .keyscan import key_forms, scan_for_keys

GRACE = 5
FIRST = [n for n in range(1, 42) if n not in (register.SEIZED_UNIT, register.OBJECTION_UNIT)]  # 39 loans
SECOND = list(range(60, 66))  # 6 loans, sent after the old key was revoked


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGBRIDGE_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    return {**env, **extra}


def _cli(*args: str, env: dict[str, str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if check and done.returncode != 0:
        pytest.fail(f"regbridge {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def _stages(db: Path) -> Counter[str]:
    if not db.exists():
        return Counter()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return Counter(r[0] for r in con.execute("SELECT stage FROM applications"))
    except sqlite3.Error:
        return Counter()
    finally:
        con.close()


def _unbatched_receipts(db: Path) -> int:
    """Receipt lines queued and not yet written in a batch (the last delivery's line is batched by the next
    work round, after its application is done); -1 while the state cannot be read."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(con.execute("SELECT COUNT(*) FROM receipts WHERE batch IS NULL").fetchone()[0])
    except sqlite3.Error:
        return -1
    finally:
        con.close()


def _wait(what: str, predicate: object, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        if proc.poll() is not None:
            pytest.fail(f"the agent exited ({proc.returncode}) waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def centre_process(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    port = _free_port()
    data = tmp_path / "centre"
    env = _clean_env(REGBRIDGE_SANDBOX_SECRET="centre-test-passphrase", REGBRIDGE_SANDBOX_DATA=str(data))
    out = open(tmp_path / "centre.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "sandbox", "serve", "--port", str(port), "--data", str(data),
         "--step-seconds", "0.15"],
        env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the sandbox centre did not start")
    try:
        yield url, data, env
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        out.close()


def test_from_an_empty_folder_to_an_enrolled_agent_that_rotates_its_key_in_flight(
    tmp_path: Path, centre_process: tuple[str, Path, dict[str, str]]
) -> None:
    url, centre_data, centre_env = centre_process
    work = tmp_path / "branch"
    work.mkdir()
    assert not any(work.iterdir())

    # the centre opens the account and issues the bundle
    iid = _cli("sandbox", "admin", "create-institution", "--name", register.SAMPLE_BANK_NAME,
               "--uscc", register.SAMPLE_BANK_USCC, "--licence-no", "B0001H234010001",
               env=centre_env, cwd=tmp_path).stdout.strip()  # fmt: skip
    _cli("sandbox", "admin", "create-operator", iid, "--name", "李经办", "--operator-id", "op-001",
         env=centre_env, cwd=tmp_path)  # fmt: skip
    _cli("sandbox", "admin", "bundle", iid, "--url", url, "--out", str(tmp_path / "bank.json"),
         env=centre_env, cwd=tmp_path)  # fmt: skip
    # the applicants sign on the signing platform this centre trusts (its e-signature CA, the one the bundle
    # names), not on this test process's own in-memory one
    store = Store(centre_data / "centre.sqlite3")
    try:
        platform = EsignAuthority.load_or_create(store, passphrase=centre_env["REGBRIDGE_SANDBOX_SECRET"].encode())
    finally:
        store.close()
    assert json.loads((tmp_path / "bank.json").read_text())["bundle"]["trust"]["esign_ca_pems"] == [platform.ca_pem]

    # enrol: a key made here, a secret made here; running it twice is safe
    env = _clean_env()
    enrolled = _cli("enroll", str(tmp_path / "bank.json"), "--dir", str(work), "--key-store", "file",
                    "--inbox", "corebank=inbox/corebank:corebank_csv", env=env, cwd=tmp_path)  # fmt: skip
    assert "enrolled: key key_" in enrolled.stdout and "agent.secret" in enrolled.stdout
    again = _cli("enroll", str(tmp_path / "bank.json"), "--dir", str(work), env=env, cwd=tmp_path)
    assert "already enrolled" in again.stdout
    config_path = work / "agent.toml"
    # 银行信息备案 once (seed 001 §5.2): without it the centre takes no application
    samples_dir = Path(__file__).resolve().parents[2] / "config" / "samples" / "filing"
    filed = _cli("filing", "-c", str(config_path), "--business-licence", str(samples_dir / "business_licence.pdf"),
                 "--financial-licence", str(samples_dir / "financial_licence.pdf"),
                 "--financial-licence-number", "B0001H234010001", env=env, cwd=tmp_path)  # fmt: skip
    assert "备案齐全有效" in filed.stdout
    assert (work / "agent.secret").stat().st_mode & 0o777 == 0o600

    # settings for this run come from the environment (pydantic-settings), not from editing the file
    metrics_port = _free_port()
    env = _clean_env(
        REGBRIDGE_DEFAULT_OPERATOR="op-001",
        REGBRIDGE_FEES__AUTO_PAY="true",
        REGBRIDGE_FEES__DAILY_CAP="100000",
        REGBRIDGE_RESCAN_SECONDS="1",
        REGBRIDGE_MAX_POLL_SECONDS="1",
        REGBRIDGE_METRICS__PORT=str(metrics_port),
    )
    doctor = _cli("doctor", "--json", "-c", str(config_path), env=env, cwd=tmp_path)
    findings = json.loads(doctor.stdout)
    assert {f["check"] for f in findings} >= {"config", "secret", "key", "clock", "connectivity", "credential",
                                               "folders", "disk", "documents", "trust"}  # fmt: skip
    assert all(f["status"] == "ok" for f in findings), findings

    config = load_config(config_path)
    secret = load_secret(work / "agent.secret")
    old_key_id = config.centre.key_id
    custody = custody_for(config, secret)
    forms = key_forms(custody.load(custody.entry(old_key_id)))

    # run as systemd would: a notify socket and a watchdog
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(0.2)
    messages: list[str] = []
    stop_reading = threading.Event()

    def read_notifications() -> None:  # as systemd does: promptly
        while not stop_reading.is_set():
            try:
                messages.append(notify.recv(4096).decode())
            except TimeoutError:
                continue

    reader = threading.Thread(target=read_notifications, daemon=True)
    reader.start()
    run_env = {**env, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "2000000"}
    log = tmp_path / "agent.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "-c", str(config_path)],
            env=run_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    inbox = work / "inbox" / "corebank"
    db = work / "var" / "state.db"
    try:
        drop(
            inbox,
            "first.csv",
            mortgage_export(inbox, {f"E-{n:03d}": n for n in FIRST}, authority=platform),
            authority=platform,
        )

        def in_flight() -> bool:
            s = _stages(db)
            return s["tracking"] >= 3 and s["done"] < len(FIRST) - 5

        _wait("applications in flight", in_flight, 90, proc, log)
        before = _stages(db)
        rotated = _cli("keys", "rotate", "--grace", str(GRACE), "-c", str(config_path), env=env, cwd=tmp_path)
        assert "signing key is now key_" in rotated.stdout
        new_key_id = load_config(config_path).centre.key_id
        assert new_key_id != old_key_id
        assert sum(before.values()) == len(FIRST) and before["done"] < len(FIRST)  # really in flight
        forms += key_forms(custody_for(load_config(config_path), secret).load(custody.entry(new_key_id)))

        _wait("the first export done", lambda: _stages(db)["done"] == len(FIRST), 180, proc, log)
        time.sleep(GRACE + 1)  # the old key's grace has ended: the centre refuses it from now on
        drop(
            inbox,
            "second.csv",
            mortgage_export(inbox, {f"F-{n:03d}": n for n in SECOND}, authority=platform),
            authority=platform,
        )
        total = len(FIRST) + len(SECOND)
        _wait("the second export done", lambda: _stages(db)["done"] == total, 120, proc, log)
        _wait("every receipt line written", lambda: _unbatched_receipts(db) == 0, 60, proc, log)
        _wait("the old key erased", lambda: not (work / "keys" / custody.entry(old_key_id).location).exists(),
              20, proc, log)  # fmt: skip

        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5) as r:
            health = json.loads(r.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            time.sleep(0.3)
            stop_reading.set()
            reader.join()
            notify.close()
    assert code == 0, log.read_text()[-3000:]

    # none lost, none duplicated: at the centre, in the document store, in the receipts
    con = sqlite3.connect(f"file:{centre_data / 'centre.sqlite3'}?mode=ro", uri=True)
    try:
        refs = [r[0] for r in con.execute("SELECT client_reference FROM applications WHERE institution_id = ?", (iid,))]
        statuses = Counter(r[0] for r in con.execute("SELECT status FROM applications"))
        old_key = con.execute("SELECT status, revoke_at FROM keys WHERE key_id = ?", (old_key_id,)).fetchone()
        new_key = con.execute("SELECT status, revoke_at FROM keys WHERE key_id = ?", (new_key_id,)).fetchone()
    finally:
        con.close()
    loans = [f"E-{n:03d}" for n in FIRST] + [f"F-{n:03d}" for n in SECOND]
    assert sorted(refs) == sorted(f"{loan}-{TYPE_CODES['mortgage_first']}" for loan in loans)  # each once
    assert statuses == {"completed": len(loans)}
    assert datetime.fromisoformat(old_key[1]) <= datetime.now(UTC)  # revoked by the centre after the grace
    assert new_key == ("active", None)
    pdfs = sorted(p.parent.name for p in stored_certificates(work / "documents"))
    assert pdfs == sorted(loans)
    lines = []
    for path in sorted((inbox / "receipts").glob("receipts-*.csv")):
        lines += list(csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030"))))
    registered = Counter(row["贷款编号"] for row in lines if row["事件"] == "registered")
    assert registered == Counter(loans)
    assert Counter((row["贷款编号"], row["事件"]) for row in lines).most_common(1)[0][1] == 1

    # the agent switched keys without a pause, and told systemd what it was doing
    audit = [json.loads(line) for line in (work / "var" / "audit.log").read_text().splitlines()]
    assert [a["target"] for a in audit if a["action"] == "key.switched"] == [f"{old_key_id}->{new_key_id}"]
    assert not [a for a in audit if a["action"] == "agent.paused"]
    assert messages[0].startswith("READY=1") and "WATCHDOG=1" in messages and messages[-1].startswith("STOPPING=1")
    assert health["status"] == "ok" and health["open"] == 0
    assert f'regbridge_applications{{stage="done"}} {float(total)}' in metrics
    assert f'regbridge_certificate_deliveries_total{{outcome="stored"}} {float(total)}' in metrics
    assert "regbridge_request_seconds_bucket" in metrics

    # no private key material in plaintext in anything written
    assert scan_for_keys([work, tmp_path / "agent.stderr"], forms) == []
