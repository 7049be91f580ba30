"""sdk.AsyncClient mirrors sdk.Client: the same scripted centre, awaited."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

import sdk
from sdk.models import ApplicationStatus, Payment
from sdk.retries import RetryBudget, RetryPolicy
from tests import factories as f

from .conftest import Centre, problem, record_json
from .test_client import CALLS, _args, _resolve


@pytest.mark.parametrize(("method", "path", "call", "answer", "_"), CALLS, ids=[c[2] for c in CALLS])
async def test_every_endpoint_async(centre: Centre, method: str, path: str, call: str, answer: Any, _: Any) -> None:
    centre.on(method, path, answer)
    args, kwargs = _args(call)
    async with centre.async_client() as client:
        result = await _resolve(client, call)(*args, **kwargs)
    assert result is not None
    [request] = centre.requests
    assert (request.method, request.url.path) == (method, path)
    if call not in ("certificates.verify", "credentials.enroll"):
        assert centre.verify(request).key_id == "bank-key-1"


async def test_async_retries_reuse_the_key_and_resign(centre: Centre) -> None:
    centre.on(
        "POST",
        "/v1/applications/A-1/payments",
        httpx.Response(429, headers={"Retry-After": "2"}, json=problem(429, "rate_limited")),
        httpx.ReadTimeout("slow"),
        {
            "payment_id": "P-1",
            "application_id": "A-1",
            "amount": "80.00",
            "method": "bank_transfer",
            "paid_at": "2026-03-05T10:00:00Z",
            "receipt_number": "PJ-1",
        },
    )
    async with centre.async_client() as client:
        receipt = await client.fees.pay("A-1", Payment(amount="80.00"), idempotency_key="fee-LN1")
    assert str(receipt.amount) == "80.00"
    assert {r.headers["Idempotency-Key"] for r in centre.requests} == {"fee-LN1"}
    assert len({centre.verify(r).nonce for r in centre.requests}) == 3
    assert centre.sleeps[0] == 2


async def test_async_budget_and_errors(centre: Centre) -> None:
    centre.on("GET", "/v1/institution", httpx.Response(503, json=problem(503, "unavailable")))
    policy = RetryPolicy(max_attempts=5, budget=RetryBudget(capacity=5, retry_cost=5), sleep=centre.sleeps.append)
    async with centre.async_client(retry=policy) as client:
        with pytest.raises(sdk.RetryBudgetExhausted):
            await client.institution.get()
    assert len(centre.requests) == 2
    centre.routes.clear()
    centre.requests.clear()
    centre.on("POST", "/v1/applications", httpx.Response(403, json=problem(403, "channel_suspended", "关闭端口")))
    async with centre.async_client() as client:
        with pytest.raises(sdk.ChannelSuspended):
            await client.applications.create(f.application())
    assert len(centre.requests) == 1


async def test_async_pager_waiter_and_download(centre: Centre) -> None:
    centre.on(
        "GET",
        "/v1/events",
        {
            "events": [
                {
                    "event_id": "e1",
                    "sequence": 1,
                    "type": "certificate.issued",
                    "occurred_at": "2026-03-05T10:00:00Z",
                    "application_id": "A-1",
                }
            ],
            "next_cursor": "c1",
            "has_more": True,
            "poll_interval_seconds": 5,
        },
        {"events": [], "next_cursor": "c1", "has_more": False, "poll_interval_seconds": 5},
    )
    centre.on("GET", "/v1/applications/A-1", record_json("recorded", next_poll_seconds=1), record_json("completed"))
    pdf = b"%PDF-1.7 x"
    centre.on("GET", "/v1/certificates/C-1/content", httpx.Response(302, headers={"Location": "/v1/downloads/t"}))
    centre.on(
        "GET",
        "/v1/downloads/t",
        httpx.Response(200, content=pdf, headers={"Content-Digest": sdk.signing.content_digest(pdf)}),
    )
    async with centre.async_client() as client:
        pager = client.events.pager()
        events = [e async for e in pager]
        assert [e.event_id for e in events] == ["e1"] and pager.cursor == "c1"
        poller = client.applications.begin_wait("A-1")
        token = poller.continuation_token()
        record = await client.applications.resume_wait(token).result()
        assert record.status is ApplicationStatus.COMPLETED
        assert await client.certificates.download("C-1", expected_sha256=hashlib.sha256(pdf).hexdigest()) == pdf
    assert centre.sleeps == [1]
