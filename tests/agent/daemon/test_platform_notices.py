"""Notices a provincial platform pushes to the mortgagee (issue 21 item 4 and "Must show").

A 查封 the platform pushes on a unit the branch holds a registered mortgage on reaches the loan
system as a receipt line (and an alert, and an audit record); at the agent's notify receiver a
replayed nonce, a stale timestamp, a push signed by another key, tampered encData and a swapped
encKey are each refused with their code and change nothing.
"""

from __future__ import annotations

import base64
import csv
import io
import time

import httpx

from agent.daemon.notify import PlatformNoticeReceiver
from config import load_dialect
from sandbox.platform import ProvincePlatform
from sandbox.register import CHANGFENG, FEIXI, unit_id
from sdk.dialects.province import Sealed, StaticPeers, seal
from sdk.gm.sm2 import Sm2PrivateKey
from tests.agent.conftest import Branch, drop, mortgage_export, run_until


def post_to(url: str, s: Sealed) -> str:
    code: str = httpx.post(url, headers=s.headers, json=s.body).json()["head"]["code"]
    return code


def test_a_seizure_pushed_by_the_platform_reaches_the_loan_system_and_forgeries_do_not(branch: Branch) -> None:
    agent = branch.agent()
    inbox = branch.inbox()
    drop(inbox, "loans.csv", mortgage_export(inbox, {"LN-SEIZE-1": 41}))
    run_until(agent, lambda: [a.stage for a in agent.store.applications()] == ["done"])
    bank_key = Sm2PrivateKey.generate()  # the bank's SM2 encryption key, registered at the platform
    with ProvincePlatform(counties=(CHANGFENG, FEIXI)) as platform:
        receiver = PlatformNoticeReceiver(
            agent.context, load_dialect("province"), recipient=bank_key,
            peers=StaticPeers({platform.app_id: platform.signing_key.public}),  # from enrolment, not a message
        ).start()  # fmt: skip
        try:
            platform.enrol("BANK-AH-NOTIFY", signing_key=Sm2PrivateKey.generate().public,
                           encryption_key=bank_key.public, notify_url=receiver.url)  # fmt: skip
            pushed = platform.push_notice("BANK-AH-NOTIFY", kind="seizure", unit_id=unit_id(41))
            assert pushed.status_code == 200 and pushed.json()["head"]["code"] == "0000"
            platform.push_notice("BANK-AH-NOTIFY", kind="seizure", unit_id=unit_id(99))  # a unit of no loan here

            def sealed(**kw: object) -> Sealed:
                data = {"TZBH": "TZ-FORGED", "TZLX": "01", "BDCDYH": unit_id(41)}
                signer = kw.pop("signer", platform.signing_key)
                return seal(data, app_id=platform.app_id, signer=signer, recipient=bank_key.public, **kw)  # type: ignore[arg-type]

            def post(s: Sealed) -> str:
                return post_to(receiver.url, s)

            def b64(data: bytes | bytearray) -> str:
                return base64.b64encode(bytes(data)).decode()

            genuine = sealed()
            flipped = bytearray(base64.b64decode(genuine.body["encData"]))
            flipped[3] ^= 1
            refusals = {
                "stale": post(sealed(now=time.time() - 900)),
                "other key": post(sealed(signer=Sm2PrivateKey.generate())),
                "tampered encData": post(Sealed(genuine.headers, {**genuine.body, "encData": b64(flipped)})),
                "swapped encKey": post(Sealed(genuine.headers, {**genuine.body, "encKey": sealed().body["encKey"]})),
            }
            expected = {"stale": "4012", "other key": "4011", "tampered encData": "4011", "swapped encKey": "4014"}
            assert refusals == expected
            # the genuine push, first after its swapped-encKey copy was refused: applied (its nonce not burnt)
            replayed = platform._http.post(receiver.url, headers=genuine.headers, json=genuine.body)
            assert replayed.json()["head"]["code"] == "0000"
            assert post(genuine) == "4013"  # the same push again: a replayed nonce
            assert receiver.refused == 5 and receiver.received == 3
        finally:
            receiver.stop()
        # the agent restarts: the replay window was kept in its state, so the same push is still refused
        agent.close()
        agent = branch.agent()
        again = PlatformNoticeReceiver(
            agent.context, load_dialect("province"), recipient=bank_key,
            peers=StaticPeers({platform.app_id: platform.signing_key.public}),
        ).start()  # fmt: skip
        try:
            assert post_to(again.url, genuine) == "4013" and again.refused == 1 and again.received == 0
            assert post_to(again.url, sealed()) == "0000"  # a fresh push is taken
        finally:
            again.stop()
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
    agent.run_until_idle(timeout=5)  # the receipts go to the loan system's folder
    folder = branch.root / "inbox" / "corebank"
    rows = [
        r for p in (folder / "receipts").glob("*.csv")  # the corebank profile writes GB18030
        for r in csv.DictReader(io.StringIO(p.read_text(encoding="gb18030"))) if r.get("事件") == "notice_seizure"
    ]  # fmt: skip
    assert len(rows) == 2 and {r["贷款编号"] for r in rows} == {"LN-SEIZE-1"} and rows[0]["状态"] == "查封通知"
    assert unit_id(41) in rows[0]["原因"] and certificate in rows[0]["原因"]
    agent.close()
