"""Every character the reference pattern allows reaches the centre and back (issue 17 item 4).

The agent's create path: ``create`` → 409 (the centre knows the reference under another
idempotency key, e.g. state restored from a backup) → ``find`` by reference → adopt. Before the
fix the SDK percent-encoded ':' in the find URL and the centre verified the signature against the
decoded path: 401, which the agent reads as a refused credential, pausing the whole branch. Each
reference here holds one kind of character the pattern ``^[A-Za-z0-9_.:-]{1,64}$`` allows — and
the references made only of dots (``.``, ``..``), which a URL would otherwise resolve away.
"""

from __future__ import annotations

import string

import pytest
from pydantic import TypeAdapter

import sdk
from sdk.models import Application
from tests import factories as f
from tests.sandbox.conftest import Bank, Running

REFERENCES = [
    "LN:2026:0001", "LN.2026.0002", "LN_2026-0003", "a", "Z" * 64, ".", "..", "...", ":", "-", "_",
    ".:", "..:..", "LN..0005", string.ascii_letters[:30] + string.digits + "_.:-",
]  # fmt: skip


@pytest.mark.parametrize("reference", REFERENCES)
def test_create_conflict_find_for_every_allowed_character(sandbox: Running, bank: Bank, reference: str) -> None:
    doc = f.application_dict("mortgage_first", "X", n=3, complete=True)
    doc["client_reference"] = reference
    application = TypeAdapter(Application).validate_python(doc)
    created = bank.client.applications.create(application, idempotency_key=f"first-{reference}")
    with pytest.raises(sdk.Conflict):
        bank.client.applications.create(application, idempotency_key=f"second-{reference}")
    found = bank.client.applications.find(reference)
    assert found is not None and found.application_id == created.application_id, reference
    assert found.client_reference == reference
    assert bank.client.applications.get(created.application_id).client_reference == reference
