"""The OpenAPI document in docs/ is current and agrees with docs/api.md; schemathesis finds no
server error in a bounded run against the live sandbox (requests signed like the SDK's)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from sandbox.openapi import document, render
from sdk.signing import KeySigner, sign_request

from ..sdk.test_contract_doc import _documented
from .conftest import Bank, Running

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "openapi.json"


def test_the_openapi_document_in_docs_is_current() -> None:
    assert SPEC.read_text(encoding="utf-8") == render(), (
        "docs/openapi.json is stale: python -m sandbox.openapi > docs/openapi.json"
    )


def test_openapi_and_api_md_name_the_same_endpoints() -> None:
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    served = {
        (method.upper(), path) for path, item in spec["paths"].items() if path.startswith("/v1/") for method in item
    }
    assert served == set(_documented())
    assert all(p.startswith(("/v1/", "/admin/v1/")) for p in spec["paths"])


class _Signed(requests.auth.AuthBase):
    """Sign a prepared ``requests`` request exactly as the SDK signs an httpx one."""

    def __init__(self, signer: KeySigner) -> None:
        self.signer = signer

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body if isinstance(r.body, bytes) else str(r.body or "").encode()
        headers = {k: v if isinstance(v, str) else v.decode() for k, v in r.headers.items()}
        request = httpx.Request(r.method or "GET", r.url or "", headers=headers, content=body)
        sign_request(request, self.signer)
        for name in ("Content-Digest", "Signature-Input", "Signature"):
            r.headers[name] = request.headers[name]
        return r


@pytest.fixture
def live(sandbox: Running, bank: Bank) -> Iterator[tuple[str, _Signed]]:
    yield sandbox.url, _Signed(KeySigner(bank.key_id, bank.key))


@schemathesis.serializer("application/pdf")
def _pdf(_ctx: Any, value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


SCHEMA = schemathesis.openapi.from_dict(document())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_schemathesis_finds_no_server_error(live: tuple[str, _Signed]) -> None:
    base_url, auth = live
    failures: list[str] = []
    seen: dict[str, int] = {}
    session = requests.Session()

    def exercise(op: Any) -> None:
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, session=session, auth=auth, timeout=10)
            seen[op.label] = seen.get(op.label, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{op.label}: {response.status_code} {response.text[:200]}")

        run()

    for operation in SCHEMA.get_all_operations():
        op = operation.ok()  # type: ignore[union-attr]  # an Err is an invalid schema: let it fail here
        if not op.path.startswith("/admin/"):
            exercise(op)
    session.close()
    assert len(seen) >= 20, seen
    assert not failures, "\n".join(failures)
