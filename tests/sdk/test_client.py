"""sdk.Client against a scripted centre: every endpoint, signatures, idempotency, retries, errors."""

from __future__ import annotations

import email.utils
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import sdk
from sdk.models import ApplicationStatus, InstitutionFiling, Payment, PropertyQuery, Supplement
from sdk.retries import RetryBudget, RetryPolicy
from sdk.signing import generate_private_key, jwk_from_public_key
from tests import factories as f

from .conftest import Centre, problem, record_json

RECORD = record_json()
NOW = "2026-03-05T10:00:00Z"
FEE = {
    "application_id": "A-1",
    "items": [{"code": "mortgage", "name": "抵押登记费", "amount": "80.00"}],
    "total": "80.00",
    "status": "unpaid",
    "assessed_at": NOW,
}
RECEIPT = {
    "payment_id": "P-1",
    "application_id": "A-1",
    "amount": "80.00",
    "method": "bank_transfer",
    "paid_at": NOW,
    "receipt_number": "PJ-1",
}
CREDENTIAL = {
    "key_id": "bank-key-2",
    "algorithm": "ed25519",
    "label": "agent",
    "fingerprint": "ab" * 32,
    "status": "active",
    "created_at": NOW,
}
PROFILE = {
    "institution_id": "I-1",
    "name": "示例银行合肥分行",
    "uscc": f.BANK_USCC,
    "financial_licence_number": "B0001",
    "district": "340121",
    "channel": {"status": "open", "since": NOW},
}
QUERY_RESULT = {
    "query_id": "Q-1",
    "unit_id": f.unit().unit_id,
    "location": "合肥市",
    "property_type": "2",
    "rights": [{"kind": "ownership", "certificate_number": "皖(2024)长丰县不动产权第0000001号"}],
    "seized": False,
    "objection": False,
    "mortgaged": False,
    "answered_at": NOW,
}
VERIFICATION = {"result": "valid", "licence_id": "x", "checked_at": NOW}
SIGNED_METADATA = {
    "metadata": {
        "certificate_id": "C-1",
        "application_id": "A-1",
        "qr_payload": "x^y",
        "issuing_authority": "长丰县不动产登记中心",
        "issuing_authority_code": "11340121MB0000000X",
        "issued_at": NOW,
        "serial_number": "3401000001",
        "certificate_number": "皖(2026)长丰县不动产证明第0000001号",
        "right_or_matter": "抵押权",
        "right_holders": ["示例银行"],
        "obligors": ["张*"],
        "location": "合肥市",
        "unit_ids": [f.unit().unit_id],
        "other": "",
        "notes": "",
        "licence_id": "x",
        "licence_type_code": "11100000MB03271699022",
        "holder_name": "示例银行",
        "holder_code": f.BANK_USCC,
        "holder_code_type": "001",
        "signer": "中心",
        "signed_at": NOW,
        "status": "1",
        "media_type": "application/pdf",
        "sha256": "a" * 64,
        "size": 10,
    },
    "signature": {"alg": "ed25519", "keyid": "centre-meta-1", "value": "AA=="},
}
SIGNED_NOTICE = {
    "metadata": {
        "notice_id": "N-1",
        "kind": "acceptance_receipt",
        "title": "受理凭证",
        "notice_number": "长不动产受理凭证〔2026〕1号",
        "application_id": "A-1",
        "unit_ids": [f.unit().unit_id],
        "issuing_authority": "长丰县不动产登记中心",
        "issuing_authority_code": "11340121MB0000000X",
        "issued_at": NOW,
        "media_type": "application/ofd",
        "sha256": "b" * 64,
        "size": 10,
    },
    "signature": {"alg": "ed25519", "keyid": "centre-meta-1", "value": "AA=="},
}


def _query() -> PropertyQuery:
    return PropertyQuery.model_validate(
        {
            "unit_id": f.unit().unit_id,
            "operator_id": "op-1",
            "authorisation": {
                "reference": "SQ-1",
                "applicant": f.person().model_dump(mode="json"),
                "signed_at": NOW,
                "signature_id": "s-1",
            },
        }
    )


CALLS: list[tuple[str, str, str, Any, Any]] = [
    # (method, path, sdk call, answer, expected result attribute check)
    ("POST", "/v1/applications", "applications.create", RECORD, None),
    ("PUT", "/v1/applications/A-1/materials/m1", "applications.upload_material", RECORD, None),
    ("POST", "/v1/applications/A-1/submit", "applications.submit", record_json("submitted"), None),
    ("GET", "/v1/applications/A-1", "applications.get", RECORD, None),
    ("GET", "/v1/applications/by-reference/LN2026-0001", "applications.find", RECORD, None),
    ("GET", "/v1/applications", "applications.list", [RECORD], None),
    ("POST", "/v1/applications/A-1/supplements", "applications.supplement", RECORD, None),
    ("POST", "/v1/applications/A-1/withdraw", "applications.withdraw", record_json("withdrawn"), None),
    (
        "GET",
        "/v1/events",
        "events.list",
        {"events": [], "next_cursor": "c0", "has_more": False, "poll_interval_seconds": 5},
        None,
    ),
    ("GET", "/v1/applications/A-1/fees", "fees.get", FEE, None),
    ("POST", "/v1/applications/A-1/payments", "fees.pay", RECEIPT, None),
    ("GET", "/v1/payments/P-1", "fees.receipt", RECEIPT, None),
    ("POST", "/v1/property-queries", "properties.query", QUERY_RESULT, None),
    ("GET", "/v1/institution", "institution.get", PROFILE, None),
    ("POST", "/v1/institution/filing", "institution.file", PROFILE, None),
    ("PUT", "/v1/institution/filing/documents/m1", "institution.upload_document", PROFILE, None),
    ("PUT", "/v1/institution/webhook", "institution.set_webhook", PROFILE, None),
    (
        "GET",
        "/v1/institution/operators",
        "institution.operators",
        [{"operator_id": "op-1", "display_name": "王*", "active": True}],
        None,
    ),
    ("GET", "/v1/credentials", "credentials.list", [CREDENTIAL], None),
    ("POST", "/v1/credentials/rotate", "credentials.rotate", CREDENTIAL, None),
    ("POST", "/v1/credentials/bank-key-2/revoke", "credentials.revoke", {**CREDENTIAL, "status": "revoked"}, None),
    ("GET", "/v1/verification", "certificates.verify", VERIFICATION, None),
    ("GET", "/v1/certificates/C-1", "certificates.get", SIGNED_METADATA, None),
    ("GET", "/v1/notices/N-1", "certificates.notice", SIGNED_NOTICE, None),
    (
        "POST",
        "/v1/enrolment",
        "credentials.enroll",
        {"key_id": "bank-key-1", "institution_id": "I-1", "algorithm": "ed25519"},
        None,
    ),
]


def _args(call: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    material = f.material()
    jwk = jwk_from_public_key(generate_private_key().public_key())
    calls: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
        "applications.create": ((f.application(),), {}),
        "applications.upload_material": (("A-1", material, b"%PDF-1.7 sample"), {}),
        "applications.submit": (("A-1",), {}),
        "applications.get": (("A-1",), {}),
        "applications.find": (("LN2026-0001",), {}),
        "applications.list": ((), {"statuses": [ApplicationStatus.SUBMITTED]}),
        "applications.supplement": (("A-1", Supplement(materials=[material])), {}),
        "applications.withdraw": (("A-1", "借款人撤回"), {}),
        "events.list": ((), {"after": "c0"}),
        "fees.get": (("A-1",), {}),
        "fees.pay": (("A-1", Payment(amount="80.00")), {}),
        "fees.receipt": (("P-1",), {}),
        "properties.query": ((_query(),), {}),
        "institution.get": ((), {}),
        "institution.file": ((InstitutionFiling(documents=f.filing()[0].documents),), {}),
        "institution.upload_document": ((material, b"%PDF-1.7 sample"), {}),
        "institution.set_webhook": (("http://127.0.0.1:9/hook",), {}),
        "institution.operators": ((), {}),
        "credentials.list": ((), {}),
        "credentials.rotate": ((jwk,), {}),
        "credentials.revoke": (("bank-key-2",), {}),
        "certificates.verify": ((), {"licence_id": "1.2.156.3005.2.X"}),
        "certificates.get": (("C-1",), {}),
        "certificates.notice": (("N-1",), {}),
        "credentials.enroll": (("t" * 32, jwk), {}),
    }
    return calls[call]


def _resolve(client: Any, call: str) -> Any:
    group, method = call.split(".")
    return getattr(getattr(client, group), method)


@pytest.mark.parametrize(("method", "path", "call", "answer", "_"), CALLS, ids=[c[2] for c in CALLS])
def test_every_endpoint_is_reached_signed_and_parsed(
    centre: Centre, method: str, path: str, call: str, answer: Any, _: Any
) -> None:
    centre.on(method, path, answer)
    args, kwargs = _args(call)
    with centre.client() as client:
        result = _resolve(client, call)(*args, **kwargs)
    assert result is not None
    [request] = centre.requests
    assert (request.method, request.url.path) == (method, path)
    unsigned = call in ("certificates.verify", "credentials.enroll")
    if unsigned:
        assert "Signature" not in request.headers
    else:
        verified = centre.verify(request)
        assert verified.key_id == "bank-key-1"
        assert "content-digest" in verified.covered
    if method == "POST":
        assert request.headers["Idempotency-Key"]
        if not unsigned:
            assert "idempotency-key" in centre.verify(request).covered
    if request.content and request.headers.get("Content-Type") == "application/json":
        json.loads(request.content)


def test_in_progress_conflict_is_retried(centre: Centre) -> None:
    centre.on(
        "POST", "/v1/applications/A-1/submit", httpx.Response(409, json=problem(409, "idempotency_in_progress")), RECORD
    )
    with centre.client() as client:
        client.applications.submit("A-1", idempotency_key="k")
    assert len(centre.requests) == 2


def test_list_sends_status_filter(centre: Centre) -> None:
    centre.on("GET", "/v1/applications", [RECORD])
    with centre.client() as client:
        [record] = client.applications.list(statuses=[ApplicationStatus.SUBMITTED, ApplicationStatus.ACCEPTED])
    assert centre.requests[0].url.params["status"] == "submitted,accepted"
    assert record.status is ApplicationStatus.DRAFT


def test_find_answers_none_when_absent(centre: Centre) -> None:
    with centre.client() as client:
        assert client.applications.find("NOPE") is None


def test_upload_refuses_content_unlike_its_declaration_before_sending(centre: Centre) -> None:
    with centre.client() as client, pytest.raises(ValueError, match="declared as"):
        client.applications.upload_material("A-1", f.material(b"one"), b"two")
    assert centre.requests == []


def test_idempotency_key_is_reused_across_retries_with_a_fresh_signature(centre: Centre) -> None:
    centre.on(
        "POST",
        "/v1/applications",
        httpx.Response(503, json=problem(503, "unavailable")),
        httpx.ConnectError("refused"),
        httpx.Response(500, json=problem(500, "internal")),
        RECORD,
    )
    with centre.client() as client:
        record = client.applications.create(f.application(), idempotency_key="loan-LN1-create")
    assert record.application_id == "A-1"
    assert len(centre.requests) == 4
    assert {r.headers["Idempotency-Key"] for r in centre.requests} == {"loan-LN1-create"}
    nonces = [centre.verify(r).nonce for r in centre.requests]
    assert len(set(nonces)) == 4
    assert len({r.content for r in centre.requests}) == 1
    assert len(centre.sleeps) == 3


def test_generated_idempotency_key_is_stable_across_retries(centre: Centre) -> None:
    centre.on("POST", "/v1/applications/A-1/submit", httpx.Response(502), RECORD)
    with centre.client() as client:
        client.applications.submit("A-1")
    keys = {r.headers["Idempotency-Key"] for r in centre.requests}
    assert len(keys) == 1 and len(centre.requests) == 2


def test_retry_after_seconds_and_http_date_are_honoured_without_sleeping(centre: Centre) -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    centre.on(
        "GET",
        "/v1/applications/A-1",
        httpx.Response(429, headers={"Retry-After": "7"}, json=problem(429, "rate_limited")),
        httpx.Response(503, headers={"Retry-After": later}, json=problem(503, "unavailable")),
        RECORD,
    )
    with centre.client() as client:
        client.applications.get("A-1")
    assert centre.sleeps[0] == 7
    assert 35 <= centre.sleeps[1] <= 40


def test_backoff_grows_and_stops_after_max_attempts(centre: Centre) -> None:
    centre.on("GET", "/v1/institution", httpx.Response(500, json=problem(500, "internal", "boom")))
    policy = RetryPolicy(max_attempts=4, initial_backoff=1, max_backoff=100, sleep=centre.sleeps.append)
    with centre.client(retry=policy) as client, pytest.raises(sdk.ServerError) as exc:
        client.institution.get()
    assert len(centre.requests) == 4 and len(centre.sleeps) == 3
    assert all(0 <= s <= 2**i for i, s in enumerate(centre.sleeps))
    assert exc.value.retryable and exc.value.request_id == "req-1"


def test_a_retry_after_beyond_the_limit_is_not_waited_for(centre: Centre) -> None:
    centre.on(
        "GET",
        "/v1/institution",
        httpx.Response(429, headers={"Retry-After": "3600"}, json=problem(429, "rate_limited")),
    )
    with centre.client() as client, pytest.raises(sdk.RateLimited) as exc:
        client.institution.get()
    assert exc.value.retry_after == 3600 and len(centre.requests) == 1


def test_non_retryable_errors_are_not_retried(centre: Centre) -> None:
    body = problem(
        422,
        "validation_failed",
        "2 errors",
        errors=[
            {"code": "missing_material", "detail": "主债权合同 is required", "pointer": "/materials"},
            {"code": "invalid", "detail": "抵押人 340104198001011231 is not the owner", "pointer": "/mortgagors/0"},
        ],
    )
    centre.on("POST", "/v1/applications", httpx.Response(422, json=body))
    with centre.client() as client, pytest.raises(sdk.ValidationFailed) as exc:
        client.applications.create(f.application())
    err = exc.value
    assert len(centre.requests) == 1
    assert [e.pointer for e in err.errors] == ["/materials", "/mortgagors/0"]
    assert "340104198001011231" not in str(err) and "3401**********1231" in str(err)
    assert err.code == "validation_failed" and err.status == 422


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (403, "channel_suspended", sdk.ChannelSuspended),
        (409, "idempotency_conflict", sdk.IdempotencyConflict),
        (409, "invalid_state", sdk.Conflict),
        (401, "clock_skew", sdk.ClockSkew),
        (401, "signature_invalid", sdk.AuthenticationFailed),
        (401, "replayed_nonce", sdk.AuthenticationFailed),
        (404, "not_found", sdk.NotFound),
        (422, "payload_mismatch", sdk.PayloadMismatch),
        (403, "forbidden", sdk.PermissionDenied),
        (418, "teapot", sdk.APIError),
    ],
)
def test_error_mapping(centre: Centre, status: int, code: str, cls: type[sdk.APIError]) -> None:
    centre.on("GET", "/v1/institution", httpx.Response(status, json=problem(status, code, "no")))
    with centre.client() as client, pytest.raises(cls) as exc:
        client.institution.get()
    assert type(exc.value) is cls and exc.value.code == code and not exc.value.retryable


def test_error_without_problem_body_still_maps(centre: Centre) -> None:
    centre.on("GET", "/v1/institution", httpx.Response(404, text="gone", headers={"X-Request-Id": "r-9"}))
    with centre.client() as client, pytest.raises(sdk.NotFound) as exc:
        client.institution.get()
    assert exc.value.request_id == "r-9" and exc.value.code == "http_404"


def test_timeouts_are_transport_errors_and_retried(centre: Centre) -> None:
    centre.on("GET", "/v1/institution", httpx.ReadTimeout("slow"), PROFILE)
    with centre.client() as client:
        assert client.institution.get().institution_id == "I-1"
    centre.routes.clear()
    centre.on("GET", "/v1/institution", httpx.ConnectTimeout("slow"))
    policy = RetryPolicy(max_attempts=2, sleep=centre.sleeps.append)
    with centre.client(retry=policy) as client, pytest.raises(sdk.TimeoutError):
        client.institution.get()


def test_retry_budget_stops_a_retry_storm(centre: Centre) -> None:
    centre.on("GET", "/v1/institution", httpx.Response(503, json=problem(503, "unavailable")))
    budget = RetryBudget(capacity=12, retry_cost=5)
    policy = RetryPolicy(max_attempts=10, budget=budget, sleep=centre.sleeps.append)
    with centre.client(retry=policy) as client:
        with pytest.raises(sdk.RetryBudgetExhausted) as exc:
            client.institution.get()
        assert isinstance(exc.value.last_error, sdk.ServerError)
        assert len(centre.requests) == 3  # two retries granted, the third refused
        with pytest.raises(sdk.RetryBudgetExhausted):
            client.institution.get()
        assert len(centre.requests) == 4  # no retry left: one attempt only
    assert budget.retries_granted == 2 and budget.retries_refused == 2


def test_successes_refill_the_budget(centre: Centre) -> None:
    budget = RetryBudget(capacity=10, retry_cost=5, success_refund=1)
    budget.acquire()
    centre.on("GET", "/v1/institution", PROFILE)
    with centre.client(retry=RetryPolicy(budget=budget, sleep=centre.sleeps.append)) as client:
        for _ in range(3):
            client.institution.get()
    assert budget.tokens == 8


def test_the_budget_reserve_keeps_the_event_feed_retrying_when_other_traffic_spent_the_rest(centre: Centre) -> None:
    unavailable = httpx.Response(503, json=problem(503, "unavailable"))
    empty = {"events": [], "next_cursor": "c0", "has_more": False, "poll_interval_seconds": 5}
    centre.on("GET", "/v1/institution", unavailable)
    budget = RetryBudget(capacity=100, retry_cost=5, success_refund=1, reserve=20)
    policy = RetryPolicy(max_attempts=100, budget=budget, sleep=centre.sleeps.append)
    with centre.client(retry=policy) as client:
        with pytest.raises(sdk.RetryBudgetExhausted):
            client.institution.get()  # other traffic spends the budget down to the reserve, no further
        assert budget.tokens == 20 and len(centre.requests) == 17
        with pytest.raises(sdk.RetryBudgetExhausted):
            client.institution.get()
        assert len(centre.requests) == 18  # still refused: the reserve is not theirs
        for _ in range(3):  # the feed, failing once a read, still gets its retry from the reserve
            centre.on("GET", "/v1/events", unavailable, empty)
            assert client.events.list().next_cursor == "c0"
            centre.routes.pop(("GET", "/v1/events"))
        assert len(centre.requests) == 18 + 6
        assert budget.tokens == 20 - 3 * (5 - 1)  # each retry cost 5, each read's success gave 1 back


def test_a_reserve_outside_the_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="reserve"):
        RetryBudget(capacity=10, reserve=11)


def test_event_pager_follows_cursors_until_the_end(centre: Centre) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after", "")
        n = int(after[1:]) if after else 0
        events = [
            {
                "event_id": f"e{i}",
                "sequence": i,
                "type": "application.status_changed",
                "occurred_at": NOW,
                "application_id": "A-1",
                "status": "accepted",
            }
            for i in range(n + 1, min(n + 3, 6))
        ]
        nxt = f"c{events[-1]['sequence']}" if events else after
        return httpx.Response(
            200, json={"events": events, "next_cursor": nxt, "has_more": nxt != "c5", "poll_interval_seconds": 7}
        )

    centre.on("GET", "/v1/events", page)
    with centre.client() as client:
        pager = client.events.pager(after=None, limit=2)
        ids = [e.event_id for e in pager]
    assert ids == ["e1", "e2", "e3", "e4", "e5"]
    assert pager.cursor == "c5" and pager.poll_interval_seconds == 7
    assert [r.url.params.get("after") for r in centre.requests] == [None, "c2", "c4"]


def test_waiter_honours_hints_and_resumes_from_a_token(centre: Centre) -> None:
    centre.on(
        "GET",
        "/v1/applications/A-1",
        record_json("submitted", next_poll_seconds=3),
        record_json("accepted", next_poll_seconds=4),
        record_json("under_review", next_poll_seconds=4),
        record_json("completed"),
    )
    with centre.client() as client:
        poller = client.applications.begin_wait("A-1", timeout=3600)
        poller.poll()
        poller.poll()
        token = poller.continuation_token()
        assert not poller.done()
    # a new process, a new client: resume with the token only
    with centre.client() as client:
        resumed = client.applications.resume_wait(token)
        assert resumed.state.polls == 2 and resumed.state.last_status is ApplicationStatus.ACCEPTED
        record = resumed.result()
    assert record.status is ApplicationStatus.COMPLETED
    assert centre.sleeps == [4]


def test_waiter_until_a_given_status_and_deadline(centre: Centre) -> None:
    centre.on("GET", "/v1/applications/A-1", record_json("correction_required", next_poll_seconds=2))
    with centre.client() as client:
        record = client.applications.wait("A-1", until=[ApplicationStatus.CORRECTION_REQUIRED])
        assert record.status is ApplicationStatus.CORRECTION_REQUIRED
        centre.routes.clear()
        centre.on("GET", "/v1/applications/A-1", record_json("under_review", next_poll_seconds=2))
        with pytest.raises(TimeoutError, match=r"resume with token rbw1\."):
            client.applications.wait("A-1", timeout=0)


def test_bad_continuation_tokens_are_refused(centre: Centre) -> None:
    with centre.client() as client:
        for token in ("nope", "rbw1.!!!", "rbw1.eyJ2IjoyfQ"):
            with pytest.raises(sdk.ContinuationTokenError):
                client.applications.resume_wait(token)


def test_certificate_download_follows_the_redirect_and_checks_digests(centre: Centre) -> None:
    pdf = b"%PDF-1.7 certificate"
    digest = hashlib.sha256(pdf).hexdigest()
    centre.on("GET", "/v1/certificates/C-1/content", httpx.Response(303, headers={"Location": "/v1/downloads/tok-1"}))
    centre.on(
        "GET",
        "/v1/downloads/tok-1",
        httpx.Response(
            200,
            content=pdf,
            headers={"Content-Type": "application/pdf", "Content-Digest": sdk.signing.content_digest(pdf)},
        ),
    )
    with centre.client() as client:
        assert client.certificates.download("C-1", expected_sha256=digest) == pdf
        with pytest.raises(sdk.DigestMismatch):
            client.certificates.download("C-1", expected_sha256="0" * 64)
    first, second = centre.requests[:2]
    assert "Signature" in first.headers and "Signature" not in second.headers


def test_download_refuses_content_unlike_its_content_digest(centre: Centre) -> None:
    centre.on(
        "GET",
        "/v1/certificates/C-1/content",
        httpx.Response(200, content=b"tampered", headers={"Content-Digest": sdk.signing.content_digest(b"original")}),
    )
    with centre.client() as client, pytest.raises(sdk.DigestMismatch):
        client.certificates.download("C-1")


def test_ids_cannot_change_the_path(centre: Centre) -> None:
    centre.on("GET", "/v1/applications/../credentials", RECORD)  # the decoded view of the escaped path
    with centre.client() as client:
        client.applications.get("../credentials")
    assert centre.requests[0].url.raw_path == b"/v1/applications/..%2Fcredentials"


def test_user_agent_and_no_credential(centre: Centre) -> None:
    centre.on("GET", "/v1/verification", VERIFICATION)
    with sdk.Client("http://127.0.0.1:8700", transport=httpx.MockTransport(centre.handler)) as anon:
        assert anon.certificates.verify(sha256="a" * 64).result == "valid"
    assert centre.requests[0].headers["User-Agent"].startswith("regbridge-sdk/")
    with pytest.raises(ValueError, match="exactly one"):
        sdk.Client("http://x").certificates.verify()
