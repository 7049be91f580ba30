"""Notices a provincial platform pushes to the mortgagee (issue 21 item 4 and "Must show").

A 查封 the platform pushes on a unit the branch holds a registered mortgage on reaches the loan
system as a receipt line (and an alert shown by ``regbridge status``, and an audit record) through
the real daemon (``run_daemon``: the agent configured with ``[platform]`` by ``regbridge platform
enroll``, its notify receiver started by the daemon, the receipt written by its jobs). At the
daemon's notify receiver a replayed nonce, a stale or future timestamp, a push signed by another key (also
with that key inside the message), an altered iv, tampered encData and a swapped encKey are each
refused with their code and change nothing; the replay
window is kept in the state, so a push replayed after the agent restarts is still refused.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from agent.daemon import Agent, run_daemon
from agent.daemon.notify import PlatformNoticeReceiver, RefusalThrottle
from agent.demo.province import free_port
from agent.state.status import snapshot
from config import load_dialect
from installer.platform import enrol_at_desk
from sandbox.platform import ProvincePlatform
from sandbox.register import CHANGFENG, FEIXI, unit_id
from sdk.dialects.province import Sealed, StaticPeers, seal
from sdk.gm.sm2 import Sm2PrivateKey, load_pem_public_key
from tests.agent.conftest import SECRET, Branch, drop, mortgage_export, run_until

APP_ID = "BANK-AH-NOTIFY"


def post_to(url: str, s: Sealed) -> str:
    code: str = httpx.post(url, headers=s.headers, json=s.body).json()["head"]["code"]
    return code


@contextmanager
def daemon(agent: Agent, url: str) -> Iterator[None]:
    """The agent as `regbridge run` runs it (in a thread), until the block ends; its notify receiver listening."""
    stop = threading.Event()
    thread = threading.Thread(target=run_daemon, args=(agent,), kwargs={"stop": stop, "install_signals": False})
    thread.start()
    try:
        wait_for(lambda: _listening(url), "the daemon's notify receiver listens")
        yield
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


def _listening(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


def wait_for(done: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def seizure_rows(folder: Path) -> list[dict[str, str]]:
    return [
        r for p in (folder / "receipts").glob("*.csv")  # the corebank profile writes GB18030
        for r in csv.DictReader(io.StringIO(p.read_text(encoding="gb18030"))) if r.get("事件") == "notice_seizure"
    ]  # fmt: skip


def audited(branch: Branch, action: str) -> int:
    log = branch.root / "var" / "audit.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return sum(1 for line in lines if json.loads(line).get("action") == action)


def test_a_seizure_pushed_by_the_platform_reaches_the_loan_system_and_forgeries_do_not(
    branch: Branch, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = branch.agent()
    inbox = branch.inbox()
    drop(inbox, "loans.csv", mortgage_export(inbox, {"LN-SEIZE-1": 41}))
    run_until(agent, lambda: [a.stage for a in agent.store.applications()] == ["done"])
    agent.close()
    folder = branch.root / "inbox" / "corebank"
    with ProvincePlatform(counties=(CHANGFENG, FEIXI)) as platform:
        port = free_port()
        url = f"http://127.0.0.1:{port}/notify"
        # `regbridge platform enroll --desk`: the bank's SM2 keys made in its key store, registered at the desk
        enrol_at_desk(branch.config, APP_ID, desk_url=platform.url, desk_token=platform.admin_token,
                      notify={"listen": "127.0.0.1", "port": port, "public_url": url}, secret=SECRET)  # fmt: skip
        bank_key = load_pem_public_key(platform.banks[APP_ID].encryption_key.to_pem())  # what the desk was given

        def sealed(**kw: object) -> Sealed:
            data = {"TZBH": "TZ-FORGED", "TZLX": "01", "BDCDYH": unit_id(41)}
            signer = kw.pop("signer", platform.signing_key)
            return seal(data, app_id=platform.app_id, signer=signer, recipient=bank_key, **kw)  # type: ignore[arg-type]

        def b64(data: bytes | bytearray) -> str:
            return base64.b64encode(bytes(data)).decode()

        genuine = sealed()
        agent = branch.agent()
        with daemon(agent, url):
            pushed = platform.push_notice(APP_ID, kind="seizure", unit_id=unit_id(41))
            assert pushed.status_code == 200 and pushed.json()["head"]["code"] == "0000"
            platform.push_notice(APP_ID, kind="seizure", unit_id=unit_id(99))  # a unit of no loan here
            flipped = bytearray(base64.b64decode(genuine.body["encData"]))
            flipped[3] ^= 1
            iv = bytearray(base64.b64decode(genuine.body["iv"]))
            iv[12] ^= 1  # CBC: rewrites a character of the nonce in the first plaintext block; unsigned
            impostor = Sm2PrivateKey.generate()
            with_key = sealed(signer=impostor)
            refusals = {
                "stale": post_to(url, sealed(now=time.time() - 900)),
                "future": post_to(url, sealed(now=time.time() + 900)),
                "other key": post_to(url, sealed(signer=Sm2PrivateKey.generate())),
                "its own key inside": post_to(
                    url, Sealed(with_key.headers, {**with_key.body, "publicKey": impostor.public.to_pem().decode()})
                ),  # never trusted
                "altered iv": post_to(url, Sealed(genuine.headers, {**genuine.body, "iv": b64(iv)})),
                "tampered encData": post_to(url, Sealed(genuine.headers, {**genuine.body, "encData": b64(flipped)})),
                "swapped encKey": post_to(
                    url, Sealed(genuine.headers, {**genuine.body, "encKey": sealed().body["encKey"]})
                ),
            }
            expected = {"stale": "4012", "future": "4012", "other key": "4011", "its own key inside": "4011",
                        "altered iv": "4015", "tampered encData": "4011", "swapped encKey": "4014"}  # fmt: skip
            assert refusals == expected
            # the genuine push, first after its altered-iv and swapped-encKey copies were refused: applied (its
            # nonce not burnt)
            replayed = platform._http.post(url, headers=genuine.headers, json=genuine.body)
            assert replayed.json()["head"]["code"] == "0000"
            assert post_to(url, genuine) == "4013"  # the same push again: a replayed nonce
            # the daemon's jobs write the receipt lines to the loan system's folder
            wait_for(lambda: len(seizure_rows(folder)) == 2, "the 查封 lines reach the loan system's receipts")
        assert audited(branch, "platform.notice.refused") == 8 and audited(branch, "platform.notice") == 3
        # the agent restarts (a new process's agent on the same state): the replay window was kept in the state,
        # so the same push is still refused
        agent = branch.agent()
        receiver = agent.notice_receiver()
        assert receiver is not None and receiver.url == url
        receiver.start()
        try:
            assert post_to(url, genuine) == "4013"
            assert post_to(url, sealed()) == "0000"  # a fresh push is taken (the same 查封: no new line)
        finally:
            receiver.stop()
        assert audited(branch, "platform.notice.refused") == 9 and audited(branch, "platform.notice") == 4
        agent.close()
        monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
        moves_its_notify_url(branch, platform, port)  # afterwards the bank moves its notify URL
        agent = branch.agent()
    # the notice event of docs/api.md §9a, as a sealed 查封登记通知书 writes it (事件 notice_seizure)
    lines = [r for r in agent.store.receipts() if r["payload"]["event"] == "notice_seizure"]
    assert {line["payload"]["loan_no"] for line in lines} == {"LN-SEIZE-1"}
    # the platform's push, and the genuine (platform-signed) TZ-FORGED one; nothing of the refused ones
    numbers = {line["payload"]["notice_number"] for line in lines}
    assert len(lines) == 2 and "TZ-FORGED" in numbers and any(n.startswith("TZ340121") for n in numbers)
    assert {line["payload"]["status"] for line in lines} == {"查封通知"}
    assert any(unit_id(41) in line["payload"]["reason"] for line in lines)
    assert all(line["kind"].startswith(f"collateral:{unit_id(41)}:") for line in lines)  # one event, one line
    certificate = agent.store.certificates(reference=lines[0]["reference"])[0]["certificate_number"]
    assert any(a["kind"] == f"collateral:{certificate}:seized" for a in agent.store.alerts())
    shown = [a for a in snapshot(agent.store)["alerts"] if a["kind"] == f"collateral:{certificate}:seized"]
    assert shown and "receipt line" in shown[0]["fix"]  # `regbridge status` shows it, with what to do
    # naming whose loan it is (no [branches] here: the enrolled institution; per branch: the province demo)
    assert shown[0]["branch"] == agent.config.centre.institution_name and "LN-SEIZE-1" in shown[0]["message"]
    rows = seizure_rows(folder)
    assert len(rows) == 2 and {r["贷款编号"] for r in rows} == {"LN-SEIZE-1"} and rows[0]["状态"] == "查封通知"
    assert unit_id(41) in rows[0]["原因"] and certificate in rows[0]["原因"]
    agent.close()


def test_a_flood_of_refused_pushes_is_audited_at_a_bounded_rate(branch: Branch) -> None:
    """A stranger's burst at the notify receiver: every push is answered with its code, but per remote address only
    the first ``limit`` refusals of a window get an audit record each; the rest are counted into one summary
    record when the window ends, so the audit log (and the disk) does not grow with the flood."""
    agent = branch.agent()
    throttle = RefusalThrottle(limit=5, seconds=30.0)
    receiver = PlatformNoticeReceiver(agent.context, load_dialect("province"), recipient=Sm2PrivateKey.generate(),
                                      peers=StaticPeers({}), throttle=throttle, idle_seconds=0.5,
                                      max_connections=4)  # fmt: skip
    before = audited(branch, "platform.notice.refused")
    receiver.start()
    try:
        # connections that send nothing: at most 4 get a thread, and each is closed once silent for 0.5 s
        idle = [socket.create_connection(("127.0.0.1", receiver.port), timeout=5) for _ in range(6)]
        started = time.monotonic()
        assert all(s.recv(1) == b"" for s in idle) and time.monotonic() - started < 4
        for s in idle:
            s.close()
        with httpx.Client() as http:
            codes = [http.post(receiver.url, content=b"not json").json()["head"]["code"] for _ in range(200)]
            assert codes == ["4001"] * 200 and receiver.refused == 200
            assert audited(branch, "platform.notice.refused") == before + 5  # the rest only counted, so far
            receiver.summarise(now=time.time() + 31)  # the window ends (the serving loop does this every 0.5 s)
            assert audited(branch, "platform.notice.refused") == before + 6
            # a new window: its first refusals are written one by one again; a body nested too deep for the JSON
            # parser is refused as bad JSON (it was a RecursionError: no answer, a traceback on stderr per push)
            assert http.post(receiver.url, content=b"{}").json()["head"]["code"] == "4001"
            assert http.post(receiver.url, content=b"[" * 200_000).json()["head"]["code"] == "4001"
    finally:
        receiver.stop()
    records = [json.loads(line) for line in (branch.root / "var" / "audit.log").read_text("utf-8").splitlines()]
    refused = [r for r in records if r["action"] == "platform.notice.refused"][before:]
    assert [r["outcome"] for r in refused] == ["refused"] * 5 + ["suppressed", "refused", "refused"]
    summary = refused[5]["detail"]
    assert summary["source"] == "127.0.0.1" and summary["count"] == "195" and summary["codes"] == "4001×195"
    agent.close()


def moves_its_notify_url(branch: Branch, platform: ProvincePlatform, first: int) -> None:
    """`regbridge platform notify-url` (the bank registered with notify port ``first``): the platform records the
    new URL (a request signed by the key registered at its desk; one signed by another key is refused and changes
    nothing), logs it at its desk, [platform.notify] is rewritten and audited — and the platform's next push
    reaches the receiver at the new URL."""
    from typer.testing import CliRunner

    from agent.cli import app
    from agent.config import load_config

    second = free_port()
    # a stranger's change (its own key): refused by its signature, the URL stays
    forged = seal({"notifyUrl": "http://203.0.113.9/steal"}, app_id=APP_ID, signer=Sm2PrivateKey.generate(),
                  recipient=platform.encryption_key.public)  # fmt: skip
    assert post_to(f"{platform.url}/api/notify_url", forged) == "4011"
    bad = CliRunner().invoke(app, ["platform", "notify-url", "ftp://nowhere", "-c", str(branch.config)])
    assert bad.exit_code == 1 and "http(s)" in bad.output
    new = f"http://127.0.0.1:{second}/notify"
    # a port the config refuses: nothing changes at the platform either (it would post where nobody listens)
    wrong = CliRunner().invoke(app, ["platform", "notify-url", new, "--notify-port", "70000", "-c", str(branch.config)])
    assert wrong.exit_code == 1 and "通知地址未变更" in wrong.output
    assert platform.banks[APP_ID].notify_url == f"http://127.0.0.1:{first}/notify" and platform.desk_log == []
    done = CliRunner().invoke(
        app, ["platform", "notify-url", new, "--notify-port", str(second), "-c", str(branch.config)]
    )
    assert done.exit_code == 0, done.output
    assert f"http://127.0.0.1:{first}/notify → {new}" in done.output
    assert platform.banks[APP_ID].notify_url == new
    assert [(r["appId"], r["action"], r["previous"], r["url"]) for r in platform.desk_log] == [
        (APP_ID, "notify_url", f"http://127.0.0.1:{first}/notify", new)
    ]
    notify = load_config(branch.config).platform.notify  # type: ignore[union-attr]
    assert (notify.public_url, notify.port) == (new, second)
    assert audited(branch, "platform.notify_url") == 1
    agent = branch.agent()
    receiver = agent.notice_receiver()
    assert receiver is not None and receiver.url == new
    receiver.start()
    try:
        pushed = platform.push_notice(APP_ID, kind="objection", unit_id=unit_id(41))
        assert pushed.json()["head"]["code"] == "0000" and receiver.received == 1
    finally:
        receiver.stop()
        agent.close()
