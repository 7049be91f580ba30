"""The provincial 总对总 platform facade (issue 21 item 2): one platform, two county centres behind it.

A bank registers once (its appId and keys exchanged out of band), then each application goes in the
platform's envelope, in TD/T 1066 names, to the county centre of its unit's 行政区划代码 — 长丰县 340121
or 肥西县 340123 — and through the same rules as the sandbox's own API to a certificate. At the
platform a replayed nonce, a stale timestamp, another key's signature, tampered encData and a swapped
encKey are refused; notices it pushes are sealed and signed the same way.
"""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from sandbox import register, samples
from sandbox.pki import KeysLocked
from sandbox.platform import ProvincePlatform
from sandbox.register import CHANGFENG, FEIXI, County, location, title_certificate, unit_id
from sdk.dialects.province import (
    EnvelopeRefused,
    NonceWindow,
    PlatformAnswerError,
    PlatformClient,
    Sealed,
    StaticPeers,
    open_answer,
    open_envelope,
    seal,
)
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.models import Application, Payment, PropertyQuery
from tests import factories as f

APP_ID = "BANK-AH-0001"
_APP: TypeAdapter[Application] = TypeAdapter(Application)


@dataclass
class Setup:
    platform: ProvincePlatform
    signer: Sm2PrivateKey
    decryption: Sm2PrivateKey
    client: PlatformClient


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    signer, decryption = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    with ProvincePlatform() as platform:
        enrolment = platform.enrol(APP_ID, signing_key=signer.public, encryption_key=decryption.public)
        client = PlatformClient(
            enrolment.url, app_id=APP_ID, signer=signer, decryption_key=decryption,
            platform_app_id=enrolment.platform_app_id, platform_key=enrolment.platform_signing_key,
            platform_encryption_key=enrolment.platform_encryption_key,
        )  # fmt: skip
        with client:
            yield Setup(platform, signer, decryption, client)


def _application(kind: str, ref: str, county: County, n: int) -> dict[str, Any]:
    data = f.application_dict(kind, ref, n, complete=True)
    data["properties"][0].update(
        unit_id=unit_id(n, county), location=location(n, county), title_certificate=title_certificate(n, county)
    )
    return data


def _lodge(s: Setup, data: dict[str, Any], branch: str | None = None) -> str:
    """Create, upload and submit ``data`` (as ``branch``: the 统一社会信用代码 every call after create carries)."""
    app = _APP.validate_python(data)
    fields = s.platform.fields
    ref = app.client_reference
    carried = {"TYSHXYDM": branch} if branch else {}
    created = s.client.call("create", {"application": fields.application_to_dialect(app), "idempotencyKey": f"{ref}:c"})
    ywh = created["YWH"]
    for m in app.materials:
        content = base64.b64encode(f.sample_content(m, ref)).decode()
        s.client.call(
            "upload",
            {**carried, "YWH": ywh, "material": fields.to_dialect(m.model_dump(mode="json")), "content": content},
        )
    submitted = s.client.call("submit", {**carried, "YWH": ywh, "idempotencyKey": f"{ref}:s"})
    assert submitted["record"]["YWZT"] in ("01", "02")
    return str(ywh)


def _finish(s: Setup, ywh: str, branch: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    paid = False
    carried = {"TYSHXYDM": branch} if branch else {}
    while True:
        record: dict[str, Any] = s.client.call("query", {**carried, "YWH": ywh})["record"]
        if record["YWZT"] == "06" and record.get("fee_status") == "unpaid" and not paid:
            notice = s.client.call("fee", {**carried, "YWH": ywh})
            payment = Payment(amount=notice["total"]).model_dump(mode="json")
            s.client.call("pay", {**carried, "YWH": ywh, "payment": payment, "idempotencyKey": f"{ywh}:pay"})
            paid = True
        if record["YWZT"] in ("04", "08", "09", "10", "11", "12"):
            return record
        assert time.monotonic() < deadline, f"{ywh} stuck in {record['YWZT']}"
        time.sleep(0.05)


@pytest.mark.parametrize(("county", "n"), [(CHANGFENG, 21), (FEIXI, 22)])
def test_an_application_goes_to_the_county_of_its_unit_and_comes_back_certified(
    setup: Setup, county: County, n: int
) -> None:
    data = _application("mortgage_first", f"LN-PF-{county.district}", county, n)
    ywh = _lodge(setup, data)
    # it is at its own county's centre, and not at the other
    here = setup.platform.centres[county.district].store.one("SELECT 1 FROM applications WHERE id = ?", ywh)
    other = next(d for d in setup.platform.centres if d != county.district)
    assert here is not None
    assert setup.platform.centres[other].store.one("SELECT 1 FROM applications WHERE id = ?", ywh) is None
    record = _finish(setup, ywh)
    assert record["YWZT"] == "08", record  # 办结
    assert record["application"]["BDCDY"][0]["BDCDYH"].startswith(county.district)
    assert record["application"]["DYQ"]["BDBZZQSE"] == "150"  # 万元
    (cid,) = record["certificate_ids"]
    signed = setup.client.call("certificate", {"ZSID": cid})
    assert signed["metadata"]["issuing_authority"] == f"{county.name}不动产登记中心"
    assert f"{county.name}不动产证明第" in signed["metadata"]["certificate_number"]
    download = setup.client.call("download", {"ZSID": cid, "sha256": signed["metadata"]["sha256"]})
    content = base64.b64decode(download["content"])
    assert content.startswith(b"%PDF")


def test_a_unit_of_no_county_behind_the_platform_is_refused(setup: Setup) -> None:
    data = _application("mortgage_first", "LN-PF-NOWHERE", County("340104", "蜀山区"), 23)
    with pytest.raises(PlatformAnswerError) as caught:
        _lodge(setup, data)
    assert caught.value.code == "4220" and "340104" in caught.value.msg


def test_the_county_centres_rules_decide_and_bad_data_is_refused_with_its_code(setup: Setup) -> None:
    data = _application("mortgage_first", "LN-PF-BAD", CHANGFENG, 24)
    data["properties"][0]["unit_id"] = "340121261006GB00014F99999999"  # no such unit in 长丰县's register
    record = _finish(setup, _lodge(setup, data))
    assert record["YWZT"] == "04" and record["decision"]  # 不予受理, by the county centre's own review
    app = _APP.validate_python(_application("mortgage_first", "LN-PF-BAD2", FEIXI, 25))
    message = setup.platform.fields.application_to_dialect(app)
    message["DYQ"]["BDBZZQSE"] = "150.0000001"  # below the fen
    with pytest.raises(PlatformAnswerError) as caught:
        setup.client.call("create", {"application": message, "idempotencyKey": "LN-PF-BAD2:c"})
    assert caught.value.code == "4220" and "BDBZZQSE" in caught.value.msg


def _post(s: Setup, sealed: Sealed) -> dict[str, Any]:
    response = httpx.post(f"{s.platform.url}/api/channel", headers=sealed.headers, json=sealed.body)
    document: dict[str, Any] = response.json()
    return document


def _sealed(s: Setup, **kw: Any) -> Sealed:
    return seal({}, app_id=APP_ID, signer=kw.pop("signer", s.signer), recipient=s.platform.encryption_key.public, **kw)


def test_the_platform_refuses_replays_stale_messages_other_keys_and_tampering(setup: Setup) -> None:
    sealed = _sealed(setup)
    ok = _post(setup, sealed)
    assert ok["head"]["code"] == "0000"
    peers = StaticPeers({setup.platform.app_id: setup.platform.signing_key.public})
    assert open_answer(ok, recipient=setup.decryption, peers=peers, window=NonceWindow()) == {"open": True}
    assert _post(setup, sealed)["head"]["code"] == "4013"  # replayed nonce
    assert _post(setup, _sealed(setup, now=time.time() - 600))["head"]["code"] == "4012"  # stale
    assert _post(setup, _sealed(setup, signer=Sm2PrivateKey.generate()))["head"]["code"] == "4011"  # another key
    fresh = _sealed(setup)
    raw = bytearray(base64.b64decode(fresh.body["encData"]))
    raw[0] ^= 1
    tampered = Sealed(fresh.headers, {**fresh.body, "encData": base64.b64encode(bytes(raw)).decode()})
    assert _post(setup, tampered)["head"]["code"] == "4011"  # tampered encData
    other = _sealed(setup)
    swapped = Sealed(fresh.headers, {**fresh.body, "encKey": other.body["encKey"]})
    assert _post(setup, swapped)["head"]["code"] == "4014"  # swapped encKey
    stranger = seal({}, app_id="BANK-NOT-ENROLLED", signer=setup.signer, recipient=setup.platform.encryption_key.public)
    assert _post(setup, stranger)["head"]["code"] == "4010"
    assert _post(setup, _sealed(setup, now=time.time() + 600))["head"]["code"] == "4012"  # from the future
    # the iv is not signed: one flipped bit rewrites the nonce in the first plaintext block, which no longer
    # matches its header (the binding of RegBridge's plaintext)
    iv = bytearray(base64.b64decode(fresh.body["iv"]))
    iv[10] ^= 1
    altered = Sealed(fresh.headers, {**fresh.body, "iv": base64.b64encode(bytes(iv)).decode()})
    assert _post(setup, altered)["head"]["code"] == "4015"
    # a key sent inside the message is never trusted: signed by an impostor who adds its own public key
    impostor = Sm2PrivateKey.generate()
    forged = _sealed(setup, signer=impostor)
    with_key = Sealed(forged.headers, {**forged.body, "publicKey": impostor.public.to_pem().decode()})
    assert _post(setup, with_key)["head"]["code"] == "4011"
    # none of the refused copies burnt the genuine message's nonce: it passes once, then is a replay
    assert _post(setup, fresh)["head"]["code"] == "0000"
    assert _post(setup, fresh)["head"]["code"] == "4013"
    # a body nested too deep for the JSON parser is bad JSON, at the service and at the desk (was HTTP 500)
    deep = httpx.post(f"{setup.platform.url}/api/channel", content=b"[" * 200_000, headers=fresh.headers)
    assert deep.json()["head"]["code"] == "4001"
    desk = {"Authorization": f"Bearer {setup.platform.admin_token}"}
    assert httpx.post(f"{setup.platform.url}/admin/enrol", content=b"[" * 200_000, headers=desk).status_code == 400


@contextmanager
def _notify_url() -> Iterator[tuple[str, list[tuple[dict[str, str], dict[str, Any]]]]]:
    """The bank's notify URL, on loopback: what it received (headers, body)."""
    received: list[tuple[dict[str, str], dict[str, Any]]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(({k: v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/notify", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_pushed_notice_is_sealed_to_the_bank_and_signed_by_the_platform(setup: Setup) -> None:
    unit = unit_id(15, CHANGFENG)
    proof = "皖(2024)长丰县不动产证明第0000015号"
    with _notify_url() as (url, received):
        setup.platform.banks[APP_ID].notify_url = url
        pushed = setup.platform.push_notice(APP_ID, kind="seizure", unit_id=unit, mortgage_certificate=proof)
        assert pushed.status_code == 200
    ((headers, body),) = received
    peers = StaticPeers({setup.platform.app_id: setup.platform.signing_key.public})
    window = NonceWindow()
    opened = open_envelope(headers, body, recipient=setup.decryption, peers=peers, window=window)
    assert opened.data.pop("TZBH").startswith("TZ340121")  # its notice number
    assert opened.data == {"TZLX": "01", "BDCDYH": unit, "BDCDJZMH": proof}  # 查封, TD/T 1066 names
    # the same push replayed, or signed by anyone but the platform, is refused by the bank's receiver
    with pytest.raises(EnvelopeRefused) as replay:
        open_envelope(headers, body, recipient=setup.decryption, peers=peers, window=window)
    assert replay.value.code == "4013"
    impostor = StaticPeers({setup.platform.app_id: Sm2PrivateKey.generate().public})
    with pytest.raises(EnvelopeRefused) as forged:
        open_envelope(headers, body, recipient=setup.decryption, peers=impostor, window=NonceWindow())
    assert forged.value.code == "4011"


def test_the_registration_desk_exchanges_keys_only_with_the_admin_token(setup: Setup) -> None:
    signer, decryption = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    body = {
        "appId": "BANK-AH-0002", "signingKey": signer.public.to_pem().decode(),
        "encryptionKey": decryption.public.to_pem().decode(), "uscc": f.uscc("91340100MA2N00009"), "name": "示例银行二",
        "operators": ["op-201"],
    }  # fmt: skip
    assert httpx.post(f"{setup.platform.url}/admin/enrol", json=body).status_code == 401
    desk = {"Authorization": f"Bearer {setup.platform.admin_token}"}
    for taken in (setup.platform.app_id, "BANK AH 0002", "x" * 65):  # the platform's own appId, or no appId at all
        refused = httpx.post(f"{setup.platform.url}/admin/enrol", json={**body, "appId": taken}, headers=desk)
        assert refused.status_code == 400 and "platform's own" in refused.json()["error"]
    answer = httpx.post(f"{setup.platform.url}/admin/enrol", json=body, headers=desk).json()
    assert set(answer["centres"]) == {"340121", "340123"} and answer["centres"]["340123"]["ca_pem"].startswith("-----")
    from sdk.gm.sm2 import load_pem_public_key

    with PlatformClient(
        answer["url"], app_id="BANK-AH-0002", signer=signer, decryption_key=decryption,
        platform_app_id=answer["platformAppId"], platform_key=load_pem_public_key(answer["signingKey"].encode()),
        platform_encryption_key=load_pem_public_key(answer["encryptionKey"].encode()),
    ) as client:  # fmt: skip
        assert client.call("channel", {}) == {"open": True}


def test_keys_registrations_and_the_replay_window_survive_a_restart_with_a_data_dir(tmp_path: Path) -> None:
    signer, decryption = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    one = (CHANGFENG,)  # one county centre is enough here (each file-backed centre encrypts its keys: seconds)
    with ProvincePlatform(one, data=tmp_path, passphrase=b"platform-secret", max_skew=60) as first:
        first.enrol(APP_ID, signing_key=signer.public, encryption_key=decryption.public)
        platform_key, recipient = first.signing_key.public, first.encryption_key.public
        county_url = first.centres[CHANGFENG.district].url
        (county_key,) = _platform_keys_at(first, CHANGFENG.district)
        sealed = seal({}, app_id=APP_ID, signer=signer, recipient=recipient)
        assert httpx.post(f"{first.url}/api/channel", headers=sealed.headers, json=sealed.body).json()["head"] == {
            "code": "0000", "msg": "成功"
        }  # fmt: skip
    keys = (tmp_path / "platform.sqlite3").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in keys and b"BEGIN PRIVATE KEY" not in keys  # never in the clear
    assert keys.count(b"ENCRYPTED PRIVATE KEY") >= 3 * 2  # the platform's two and its key at the county centre
    with pytest.raises(KeysLocked):
        ProvincePlatform(one, data=tmp_path, passphrase=b"wrong")
    with ProvincePlatform(one, data=tmp_path, passphrase=b"platform-secret", max_skew=60) as again:
        assert again.signing_key.public.to_pem() == platform_key.to_pem()  # the key the bank enrolled
        # the county centre is where it was, and the platform signs there with the key it enrolled before
        assert again.centres[CHANGFENG.district].url == county_url and not again.notes
        assert _platform_keys_at(again, CHANGFENG.district) == [county_key]
        # the message seen before the restart is still a replay; the bank is still registered
        replayed = httpx.post(f"{again.url}/api/channel", headers=sealed.headers, json=sealed.body).json()
        assert replayed["head"]["code"] == "4013"
        fresh = seal({}, app_id=APP_ID, signer=signer, recipient=recipient)
        answer = httpx.post(f"{again.url}/api/channel", headers=fresh.headers, json=fresh.body).json()
        peers = StaticPeers({again.app_id: platform_key})
        assert open_answer(answer, recipient=decryption, peers=peers, window=NonceWindow()) == {"open": True}
        # bounded: a nonce is remembered for twice the timestamp window (no message with it can pass the
        # timestamp check after that), then forgotten on the next admission
        assert again.state is not None and again.state.nonces() == 2
        later = time.time() + 2 * 60 + 1
        assert again.window.admit(APP_ID, "f" * 32, now=later)
        assert again.state.nonces() == 1 and not again.window.admit(APP_ID, "f" * 32, now=later + 1)
        # callbacks after the restart are signed the same way, with the key the bank enrolled before it
        with _notify_url() as (url, received):
            again.banks[APP_ID].notify_url = url
            again.push_notice(APP_ID, kind="objection", unit_id=unit_id(14, CHANGFENG))
        ((headers, body),) = received
        opened = open_envelope(headers, body, recipient=decryption, peers=peers, window=NonceWindow())
        assert opened.app_id == again.app_id and opened.data["TZLX"] == "03"
    # its port taken by another process and its kept key lost: it serves on another port, says so and keeps
    # that one; the key it must enrol anew replaces the one before, which the county centre revokes
    assert again.state is not None
    taken = socket.socket()
    taken.bind(("127.0.0.1", int(county_url.rsplit(":", 1)[1])))
    taken.listen()
    try:
        with sqlite3.connect(tmp_path / "platform.sqlite3") as db:
            db.execute("DELETE FROM county_keys")
        with ProvincePlatform(one, data=tmp_path, passphrase=b"platform-secret") as moved:
            ((note,),) = [moved.notes]
            assert f"port {county_url.rsplit(':', 1)[1]}" in note and "is taken" in note
            assert moved.centres[CHANGFENG.district].url in note and moved.centres[CHANGFENG.district].url != county_url
            (new_key,) = _platform_keys_at(moved, CHANGFENG.district)
            assert new_key != county_key
            sealed = seal({}, app_id=APP_ID, signer=signer, recipient=recipient)
            answered = httpx.post(f"{moved.url}/api/channel", headers=sealed.headers, json=sealed.body).json()
            assert answered["head"]["code"] == "0000"
            moved_port = moved.centres[CHANGFENG.district].port
        with pytest.raises(ValueError, match=r"340121 .*port \d+ cannot be bound .*--county-port"):
            ProvincePlatform(one, data=tmp_path, passphrase=b"platform-secret",
                             county_ports={CHANGFENG.district: taken.getsockname()[1]})  # fmt: skip
    finally:
        taken.close()
    with sqlite3.connect(tmp_path / "platform.sqlite3") as db:
        assert db.execute("SELECT port FROM county_ports").fetchall() == [(moved_port,)]


def _platform_keys_at(platform: ProvincePlatform, district: str) -> list[str]:
    """The active keys the platform holds for APP_ID at the county centre (its institution there)."""
    centre = platform.centres[district].centre
    iid = platform.banks[APP_ID].institutions[district]
    return [c.key_id for c in centre.list_credentials(iid) if c.status == "active" and c.label == f"platform:{APP_ID}"]


def test_every_call_is_made_as_the_branch_it_carries_and_another_branchs_is_refused(setup: Setup) -> None:
    """Each call after create carries its branch (TYSHXYDM): the platform acts there as that branch's institution,
    refuses 4030 a branch the appId was not registered for and an application another branch filed, and asks a
    登记资料查询 as the branch (its own 经办人 and query trace), not as the head office."""
    first, second = samples.uscc("91340123MA2NBR001"), samples.uscc("91340123MA2NBR002")
    mine = setup.platform.add_branch(APP_ID, name="甲支行", uscc=first, operators=("bra-001",))
    setup.platform.add_branch(APP_ID, name="乙支行", uscc=second, operators=("brb-001",))
    data = _application("mortgage_first", "LN-PF-BRANCH", FEIXI, 26)
    data["mortgagee"]["id_number"] = first  # the branch it is filed as, by its own 经办人
    data["declaration"]["operator_id"] = "bra-001"
    ywh = _lodge(setup, data, branch=first)

    def code(service: str, data: dict[str, Any]) -> str:
        try:
            setup.client.call(service, data)
        except PlatformAnswerError as exc:
            return exc.code
        return "0000"

    assert code("query", {"YWH": ywh, "TYSHXYDM": first}) == "0000"
    stranger = samples.uscc("91340123MA2NBR009")
    assert {
        "another branch": code("query", {"YWH": ywh, "TYSHXYDM": second}),
        "the head office": code("query", {"YWH": ywh}),
        "another branch's fee": code("fee", {"YWH": ywh, "TYSHXYDM": second}),
        "another branch's withdrawal": code("withdraw", {"YWH": ywh, "TYSHXYDM": second, "CHYY": "x",
                                                         "idempotencyKey": "LN-PF-BRANCH:w"}),
        "a branch not registered": code("query", {"YWH": ywh, "TYSHXYDM": stranger}),
    } == dict.fromkeys(("another branch", "the head office", "another branch's fee", "another branch's withdrawal",
                        "a branch not registered"), "4030")  # fmt: skip
    assert setup.client.call("find", {"YWBH": "LN-PF-BRANCH", "TYSHXYDM": second})["record"] is None
    found = setup.client.call("find", {"YWBH": "LN-PF-BRANCH", "TYSHXYDM": first})["record"]
    assert setup.platform.fields.record_from_dialect(found).application_id == ywh
    assert _finish(setup, ywh, branch=first)["YWZT"] == "08"
    # 登记资料查询 by the branch's own 经办人: asked as the branch, it is answered and traced to its institution
    owner = register.owners_of(26)[0]
    now = datetime.now(UTC)
    query = PropertyQuery.model_validate({"unit_id": unit_id(26, FEIXI), "operator_id": "bra-001", "authorisation": {
        "reference": "SQ-BRANCH-26", "applicant": owner.model_dump(mode="json"),
        "signed_at": (now - timedelta(days=1)).isoformat(), "signature_id": "esig-branch",
        "valid_until": (now + timedelta(days=30)).date().isoformat()}})  # fmt: skip
    asked = {"query": setup.platform.fields.to_dialect(query.model_dump(mode="json", exclude_none=True))}
    assert code("property_query", {**asked, "idempotencyKey": "q-head"}) == "4031"  # not the head office's 经办人
    answered = setup.client.call("property_query", {**asked, "idempotencyKey": "q-branch", "TYSHXYDM": first})
    trace = setup.platform.centres[FEIXI.district].centre.query_trace(institution_id=mine[FEIXI.district])
    assert [t["query_id"] for t in trace if t["outcome"] == "answered"] == [answered["query_id"]]
