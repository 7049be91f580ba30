"""The centre's smaller holes (issue 17 item 9, centre side): admin tokens expire and rotate; a real
centre refuses webhook URLs that point into its own network.

Before the fix an admin token never expired and could not be rotated, and any webhook URL —
``http://127.0.0.1:…``, ``http://169.254.169.254/`` (cloud metadata), ``http://10.…`` — was
accepted by a centre serving the outside world, which would then POST into its own network.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from sandbox.centre import Centre
from sandbox.errors import CentreError
from sandbox.store import Store
from tests import proof
from tests.sandbox.conftest import Bank, Running

INTERNAL = [
    "http://127.0.0.1:8080/hooks",
    "http://localhost/hooks",
    "http://10.0.0.7/hooks",
    "http://192.168.1.20/hooks",
    "http://172.16.5.5/hooks",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hooks",
    "http://[::1]/hooks",
    "http://[fd00::1]/hooks",
    "http://[::ffff:127.0.0.1]/hooks",
    "http://0.0.0.0/hooks",
    "https://user:secret@203.0.113.9/hooks",
]


def test_a_real_centre_refuses_webhook_urls_into_its_own_network(tmp_path: object) -> None:
    centre = Centre(Store(), development=False)
    iid = centre.create_institution(name="示例银行", uscc="91340100781081199K", licence_no="B1", district="340121")
    refused = []
    for url in INTERNAL:
        with pytest.raises(CentreError) as exc:
            centre.accounts.set_webhook(iid, url)
        assert exc.value.code == "webhook_url_refused", url
        refused.append(url)
    assert centre.accounts.profile(iid).webhook_url is None
    proof.record(proof.Result("webhook URLs into the centre's own network (real centre)", runs=1, applications=0,
                              lost=0, duplicated=0, refused=len(refused), expected_refusals=len(INTERNAL)))  # fmt: skip
    assert centre.accounts.set_webhook(iid, "https://93.184.215.14/hooks").webhook_url == "https://93.184.215.14/hooks"


def test_a_development_centre_accepts_a_receiver_on_this_machine(sandbox: Running, bank: Bank) -> None:
    assert bank.client.institution.set_webhook("http://127.0.0.1:9/hooks").webhook_url == "http://127.0.0.1:9/hooks"


def test_admin_tokens_expire_and_rotate(sandbox: Running) -> None:
    accounts = sandbox.centre.accounts
    expired = accounts.create_admin_token("old", valid_for=timedelta(seconds=-1))
    current = accounts.create_admin_token("ops", valid_for=timedelta(hours=1))
    with httpx.Client(base_url=sandbox.url) as http:
        def status(token: str) -> int:
            return http.get("/admin/v1/institutions", headers={"Authorization": f"Bearer {token}"}).status_code

        assert status(expired) == 401
        assert status(current) == 200
        rotated = http.post("/admin/v1/tokens/rotate", json={"grace_seconds": 0, "valid_hours": 2},
                            headers={"Authorization": f"Bearer {current}"})  # fmt: skip
        assert rotated.status_code == 201
        new = rotated.json()["token"]
        assert status(new) == 200 and status(current) == 401
        rows = sandbox.store.all("SELECT expires_at FROM admin_tokens")
        assert all(r["expires_at"] for r in rows), "every admin token has an expiry"
