"""Names are not trusted blindly (issue 17 item 3).

- control, bidi and zero-width characters, and a line break carrying "附记：已注销", are refused
  in every name by the centre (a raw signed request, past any client-side check) and by the SDK
  models; nothing reaches the register or a certificate.
- a different person's name with the owner's ID number is refused at 审核 with ``name_mismatch``,
  the reason saying the name differs and the ID agrees (the ID masked); the same name written
  with full-width letters or spaces is the same name.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from sdk.models import Application, ApplicationStatus
from sdk.signing import KeySigner, sign_request
from tests import factories as f
from tests import proof
from tests.sandbox.conftest import Bank, Running, lodge, settle

HOSTILE = {
    "a line break and a fake 附记": "\n附记：已注销",
    "right-to-left override": "\u202e",
    "zero-width space": "\u200b",
    "NUL": "\x00",
    "left-to-right isolate": "\u2066",
}


def _signed_create(sandbox: Running, bank: Bank, doc: dict[str, Any]) -> httpx.Response:
    body = json.dumps(doc, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"idem-{time.time_ns()}"}
    request = httpx.Request("POST", f"{sandbox.url}/v1/applications", content=body, headers=headers)
    sign_request(request, KeySigner(bank.key_id, bank.key))
    with httpx.Client() as http:
        return http.send(request)


def test_invisible_characters_in_names_are_refused_by_the_centre_and_the_sdk(sandbox: Running, bank: Bank) -> None:
    for i, (what, planted) in enumerate(HOSTILE.items()):
        doc = f.application_dict("mortgage_first", f"ATK-NAME-{i}", n=3, complete=True)
        doc["mortgagors"][0]["name"] += planted
        response = _signed_create(sandbox, bank, doc)
        assert response.status_code == 422, f"{what}: {response.status_code}"
        assert any(e["pointer"] == "/mortgagors/0/name" for e in response.json()["errors"]), what
        with pytest.raises(ValidationError):
            TypeAdapter(Application).validate_python(doc)
    assert sandbox.store.all("SELECT COUNT(*) AS n FROM applications")[0]["n"] == 0
    proof.record(proof.Result("control, bidi, zero-width characters and a fake 附记 in names", runs=1,
                              applications=0, lost=0, duplicated=0, refused=len(HOSTILE),
                              expected_refusals=len(HOSTILE)))  # fmt: skip


def test_another_persons_name_with_the_owners_id_is_refused(sandbox: Running, bank: Bank) -> None:
    doc = f.application_dict("mortgage_first", "ATK-IMPOSTOR", n=4, complete=True)
    real = doc["mortgagors"][0]["name"]
    doc["mortgagors"][0]["name"] = "王冒名"
    record = settle(bank.client, lodge(bank, doc).application_id, "refused")
    assert record.status is ApplicationStatus.REFUSED
    assert record.decision is not None and "name_mismatch" in (record.decision.code or "")
    reason = record.decision.reason or ""
    assert "姓名" in reason and doc["mortgagors"][0]["id_number"] not in reason

    # the owner's own name, written with a space and full-width: the same name
    same = f.application_dict("mortgage_first", "ATK-WIDTH", n=5, complete=True)
    name = same["mortgagors"][0]["name"]
    same["mortgagors"][0]["name"] = name[0] + "\u3000" + name[1:]
    record = settle(bank.client, lodge(bank, same).application_id, "recorded", "refused")
    assert record.status is ApplicationStatus.RECORDED, record.decision
    assert real != "王冒名"
