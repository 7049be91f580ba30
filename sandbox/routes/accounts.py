"""Routes: enrolment, credentials (keys) and the institution's own account (docs/api.md §5–6)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sdk.models import (
    CredentialRecord,
    Enrolment,
    EnrolmentResult,
    InstitutionFiling,
    InstitutionProfile,
    Operator,
    Revocation,
    Rotation,
    WebhookSubscription,
)

from .common import BINARY_BODY, Context, IdemKey, json_response

__all__ = ["router"]


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    accounts, keys = ctx.centre.accounts, ctx.centre.credentials

    # --- enrolment and credentials ------------------------------------------------------

    @api.post("/v1/enrolment", response_model=EnrolmentResult, status_code=201, tags=["credentials"])
    async def enroll(enrolment: Enrolment) -> Response:
        return json_response(keys.enroll(enrolment), 201)

    @api.get("/pki/banks.crl", include_in_schema=False)
    async def banks_crl() -> Response:
        """The institution CA's CRL (DER, RFC 5280), named as the distribution point of every
        institution certificate (sandbox.bankca)."""
        return Response(keys.crl(), media_type="application/pkix-crl", headers={"Cache-Control": "no-store"})

    @api.get("/v1/credentials", response_model=list[CredentialRecord], tags=["credentials"])
    async def credentials(request: Request) -> Response:
        who = await ctx.caller(request)
        return json_response(keys.list_credentials(who.institution_id))

    @api.post("/v1/credentials/rotate", response_model=CredentialRecord, status_code=201, tags=["credentials"])
    async def rotate(request: Request, rotation: Rotation, idempotency_key: IdemKey = None) -> Response:
        # a retiring key is refused inside the idempotent act: the same rotation sent again (its answer was
        # lost) is answered from the record, as any idempotent request is
        return await ctx.idempotent(
            request,
            idempotency_key,
            201,
            lambda who: keys.rotate(ctx.not_retiring(who).institution_id, who.key_id, rotation),
        )

    @api.post("/v1/credentials/{key_id}/revoke", response_model=CredentialRecord, tags=["credentials"])
    async def revoke(
        request: Request, key_id: str, revocation: Revocation, idempotency_key: IdemKey = None
    ) -> Response:
        return await ctx.idempotent(
            request,
            idempotency_key,
            200,
            lambda who: keys.revoke(ctx.not_retiring(who).institution_id, key_id, revocation.reason),
        )

    # --- institution --------------------------------------------------------------------

    @api.get("/v1/institution", response_model=InstitutionProfile, tags=["institution"])
    async def institution(request: Request) -> Response:
        who = await ctx.caller(request)
        return json_response(accounts.profile(who.institution_id))

    @api.post("/v1/institution/filing", response_model=InstitutionProfile, tags=["institution"])
    async def filing(request: Request, body: InstitutionFiling, idempotency_key: IdemKey = None) -> Response:
        return await ctx.idempotent(
            request, idempotency_key, 200, lambda who: accounts.file_institution(who.institution_id, body)
        )

    @api.put(
        "/v1/institution/filing/documents/{material_id}",
        response_model=InstitutionProfile,
        tags=["institution"],
        openapi_extra=BINARY_BODY,
    )
    async def filing_document(request: Request, material_id: str) -> Response:
        who = await ctx.caller(request)
        return json_response(accounts.upload_filing_document(who.institution_id, material_id, await request.body()))

    @api.put("/v1/institution/webhook", response_model=InstitutionProfile, tags=["institution"])
    async def webhook(request: Request, subscription: WebhookSubscription) -> Response:
        who = await ctx.managing_caller(request)
        return json_response(accounts.set_webhook(who.institution_id, subscription.url))

    @api.get("/v1/institution/operators", response_model=list[Operator], tags=["institution"])
    async def operators(request: Request) -> Response:
        who = await ctx.caller(request)
        return json_response(accounts.list_operators(who.institution_id))

    return api
