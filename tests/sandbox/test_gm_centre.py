"""A centre in the 国密 suite (issue 19): SM2 keys only, sm3 digests required, its own key SM2.

The lifecycle of every business type runs against a ``gm`` centre in tests/agent/centre/test_port.py; this
module covers what differs: which keys each suite accepts, the bundle naming its suite and
signed with SM2, webhooks signed with SM2 and carrying sm3, a stored centre keeping its suite,
and ``regbridge sandbox serve --suite gm``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import sdk
from sandbox.centre import Centre
from sandbox.store import Store
from sandbox.webhooks import Webhooks
from sdk.certificates import verify_detached
from sdk.signing import KeySigner, generate_private_key, jwk_from_public_key, sign_request
from sdk.suites import GM, INTL, Suite, suite_named
from sdk.webhooks import verify_webhook
from tests import factories as f

from .conftest import Running, both_suites

suite = pytest.fixture(params=["intl", "gm"])(both_suites)


def _institution(centre: Centre) -> str:
    return centre.create_institution(
        name="中国示例银行股份有限公司合肥分行", uscc=f.BANK_USCC, licence_no="B0001H234010001", district="340121"
    )


def test_a_centre_accepts_only_its_suites_keys(sandbox: Running, suite: Suite) -> None:
    iid = _institution(sandbox.centre)
    other: sdk.signing.Algorithm = "ed25519" if suite.name == "gm" else "sm2-sm3"
    with sdk.Client(sandbox.url) as anon:
        with pytest.raises(sdk.ValidationFailed) as refused:
            anon.credentials.enroll(
                sandbox.centre.issue_enrolment_token(iid), jwk_from_public_key(generate_private_key(other).public_key())
            )
        assert suite.name in str(refused.value)
        key = generate_private_key(suite.default_algorithm)  # type: ignore[arg-type]
        enrolled = anon.credentials.enroll(
            sandbox.centre.issue_enrolment_token(iid), jwk_from_public_key(key.public_key())
        )
    assert enrolled.algorithm == suite.default_algorithm
    with sdk.Client(sandbox.url, sdk.Credential(enrolled.key_id, key)) as client:
        assert client.institution.get().institution_id == iid
    # a request with the right key but without the suite's digest is refused
    request = httpx.Request("GET", f"{sandbox.url}/v1/institution")
    sign_request(request, KeySigner(enrolled.key_id, key))
    wrong = "sha-256=:" if suite.name == "gm" else "sm3=:"
    digest_line = request.headers["Content-Digest"]
    assert not digest_line.startswith(wrong)
    if suite.name == "gm":  # a gm request answered by an intl centre fails its digest; a gm centre wants sm3
        replaced = httpx.Request("GET", f"{sandbox.url}/v1/institution")
        sign_request(replaced, KeySigner(enrolled.key_id, key))
        headers = dict(replaced.headers)
        headers["content-digest"] = sdk.signing.content_digest(b"")  # sha-256 only: the signature fails too
        answer = httpx.get(f"{sandbox.url}/v1/institution", headers=headers)
        assert answer.status_code == 401 and answer.json()["code"] == "digest_mismatch"


def test_the_bundle_names_the_suite_and_is_signed_by_the_centres_sm2_key() -> None:
    centre = Centre(Store(), suite=suite_named("gm", sm2_user_id="centre@hefei"))
    doc = centre.enrolment_bundle(_institution(centre), "http://127.0.0.1:1", valid_for=timedelta(hours=1))
    bundle = doc["bundle"]
    assert bundle["suite"] == {"name": "gm", "sm2_user_id": "centre@hefei"}
    assert bundle["trust"]["centre_key"]["crv"] == "SM2" and doc["signature"]["alg"] == "sm2-sm3"
    key = bundle["trust"]["centre_key"]
    assert verify_detached(bundle, doc["signature"], key, sm2_user_id=b"centre@hefei")
    assert not verify_detached(bundle, doc["signature"], key)  # the default user id makes another Z_A
    assert not verify_detached({**bundle, "token": "x" * 32}, doc["signature"], key, sm2_user_id=b"centre@hefei")
    intl = Centre(Store())
    assert intl.enrolment_bundle(_institution(intl), "http://x", valid_for=timedelta(hours=1))["bundle"]["suite"] == {
        "name": "intl"
    }


def test_webhooks_of_a_gm_centre_are_sm2_signed_with_sm3() -> None:
    centre = Centre(Store(), suite=GM)
    iid = _institution(centre)
    received: list[httpx.Request] = []

    def hook(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    centre.set_webhook(iid, "http://127.0.0.1:9/hook")
    centre.set_channel(iid, "suspended", "test")  # emits an event, queued for the webhook
    with httpx.Client(transport=httpx.MockTransport(hook)) as client:
        assert Webhooks(centre.store, centre.keys).deliver_due(client) >= 1
    delivery = received[0]
    assert delivery.headers["Content-Digest"].startswith("sm3=:")
    assert 'alg="sm2-sm3"' in delivery.headers["Signature-Input"]
    event = verify_webhook(
        method="POST", url="http://127.0.0.1:9/hook", headers=list(delivery.headers.items()), body=delivery.content,
        centre_keys={centre.keys.centre_key_id: centre.keys.centre_key.public_key()},
    )  # fmt: skip
    assert event.type == "channel.suspended"


def test_a_stored_centre_keeps_its_suite(tmp_path: Path) -> None:
    custom = suite_named("gm", sm2_user_id="ALICE123@YAHOO.COM")
    first = Centre(Store(tmp_path / "centre.sqlite3"), passphrase=b"sandbox secret", suite=custom)
    again = Centre(Store(tmp_path / "centre.sqlite3"), passphrase=b"sandbox secret")
    assert again.suite == custom and again.keys.centre_jwk == first.keys.centre_jwk
    row = again.store.one("SELECT pem FROM secrets WHERE name = 'centre_key'")
    assert row is not None and b"ENCRYPTED PRIVATE KEY" in bytes(row["pem"])
    with pytest.raises(ValueError, match="gm suite, not intl"):
        Centre(Store(tmp_path / "centre.sqlite3"), passphrase=b"sandbox secret", suite=INTL)
    with pytest.raises(Exception, match="cannot open"):
        Centre(Store(tmp_path / "centre.sqlite3"), passphrase=b"another secret")


def test_serve_suite_gm(tmp_path: Path) -> None:
    """``regbridge sandbox serve --suite gm``: the bundle names gm; a restart without --suite stays gm."""
    secret = tmp_path / "secret"
    secret.write_text("a long sandbox passphrase\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    base = [sys.executable, "-m", "agent.cli", "sandbox", "serve", "--port", str(port), "--data", str(tmp_path / "c"),
            "--secret-file", str(secret)]  # fmt: skip
    for extra in (["--suite", "gm"], []):
        proc = subprocess.Popen(
            base + extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline() + proc.stdout.readline()
            assert "suite gm" in banner, banner
            token = banner.split("shown once): ")[1].strip()
            admin = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 20
            while True:
                try:
                    account = {"name": "示例银行", "uscc": "91340100781081199K", "licence_no": "B1"}
                    made = httpx.post(f"http://127.0.0.1:{port}/admin/v1/institutions", headers=admin, json=account)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "serve did not come up"
                    time.sleep(0.1)
            if made.status_code == 201:
                iid = made.json()["institution_id"]
            else:
                iid = httpx.get(f"http://127.0.0.1:{port}/admin/v1/institutions", headers=admin).json()[0][
                    "institution_id"
                ]
            bundle = httpx.post(f"http://127.0.0.1:{port}/admin/v1/institutions/{iid}/enrolment-bundle", headers=admin,
                                json={}).json()  # fmt: skip
            assert bundle["bundle"]["suite"]["name"] == "gm", json.dumps(bundle)[:300]
            assert bundle["signature"]["alg"] == "sm2-sm3"
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            if proc.stdout is not None:
                proc.stdout.close()
