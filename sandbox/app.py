"""The sandbox centre's HTTP API (docs/api.md) and its admin API (docs/sandbox.md), on FastAPI.

Handlers are thin: authenticate, call :class:`sandbox.centre.Centre`, answer. Every error is a
problem document with a stable code; every answer carries ``X-Request-Id``; every call leaves an
audit record (who, what, when, outcome) with ids only, never names or identity numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from email.utils import formatdate
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sdk import __version__
from sdk.identifiers import USCC
from sdk.models import (
    APPLICATION_TYPES,
    Application,
    ApplicationRecord,
    CertificateMetadata,
    CredentialRecord,
    Enrolment,
    EnrolmentResult,
    EventPage,
    FeeNotice,
    InstitutionFiling,
    InstitutionProfile,
    Operator,
    Payment,
    PaymentReceipt,
    PropertyQuery,
    PropertyQueryResult,
    Revocation,
    Rotation,
    SignedCertificateMetadata,
    Supplement,
    VerificationResult,
    WebhookSubscription,
    Withdrawal,
)
from sdk.signing import content_digest

from .auth import Authenticator, Caller
from .centre import Centre, request_fingerprint
from .errors import CentreError
from .faults import Faults, FaultsConfig, FaultsMiddleware, RequestTally, TallyMiddleware
from .store import Store, new_id
from .worker import Worker
from .workflow import STAGES, Timing

__all__ = ["create_app"]

POLL_INTERVAL_SECONDS = 2
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
_BINARY = {"requestBody": {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}}


def _json(model: BaseModel | list[Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(model, list):
        body = json.dumps([m.model_dump(mode="json") for m in model], ensure_ascii=False).encode()
    else:
        body = model.model_dump_json().encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _pointer(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    # drop the discriminator tag pydantic puts in the location of a union member
    return "/" + "/".join(p for p in parts if not (p.startswith("function-") or p in _UNION_TAGS))


# pydantic puts a union member's tag in an error's location; a JSON pointer leaves it out
_UNION_TAGS = frozenset(APPLICATION_TYPES) | {"person", "organisation"}


# --- admin bodies -----------------------------------------------------------------------------


class InstitutionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    uscc: USCC
    licence_no: str = Field(min_length=1, max_length=40, description="金融许可证号")
    district: str = Field(default="340121", pattern=r"^\d{6}$")


class OperatorCreate(BaseModel):
    display_name: str = Field(min_length=1, max_length=100)
    operator_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class BundleRequest(BaseModel):
    api_base_url: str | None = Field(default=None, pattern=r"^https?://")
    valid_hours: int = Field(default=168, ge=1, le=24 * 90)


class ChannelChange(BaseModel):
    status: Literal["open", "suspended"]
    reason: str | None = Field(default=None, max_length=300)


class Script(BaseModel):
    outcome: Literal["hold", "correction", "not_accepted", "refused"]
    reason: str | None = None
    items: list[dict[str, str]] | None = None


def create_app(
    store: Store | None = None,
    *,
    centre: Centre | None = None,
    centre_name: str = "长丰县不动产登记中心",
    timing: Timing | None = None,
    faults: Faults | None = None,
    passphrase: bytes | None = None,
    public_url: str | None = None,
    run_worker: bool = True,
) -> FastAPI:
    """The centre's ASGI app over ``store`` (in memory when omitted).

    Args:
        timing: how fast reviews move (instant by default).
        faults: faults to inject (none by default); also settable through the admin API.
        passphrase: unlocks the centre's keys of a file-backed store.
        public_url: the base URL certificates' QR codes and bundles point at (else learnt from requests).
        run_worker: run the workflow and webhook threads while the app is served.
    """
    store = store or (centre.store if centre else Store())
    centre = centre or Centre(store, name=centre_name, timing=timing, passphrase=passphrase, public_url=public_url)
    faults = faults or Faults()
    auth = Authenticator(store, clock=lambda: time.time() + faults.config.clock_skew_seconds)
    worker = Worker(centre, faults)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_worker:
            worker.start()
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(
        title="RegBridge sandbox registration centre",
        version=__version__,
        description="The registration centre's side of the RegBridge API (docs/api.md); admin API in docs/sandbox.md.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.centre = centre
    app.state.auth = auth
    app.state.faults = faults
    app.state.worker = worker
    tally = app.state.requests = RequestTally()
    app.add_middleware(FaultsMiddleware, faults=faults)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = new_id("req")
        request.state.request_id = rid
        if centre.public_url is None:
            centre.public_url = str(request.base_url).rstrip("/")
        response = await call_next(request)
        response.headers["X-Request-Id"] = rid
        response.headers["Date"] = formatdate(time.time() + faults.config.clock_skew_seconds, usegmt=True)
        who: Caller | None = getattr(request.state, "caller", None)
        route = request.scope.get("route")
        action = f"{request.method} {getattr(route, 'path', request.url.path)}"
        actor = who.institution_id if who else getattr(request.state, "actor", "anonymous")
        store.audit(actor, action, _target(request), str(response.status_code), rid)
        return response

    @app.exception_handler(CentreError)
    async def centre_error(request: Request, exc: CentreError) -> Response:
        return JSONResponse(
            exc.problem(getattr(request.state, "request_id", None)),
            status_code=exc.status,
            media_type="application/problem+json",
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"code": e.get("type", "invalid"), "detail": e.get("msg", ""), "pointer": _pointer(tuple(e.get("loc", ())))}
            for e in exc.errors()
        ]
        err = CentreError(422, "validation_failed", f"{len(errors)} error(s)", errors=errors)
        return await centre_error(request, err)

    async def caller(request: Request) -> Caller:
        body = await request.body()
        who = auth.authenticate(
            method=request.method, url=str(request.url), headers=list(request.headers.items()), body=body
        )
        request.state.caller = who
        return who

    async def idempotent(
        request: Request, key: str | None, status: int, act: Callable[[Caller], BaseModel]
    ) -> Response:
        """Authenticate, then run ``act`` once per idempotency key (docs/api.md §4), answering ``status``."""
        who = await caller(request)
        fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
        result = centre.idempotent(
            who.institution_id, key, fingerprint, lambda: (status, act(who).model_dump_json().encode())
        )
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        media = "application/json" if result.status < 400 else "application/problem+json"
        return Response(result.body, status_code=result.status, media_type=media, headers=headers)

    # --- enrolment and credentials ------------------------------------------------------

    @app.post("/v1/enrolment", response_model=EnrolmentResult, status_code=201, tags=["credentials"])
    async def enroll(enrolment: Enrolment) -> Response:
        return _json(centre.enroll(enrolment), 201)

    @app.get("/v1/credentials", response_model=list[CredentialRecord], tags=["credentials"])
    async def credentials(request: Request) -> Response:
        who = await caller(request)
        return _json(centre.list_credentials(who.institution_id))

    @app.post("/v1/credentials/rotate", response_model=CredentialRecord, status_code=201, tags=["credentials"])
    async def rotate(request: Request, rotation: Rotation, idempotency_key: IdemKey = None) -> Response:
        return await idempotent(
            request, idempotency_key, 201, lambda who: centre.rotate(who.institution_id, who.key_id, rotation)
        )

    @app.post("/v1/credentials/{key_id}/revoke", response_model=CredentialRecord, tags=["credentials"])
    async def revoke(
        request: Request, key_id: str, revocation: Revocation, idempotency_key: IdemKey = None
    ) -> Response:
        return await idempotent(
            request, idempotency_key, 200, lambda who: centre.revoke(who.institution_id, key_id, revocation.reason)
        )

    # --- institution --------------------------------------------------------------------

    @app.get("/v1/institution", response_model=InstitutionProfile, tags=["institution"])
    async def institution(request: Request) -> Response:
        who = await caller(request)
        return _json(centre.profile(who.institution_id))

    @app.post("/v1/institution/filing", response_model=InstitutionProfile, tags=["institution"])
    async def filing(request: Request, body: InstitutionFiling, idempotency_key: IdemKey = None) -> Response:
        return await idempotent(
            request, idempotency_key, 200, lambda who: centre.file_institution(who.institution_id, body)
        )

    @app.put(
        "/v1/institution/filing/documents/{material_id}",
        response_model=InstitutionProfile,
        tags=["institution"],
        openapi_extra=_BINARY,
    )
    async def filing_document(request: Request, material_id: str) -> Response:
        who = await caller(request)
        return _json(centre.upload_filing_document(who.institution_id, material_id, await request.body()))

    @app.put("/v1/institution/webhook", response_model=InstitutionProfile, tags=["institution"])
    async def webhook(request: Request, subscription: WebhookSubscription) -> Response:
        who = await caller(request)
        return _json(centre.set_webhook(who.institution_id, subscription.url))

    @app.get("/v1/institution/operators", response_model=list[Operator], tags=["institution"])
    async def operators(request: Request) -> Response:
        who = await caller(request)
        return _json(centre.list_operators(who.institution_id))

    # --- applications -------------------------------------------------------------------

    @app.post("/v1/applications", response_model=ApplicationRecord, status_code=201, tags=["applications"])
    async def create_application(
        request: Request, application: Annotated[Application, Body()], idempotency_key: IdemKey = None
    ) -> Response:
        return await idempotent(
            request, idempotency_key, 201, lambda who: centre.create_application(who.institution_id, application)
        )

    @app.get("/v1/applications", response_model=list[ApplicationRecord], tags=["applications"])
    async def list_applications(
        request: Request,
        status: Annotated[str | None, Query()] = None,
        after: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> Response:
        who = await caller(request)
        statuses = [s for s in (status or "").split(",") if s]
        return _json(centre.list_applications(who.institution_id, statuses, after, limit))

    @app.get(
        "/v1/applications/by-reference/{client_reference}", response_model=ApplicationRecord, tags=["applications"]
    )
    async def find_application(request: Request, client_reference: str) -> Response:
        who = await caller(request)
        return _json(centre.find_application(who.institution_id, client_reference))

    @app.get("/v1/applications/{application_id}", response_model=ApplicationRecord, tags=["applications"])
    async def get_application(request: Request, application_id: str) -> Response:
        who = await caller(request)
        record = centre.get_application(who.institution_id, application_id)
        if not record.is_final:
            record = record.model_copy(update={"next_poll_seconds": POLL_INTERVAL_SECONDS})
        return _json(record)

    @app.put(
        "/v1/applications/{application_id}/materials/{material_id}",
        response_model=ApplicationRecord,
        tags=["applications"],
        openapi_extra=_BINARY,
    )
    async def upload_material(request: Request, application_id: str, material_id: str) -> Response:
        who = await caller(request)
        content = await request.body()
        return _json(centre.upload_material(who.institution_id, application_id, material_id, content))

    @app.post("/v1/applications/{application_id}/submit", response_model=ApplicationRecord, tags=["applications"])
    async def submit(request: Request, application_id: str, idempotency_key: IdemKey = None) -> Response:
        return await idempotent(
            request, idempotency_key, 200, lambda who: centre.submit(who.institution_id, application_id)
        )

    @app.post("/v1/applications/{application_id}/supplements", response_model=ApplicationRecord, tags=["applications"])
    async def supplement(
        request: Request, application_id: str, body: Supplement, idempotency_key: IdemKey = None
    ) -> Response:
        return await idempotent(
            request, idempotency_key, 200, lambda who: centre.supplement(who.institution_id, application_id, body)
        )

    @app.post("/v1/applications/{application_id}/withdraw", response_model=ApplicationRecord, tags=["applications"])
    async def withdraw(
        request: Request, application_id: str, body: Withdrawal, idempotency_key: IdemKey = None
    ) -> Response:
        return await idempotent(
            request, idempotency_key, 200, lambda who: centre.withdraw(who.institution_id, application_id, body)
        )

    # --- fees ---------------------------------------------------------------------------

    @app.get("/v1/applications/{application_id}/fees", response_model=FeeNotice, tags=["fees"])
    async def fees(request: Request, application_id: str) -> Response:
        who = await caller(request)
        return _json(centre.fee_notice(who.institution_id, application_id))

    @app.post(
        "/v1/applications/{application_id}/payments", response_model=PaymentReceipt, status_code=201, tags=["fees"]
    )
    async def pay(request: Request, application_id: str, payment: Payment, idempotency_key: IdemKey = None) -> Response:
        return await idempotent(
            request, idempotency_key, 201, lambda who: centre.pay(who.institution_id, application_id, payment)
        )

    @app.get("/v1/payments/{payment_id}", response_model=PaymentReceipt, tags=["fees"])
    async def receipt(request: Request, payment_id: str) -> Response:
        who = await caller(request)
        return _json(centre.receipt(who.institution_id, payment_id))

    # --- events -------------------------------------------------------------------------

    @app.get("/v1/events", response_model=EventPage, tags=["events"])
    async def events(
        request: Request,
        after: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        who = await caller(request)
        try:
            position = int(after) if after else 0
        except ValueError:
            raise CentreError(422, "validation_failed", "after must be a cursor from next_cursor") from None
        start = max(0, position - 2) if position and faults.duplicate_event() else position
        batch = store.events_after(who.institution_id, start, limit + 1)
        has_more = len(batch) > limit
        batch = batch[:limit]
        cursor = str(max(position, batch[-1]["sequence"])) if batch else str(position)
        page = EventPage.model_validate(
            {
                "events": batch,
                "next_cursor": cursor,
                "has_more": has_more,
                "poll_interval_seconds": POLL_INTERVAL_SECONDS,
            }
        )
        return _json(page)

    # --- certificates -------------------------------------------------------------------

    @app.get("/v1/certificates/{certificate_id}", response_model=SignedCertificateMetadata, tags=["certificates"])
    async def certificate(request: Request, certificate_id: str) -> Response:
        who = await caller(request)
        return _json(centre.certificate(who.institution_id, certificate_id))

    @app.get(
        "/v1/certificates/{certificate_id}/content",
        status_code=303,
        tags=["certificates"],
        responses={303: {"description": "See Other: the short-lived download URL in Location"}},
    )
    async def certificate_content(request: Request, certificate_id: str) -> Response:
        who = await caller(request)
        token = centre.download_token(who.institution_id, certificate_id)
        return Response(status_code=303, headers={"Location": f"/v1/downloads/{token}"})

    @app.get(
        "/v1/downloads/{token}",
        tags=["certificates"],
        response_class=Response,
        responses={200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    async def download(request: Request, token: str) -> Response:
        meta, content = centre.download(token)
        headers = {
            "Content-Digest": content_digest(content),
            "Content-Disposition": f'attachment; filename="{meta.certificate_id}.pdf"',
            "Cache-Control": "no-store",
        }
        return Response(content, media_type=meta.media_type, headers=headers)

    @app.get("/v1/verification", response_model=VerificationResult, tags=["certificates"])
    async def verification(
        licence_id: Annotated[str | None, Query(max_length=200)] = None,
        sha256: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        return _json(centre.verify(licence_id, sha256))

    # --- property query -----------------------------------------------------------------

    @app.post("/v1/property-queries", response_model=PropertyQueryResult, tags=["property"])
    async def property_query(request: Request, query: PropertyQuery, idempotency_key: IdemKey = None) -> Response:
        return await idempotent(
            request, idempotency_key, 200, lambda who: centre.query_property(who.institution_id, query)
        )

    # --- admin --------------------------------------------------------------------------

    async def admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
        token = (authorization or "").removeprefix("Bearer ").strip()
        label = centre.check_admin_token(token) if token else None
        if label is None:
            raise CentreError(401, "admin_unauthorised", "the admin API needs Authorization: Bearer <admin token>")
        request.state.actor = f"admin:{label}"
        return label

    admin_only = [Depends(admin)]

    @app.get("/admin/v1/institutions", response_model=list[InstitutionProfile], tags=["admin"], dependencies=admin_only)
    async def admin_institutions() -> Response:
        return _json(centre.list_institutions())

    @app.post(
        "/admin/v1/institutions",
        response_model=InstitutionProfile,
        status_code=201,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_create_institution(body: InstitutionCreate) -> Response:
        if centre.store.one("SELECT 1 FROM institutions WHERE uscc = ?", body.uscc):
            raise CentreError(409, "duplicate_institution", "an institution with this 统一社会信用代码 exists")
        iid = centre.create_institution(
            name=body.name, uscc=body.uscc, licence_no=body.licence_no, district=body.district
        )
        return _json(centre.profile(iid), 201)

    @app.post(
        "/admin/v1/institutions/{institution_id}/operators",
        response_model=Operator,
        status_code=201,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_create_operator(institution_id: str, body: OperatorCreate) -> Response:
        oid = centre.create_operator(institution_id, body.display_name, body.operator_id)
        return _json(Operator(operator_id=oid, display_name=body.display_name, active=True), 201)

    @app.post(
        "/admin/v1/institutions/{institution_id}/enrolment-bundle",
        status_code=201,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_bundle(request: Request, institution_id: str, body: BundleRequest) -> Response:
        base = body.api_base_url or centre.public_url or str(request.base_url).rstrip("/")
        bundle = centre.enrolment_bundle(institution_id, base, valid_for=timedelta(hours=body.valid_hours))
        return Response(json.dumps(bundle, ensure_ascii=False, indent=2).encode(), 201, media_type="application/json")

    @app.get(
        "/admin/v1/institutions/{institution_id}/credentials",
        response_model=list[CredentialRecord],
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_credentials(institution_id: str) -> Response:
        centre.institution_row(institution_id)
        return _json(centre.list_credentials(institution_id))

    @app.post(
        "/admin/v1/credentials/{key_id}/revoke",
        response_model=CredentialRecord,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_revoke(key_id: str, body: Revocation) -> Response:
        return _json(centre.revoke(None, key_id, body.reason))

    @app.put(
        "/admin/v1/institutions/{institution_id}/channel",
        response_model=InstitutionProfile,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_channel(institution_id: str, body: ChannelChange) -> Response:
        centre.set_channel(institution_id, body.status, body.reason)
        return _json(centre.profile(institution_id))

    @app.get("/admin/v1/faults", response_model=FaultsConfig, tags=["admin"], dependencies=admin_only)
    async def admin_get_faults() -> Response:
        return _json(faults.config)

    @app.put("/admin/v1/faults", response_model=FaultsConfig, tags=["admin"], dependencies=admin_only)
    async def admin_faults(body: FaultsConfig) -> Response:
        faults.configure(body)
        store.audit("admin", "faults.configure", None, "ok")
        return _json(faults.config)

    @app.get("/admin/v1/requests", tags=["admin"], dependencies=admin_only)
    async def admin_requests() -> Response:
        """Every API request received since the start (or the last reset), by route, and the faults injected."""
        return JSONResponse({"total": tally.total(), "by_route": tally.by_route(), "faults": dict(faults.counts)})

    @app.delete("/admin/v1/requests", status_code=204, tags=["admin"], dependencies=admin_only)
    async def admin_requests_reset() -> Response:
        tally.reset()
        return Response(status_code=204)

    @app.put("/admin/v1/scripts/{client_reference}/{stage}", status_code=204, tags=["admin"], dependencies=admin_only)
    async def admin_script(client_reference: str, stage: str, body: Script) -> Response:
        if stage not in STAGES:
            raise CentreError(404, "not_found", f"stage is one of {', '.join(STAGES)}")
        try:
            centre.workflow.set_script(client_reference, stage, body.model_dump(exclude_none=True))
        except ValueError as e:
            raise CentreError(422, "validation_failed", str(e)) from None
        return Response(status_code=204)

    @app.delete(
        "/admin/v1/scripts/{client_reference}/{stage}", status_code=204, tags=["admin"], dependencies=admin_only
    )
    async def admin_clear_script(client_reference: str, stage: str) -> Response:
        centre.workflow.clear_script(client_reference, stage)
        return Response(status_code=204)

    @app.post(
        "/admin/v1/applications/{application_id}/advance",
        response_model=ApplicationRecord,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_advance(application_id: str) -> Response:
        row = store.one("SELECT institution_id FROM applications WHERE id = ?", application_id)
        if row is None:
            raise CentreError(404, "not_found", f"no application {application_id}")
        return _json(centre.workflow.advance(row["institution_id"], application_id))

    @app.get(
        "/admin/v1/certificates/{certificate_id}",
        response_model=CertificateMetadata,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_certificate(certificate_id: str) -> Response:
        row = store.one("SELECT metadata FROM certificates WHERE id = ?", certificate_id)
        if row is None:
            raise CentreError(404, "not_found", f"no certificate {certificate_id}")
        return Response(row["metadata"], media_type="application/json")

    @app.get("/admin/v1/audit", tags=["admin"], dependencies=admin_only)
    async def admin_audit(
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        rows = store.all("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", after, limit)
        return Response(json.dumps([dict(r) for r in rows], ensure_ascii=False), media_type="application/json")

    app.add_middleware(TallyMiddleware, tally=tally)  # last added: outermost, sees every request
    return app


def _target(request: Request) -> str | None:
    params = request.path_params
    for name in ("application_id", "certificate_id", "payment_id", "key_id", "institution_id", "material_id"):
        if name in params:
            return str(params[name])
    return None
