"""Routes: certificates, their download links and 在线核验; 登记资料查询 (docs/api.md §10–11)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from sdk.models import (
    PropertyQuery,
    PropertyQueryResult,
    SignedCertificateMetadata,
    SignedNoticeMetadata,
    VerificationResult,
)
from sdk.signing import content_digest

from .common import Context, IdemKey, json_response

__all__ = ["router"]

_SUFFIX = {"application/pdf": ".pdf", "application/ofd": ".ofd"}


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    office, queries = ctx.centre.certificates, ctx.centre.queries
    digest = ctx.centre.suite.digest

    @api.get("/v1/certificates/{certificate_id}", response_model=SignedCertificateMetadata, tags=["certificates"])
    async def certificate(request: Request, certificate_id: str) -> Response:
        who = await ctx.caller(request)
        return json_response(office.certificate(who.institution_id, certificate_id))

    @api.get(
        "/v1/certificates/{certificate_id}/content",
        status_code=303,
        tags=["certificates"],
        responses={303: {"description": "See Other: the short-lived download URL in Location"}},
    )
    async def certificate_content(request: Request, certificate_id: str) -> Response:
        who = await ctx.caller(request)
        token = office.download_token(who.institution_id, certificate_id)
        return Response(status_code=303, headers={"Location": f"/v1/downloads/{token}"})

    @api.get(
        "/v1/downloads/{token}",
        tags=["certificates"],
        response_class=Response,
        responses={
            200: {
                "content": {
                    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                    "application/ofd": {"schema": {"type": "string", "format": "binary"}},
                }
            }
        },
    )
    async def download(request: Request, token: str) -> Response:
        target = office.download_target(token)
        # a notice is drawn and sealed on first read: off the event loop (pyHanko runs its own)
        notice = await run_in_threadpool(ctx.centre.notices.content, target) if target.startswith("ntc_") else None
        if notice is not None:
            notice_meta, content = notice
            media_type, name = notice_meta.media_type, notice_meta.notice_id
        else:
            meta, content = office.download(token)
            media_type, name = meta.media_type, meta.certificate_id
        headers = {
            # sha-256 always (what an intl bank checks), and the suite's own digest beside it (sm3 in gm)
            "Content-Digest": ", ".join(dict.fromkeys([content_digest(content), content_digest(content, digest)])),
            "Content-Disposition": f'attachment; filename="{name}{_SUFFIX[media_type]}"',
            "Cache-Control": "no-store",
        }
        return Response(content, media_type=media_type, headers=headers)

    @api.get("/v1/notices/{notice_id}", response_model=SignedNoticeMetadata, tags=["certificates"])
    async def notice(request: Request, notice_id: str) -> Response:
        who = await ctx.caller(request)
        return json_response(await run_in_threadpool(ctx.centre.notices.notice, who.institution_id, notice_id))

    @api.get(
        "/v1/notices/{notice_id}/content",
        status_code=303,
        tags=["certificates"],
        responses={303: {"description": "See Other: the short-lived download URL in Location"}},
    )
    async def notice_content(request: Request, notice_id: str) -> Response:
        who = await ctx.caller(request)
        token = ctx.centre.notices.download_token(who.institution_id, notice_id)
        return Response(status_code=303, headers={"Location": f"/v1/downloads/{token}"})

    @api.get("/v1/verification", response_model=VerificationResult, tags=["certificates"])
    async def verification(
        licence_id: Annotated[str | None, Query(max_length=200)] = None,
        sha256: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        return json_response(office.verify(licence_id, sha256))

    # --- property query -----------------------------------------------------------------

    @api.post("/v1/property-queries", response_model=PropertyQueryResult, tags=["property"])
    async def property_query(request: Request, query: PropertyQuery, idempotency_key: IdemKey = None) -> Response:
        return await ctx.idempotent(
            request, idempotency_key, 200, lambda who: queries.query_property(who.institution_id, query)
        )

    @api.get("/pki/ca.crl", include_in_schema=False)
    async def crl() -> Response:
        """The seal CA's CRL (DER, RFC 5280), the URL every seal certificate names as its distribution point."""
        der = ctx.centre.keys.crl(ctx.store)
        return Response(der, media_type="application/pkix-crl", headers={"Cache-Control": "no-store"})

    @api.get("/pki/seal-ca-sm2.crl", include_in_schema=False)
    async def sm2_crl() -> Response:
        """The SM2 seal CA's CRL (DER, gm suite): the distribution point its seal certificates name."""
        seals = ctx.centre.seals
        if seals is None:
            return Response(status_code=404)
        return Response(seals.crl(ctx.store), media_type="application/pkix-crl", headers={"Cache-Control": "no-store"})

    return api
