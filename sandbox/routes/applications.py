"""Routes: applications and their fees (docs/api.md §7, §9)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from sdk.models import (
    Application,
    ApplicationRecord,
    FeeNotice,
    Payment,
    PaymentReceipt,
    Supplement,
    Withdrawal,
)

from .common import BINARY_BODY, POLL_INTERVAL_SECONDS, Context, IdemKey, json_response

__all__ = ["router"]


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    applications, ledger, fee_office = ctx.centre.applications, ctx.centre.ledger, ctx.centre.fees

    @api.post("/v1/applications", response_model=ApplicationRecord, status_code=201, tags=["applications"])
    async def create_application(
        request: Request, application: Annotated[Application, Body()], idempotency_key: IdemKey = None
    ) -> Response:
        return await ctx.idempotent(
            request, idempotency_key, 201, lambda who: applications.create(who.institution_id, application)
        )

    @api.get("/v1/applications", response_model=list[ApplicationRecord], tags=["applications"])
    async def list_applications(
        request: Request,
        status: Annotated[str | None, Query()] = None,
        after: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> Response:
        who = await ctx.caller(request)
        statuses = [s for s in (status or "").split(",") if s]
        return json_response(applications.list(who.institution_id, statuses, after, limit))

    @api.get(
        "/v1/applications/by-reference/{client_reference}", response_model=ApplicationRecord, tags=["applications"]
    )
    async def find_application(request: Request, client_reference: str) -> Response:
        who = await ctx.caller(request)
        return json_response(applications.find(who.institution_id, client_reference))

    @api.get("/v1/applications/{application_id}", response_model=ApplicationRecord, tags=["applications"])
    async def get_application(request: Request, application_id: str) -> Response:
        who = await ctx.caller(request)
        record = ledger.load(who.institution_id, application_id)
        if not record.is_final:
            record = record.model_copy(update={"next_poll_seconds": POLL_INTERVAL_SECONDS})
        return json_response(record)

    @api.put(
        "/v1/applications/{application_id}/materials/{material_id}",
        response_model=ApplicationRecord,
        tags=["applications"],
        openapi_extra=BINARY_BODY,
    )
    async def upload_material(request: Request, application_id: str, material_id: str) -> Response:
        who = await ctx.caller(request)
        content = await request.body()
        return json_response(applications.upload_material(who.institution_id, application_id, material_id, content))

    @api.post("/v1/applications/{application_id}/submit", response_model=ApplicationRecord, tags=["applications"])
    async def submit(request: Request, application_id: str, idempotency_key: IdemKey = None) -> Response:
        return await ctx.idempotent(
            request, idempotency_key, 200, lambda who: applications.submit(who.institution_id, application_id)
        )

    @api.post("/v1/applications/{application_id}/supplements", response_model=ApplicationRecord, tags=["applications"])
    async def supplement(
        request: Request, application_id: str, body: Supplement, idempotency_key: IdemKey = None
    ) -> Response:
        return await ctx.idempotent(
            request,
            idempotency_key,
            200,
            lambda who: applications.supplement(who.institution_id, application_id, body),
        )

    @api.post("/v1/applications/{application_id}/withdraw", response_model=ApplicationRecord, tags=["applications"])
    async def withdraw(
        request: Request, application_id: str, body: Withdrawal, idempotency_key: IdemKey = None
    ) -> Response:
        return await ctx.idempotent(
            request, idempotency_key, 200, lambda who: applications.withdraw(who.institution_id, application_id, body)
        )

    # --- fees ---------------------------------------------------------------------------

    @api.get("/v1/applications/{application_id}/fees", response_model=FeeNotice, tags=["fees"])
    async def fees(request: Request, application_id: str) -> Response:
        who = await ctx.caller(request)
        return json_response(fee_office.fee_notice(who.institution_id, application_id))

    @api.post(
        "/v1/applications/{application_id}/payments", response_model=PaymentReceipt, status_code=201, tags=["fees"]
    )
    async def pay(request: Request, application_id: str, payment: Payment, idempotency_key: IdemKey = None) -> Response:
        return await ctx.idempotent(
            request, idempotency_key, 201, lambda who: fee_office.pay(who.institution_id, application_id, payment)
        )

    @api.get("/v1/payments/{payment_id}", response_model=PaymentReceipt, tags=["fees"])
    async def receipt(request: Request, payment_id: str) -> Response:
        who = await ctx.caller(request)
        return json_response(fee_office.receipt(who.institution_id, payment_id))

    return api
