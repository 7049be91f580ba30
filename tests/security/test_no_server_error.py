"""No input makes the centre answer 5xx (issue 17 item 8).

Before the fix ``/v1/events?after=<huge>`` and the admin audit endpoint answered 500 (SQLite's
INTEGER overflowed) and dropped the connection. Every cursor that is not a feed position is now
a 422; and schemathesis runs over the admin routes too (with an admin token), as it already did
over the bank's routes (tests/sandbox/test_openapi.py): bounded in ``make test``, ten times the
examples in ``make proof``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from sandbox.openapi import document
from sdk.signing import KeySigner, sign_request
from tests import proof
from tests.sandbox.conftest import Bank, Running

HUGE = [str(2**63), str(2**64), "9" * 40, "-1", "1_000", "٣", " 5", "0x10", "1e3"]


def test_no_cursor_makes_the_feed_or_the_audit_fail(sandbox: Running, bank: Bank) -> None:
    me = KeySigner(bank.key_id, bank.key)
    token = sandbox.centre.create_admin_token("cursor-test")
    with httpx.Client(base_url=sandbox.url, timeout=10) as http:
        for after in HUGE:
            request = http.build_request("GET", "/v1/events", params={"after": after})
            sign_request(request, me)
            events = http.send(request)
            assert events.status_code == 422, (after, events.status_code)
        for after in HUGE[:4]:
            audit = http.get("/admin/v1/audit", params={"after": after}, headers={"Authorization": f"Bearer {token}"})
            assert audit.status_code == 422, (after, audit.status_code)
        request = http.build_request("GET", "/v1/events", params={"after": str(2**63 - 1)})
        sign_request(request, me)
        assert http.send(request).json()["events"] == []


@schemathesis.serializer("application/pdf")
def _pdf(_ctx: Any, value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


SCHEMA = schemathesis.openapi.from_dict(document())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_schemathesis_finds_no_server_error_in_the_admin_api(sandbox: Running, bank: Bank) -> None:
    token = sandbox.centre.create_admin_token("schemathesis")
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    seen: dict[str, int] = {}
    session = requests.Session()
    examples = proof.size(10, 100)

    def exercise(op: Any) -> None:
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            response = case.call(base_url=sandbox.url, session=session, headers=headers, timeout=10)
            seen[op.label] = seen.get(op.label, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{op.label}: {response.status_code} {response.text[:200]}")

        run()

    for operation in SCHEMA.get_all_operations():
        op = operation.ok()  # type: ignore[union-attr]  # an Err is an invalid schema: let it fail here
        if op.path.startswith("/admin/"):
            exercise(op)
    session.close()
    proof.record(proof.Result(f"schemathesis over the admin API ({sum(seen.values())} requests, {len(seen)} routes)",
                              runs=1, applications=0, lost=0, duplicated=0))  # fmt: skip
    assert len(seen) >= 15, seen
    assert not failures, "\n".join(failures)
