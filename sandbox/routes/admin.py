"""Routes: the admin API (docs/sandbox.md): accounts, keys, channel, faults, request tally, scripts,
stepping an application, certificates and the audit log; every call needs an admin bearer token."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sdk.identifiers import USCC
from sdk.models import (
    ApplicationRecord,
    CertificateMetadata,
    CertificateRevocation,
    CredentialRecord,
    InstitutionProfile,
    Operator,
    Revocation,
)

from ..errors import CentreError
from ..faults import FaultsConfig
from ..workflow import STAGES
from .common import Context, json_response

__all__ = ["router"]


# --- admin bodies -----------------------------------------------------------------------------


class InstitutionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    uscc: USCC
    licence_no: str = Field(min_length=1, max_length=40, description="金融许可证号")
    district: str = Field(default="340121", pattern=r"^\d{6}$")


class Restriction(BaseModel):
    kind: Literal["seizure", "objection"] = Field(description="查封 or 异议")
    authority: str = Field(default="长丰县人民法院", min_length=1, max_length=100, description="who has it recorded")
    document: str = Field(
        default="(2026)皖0121执0001号", min_length=1, max_length=100, description="the ruling or application number"
    )


class VoidRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=300, description="why the recorded entry is annulled (撤销)")


class OperatorCreate(BaseModel):
    display_name: str = Field(min_length=1, max_length=100)
    operator_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class BundleRequest(BaseModel):
    api_base_url: str | None = Field(default=None, pattern=r"^https?://")
    valid_hours: int = Field(default=168, ge=1, le=24 * 90)


class TokenRotation(BaseModel):
    valid_hours: int = Field(default=24, ge=1, le=24 * 30, description="how long the new token is good for")
    grace_seconds: int = Field(default=300, ge=0, le=86400, description="how long the old token still works")


class ChannelChange(BaseModel):
    status: Literal["open", "suspended"]
    reason: str | None = Field(default=None, max_length=300)


class Script(BaseModel):
    outcome: Literal["hold", "correction", "not_accepted", "refused"]
    reason: str | None = None
    items: list[dict[str, str]] | None = None


def router(ctx: Context) -> APIRouter:
    api = APIRouter()

    # --- admin --------------------------------------------------------------------------

    async def admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
        token = (authorization or "").removeprefix("Bearer ").strip()
        label = ctx.centre.check_admin_token(token) if token else None
        if label is None:
            raise CentreError(401, "admin_unauthorised", "the admin API needs Authorization: Bearer <admin token>")
        request.state.actor = f"admin:{label}"
        return label

    admin_only = [Depends(admin)]

    @api.post("/admin/v1/seal/revoke", tags=["admin"], dependencies=admin_only)
    async def admin_revoke_seal(body: Revocation) -> Response:
        """Revoke the seal certificate (it goes on the CA's CRL at /pki/ca.crl); new certificates get a new seal."""
        serial = ctx.centre.revoke_seal(body.reason)
        return JSONResponse({"revoked_serial": str(serial), "crl": "/pki/ca.crl"})

    @api.post("/admin/v1/tokens/rotate", status_code=201, tags=["admin"], dependencies=admin_only)
    async def admin_rotate_token(
        body: TokenRotation, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        """A new admin token (shown once) for the token that signs this call, which ends after ``grace_seconds``."""
        old = (authorization or "").removeprefix("Bearer ").strip()
        new, ends = ctx.centre.accounts.rotate_admin_token(
            old, valid_for=timedelta(hours=body.valid_hours), grace=timedelta(seconds=body.grace_seconds)
        )
        return JSONResponse({"token": new, "previous_token_ends_at": ends}, status_code=201)

    @api.get("/admin/v1/institutions", response_model=list[InstitutionProfile], tags=["admin"], dependencies=admin_only)
    async def admin_institutions() -> Response:
        return json_response(ctx.centre.list_institutions())

    @api.post(
        "/admin/v1/institutions",
        response_model=InstitutionProfile,
        status_code=201,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_create_institution(body: InstitutionCreate) -> Response:
        if ctx.centre.store.one("SELECT 1 FROM institutions WHERE uscc = ?", body.uscc):
            raise CentreError(409, "duplicate_institution", "an institution with this 统一社会信用代码 exists")
        iid = ctx.centre.create_institution(
            name=body.name, uscc=body.uscc, licence_no=body.licence_no, district=body.district
        )
        return json_response(ctx.centre.profile(iid), 201)

    @api.post(
        "/admin/v1/institutions/{institution_id}/operators",
        response_model=Operator,
        status_code=201,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_create_operator(institution_id: str, body: OperatorCreate) -> Response:
        oid = ctx.centre.create_operator(institution_id, body.display_name, body.operator_id)
        return json_response(Operator(operator_id=oid, display_name=body.display_name, active=True), 201)

    @api.post(
        "/admin/v1/institutions/{institution_id}/operators/{operator_id}/deactivate",
        response_model=Operator,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_deactivate_operator(institution_id: str, operator_id: str) -> Response:
        return json_response(ctx.centre.deactivate_operator(institution_id, operator_id))

    @api.post(
        "/admin/v1/institutions/{institution_id}/enrolment-bundle",
        status_code=201,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_bundle(request: Request, institution_id: str, body: BundleRequest) -> Response:
        base = body.api_base_url or ctx.centre.public_url or str(request.base_url).rstrip("/")
        bundle = ctx.centre.enrolment_bundle(institution_id, base, valid_for=timedelta(hours=body.valid_hours))
        return Response(json.dumps(bundle, ensure_ascii=False, indent=2).encode(), 201, media_type="application/json")

    @api.get(
        "/admin/v1/institutions/{institution_id}/credentials",
        response_model=list[CredentialRecord],
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_credentials(institution_id: str) -> Response:
        ctx.centre.institution_row(institution_id)
        return json_response(ctx.centre.list_credentials(institution_id))

    @api.post(
        "/admin/v1/credentials/{key_id}/revoke",
        response_model=CredentialRecord,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_revoke(key_id: str, body: Revocation) -> Response:
        return json_response(ctx.centre.revoke(None, key_id, body.reason))

    @api.post(
        "/admin/v1/bank-certificates/{serial}/revoke",
        response_model=CredentialRecord,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_revoke_certificate(serial: str, body: CertificateRevocation) -> Response:
        """Revoke an institution certificate (by its serial, hex): it goes on /pki/banks.crl and its
        key's requests are refused with ``certificate_revoked``."""
        return json_response(ctx.centre.revoke_bank_certificate(serial, body.reason))

    @api.put(
        "/admin/v1/institutions/{institution_id}/channel",
        response_model=InstitutionProfile,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_channel(institution_id: str, body: ChannelChange) -> Response:
        ctx.centre.set_channel(institution_id, body.status, body.reason)
        return json_response(ctx.centre.profile(institution_id))

    @api.get("/admin/v1/faults", response_model=FaultsConfig, tags=["admin"], dependencies=admin_only)
    async def admin_get_faults() -> Response:
        return json_response(ctx.faults.config)

    @api.put("/admin/v1/faults", response_model=FaultsConfig, tags=["admin"], dependencies=admin_only)
    async def admin_faults(body: FaultsConfig) -> Response:
        ctx.faults.configure(body)
        ctx.store.audit("admin", "faults.configure", None, "ok")
        return json_response(ctx.faults.config)

    @api.get("/admin/v1/requests", tags=["admin"], dependencies=admin_only)
    async def admin_requests() -> Response:
        """Every API request received since the start (or the last reset), by route, and the faults injected."""
        tally = ctx.tally
        return JSONResponse({"total": tally.total(), "by_route": tally.by_route(), "faults": dict(ctx.faults.counts)})

    @api.delete("/admin/v1/requests", status_code=204, tags=["admin"], dependencies=admin_only)
    async def admin_requests_reset() -> Response:
        ctx.tally.reset()
        return Response(status_code=204)

    @api.put("/admin/v1/scripts/{client_reference}/{stage}", status_code=204, tags=["admin"], dependencies=admin_only)
    async def admin_script(client_reference: str, stage: str, body: Script) -> Response:
        if stage not in STAGES:
            raise CentreError(404, "not_found", f"stage is one of {', '.join(STAGES)}")
        try:
            ctx.centre.workflow.set_script(client_reference, stage, body.model_dump(exclude_none=True))
        except ValueError as e:
            raise CentreError(422, "validation_failed", str(e)) from None
        return Response(status_code=204)

    @api.delete(
        "/admin/v1/scripts/{client_reference}/{stage}", status_code=204, tags=["admin"], dependencies=admin_only
    )
    async def admin_clear_script(client_reference: str, stage: str) -> Response:
        ctx.centre.workflow.clear_script(client_reference, stage)
        return Response(status_code=204)

    @api.post(
        "/admin/v1/applications/{application_id}/advance",
        response_model=ApplicationRecord,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_advance(application_id: str) -> Response:
        row = ctx.store.one("SELECT institution_id FROM applications WHERE id = ?", application_id)
        if row is None:
            raise CentreError(404, "not_found", f"no application {application_id}")
        return json_response(ctx.centre.workflow.advance(row["institution_id"], application_id))

    @api.post(
        "/admin/v1/applications/{application_id}/void",
        response_model=ApplicationRecord,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_void(application_id: str, body: VoidRequest) -> Response:
        row = ctx.store.one("SELECT institution_id FROM applications WHERE id = ?", application_id)
        if row is None:
            raise CentreError(404, "not_found", f"no application {application_id}")
        return json_response(ctx.centre.void_application(row["institution_id"], application_id, body.reason))

    @api.get(
        "/admin/v1/certificates/{certificate_id}",
        response_model=CertificateMetadata,
        tags=["admin"],
        dependencies=admin_only,
    )
    async def admin_certificate(certificate_id: str) -> Response:
        row = ctx.store.one("SELECT metadata FROM certificates WHERE id = ?", certificate_id)
        if row is None:
            raise CentreError(404, "not_found", f"no certificate {certificate_id}")
        return Response(row["metadata"], media_type="application/json")

    @api.post("/admin/v1/units/{unit_id}/restrictions", tags=["admin"], dependencies=admin_only, status_code=201)
    async def admin_restrict(unit_id: str, body: Restriction) -> Response:
        """Script a 查封 or an 异议 on a unit (a court's or a claimant's act, not a bank's): the register records it,
        and the banks holding a current mortgage on the unit see it in their 登记资料查询 (collateral watch)."""
        right = ctx.centre.restrict_unit(unit_id, body.kind, authority=body.authority, document=body.document)
        return Response(json.dumps({"right_id": right}), status_code=201, media_type="application/json")

    @api.delete("/admin/v1/restrictions/{right_id}", tags=["admin"], dependencies=admin_only, status_code=204)
    async def admin_lift(right_id: str) -> Response:
        """解封 / 异议注销: the restriction is no longer current."""
        ctx.centre.lift_restriction(right_id)
        return Response(status_code=204)

    @api.get("/admin/v1/property-queries", tags=["admin"], dependencies=admin_only)
    async def admin_property_queries(
        institution_id: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[str | None, Query(max_length=40, description="ISO time, inclusive")] = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
        format: Annotated[Literal["json", "csv"], Query()] = "json",
    ) -> Response:
        """痕迹管理 (seed 001 §6.2): every 登记资料查询, answered or refused — who, why, what it named, what was
        shown or why it was refused; ``format=csv`` exports it (UTF-8 with BOM)."""
        try:
            rows = ctx.centre.query_trace(institution_id=institution_id, since=since, limit=limit)
        except ValueError as e:  # since is not a date or time
            raise CentreError(422, "validation_failed", str(e)) from None
        if format == "csv":
            return Response(
                ctx.centre.queries.trace_csv(rows),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="property-queries.csv"'},
            )
        return Response(json.dumps(rows, ensure_ascii=False), media_type="application/json")

    @api.get("/admin/v1/audit", tags=["admin"], dependencies=admin_only)
    async def admin_audit(
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        rows = ctx.store.all("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", after, limit)
        return Response(json.dumps([dict(r) for r in rows], ensure_ascii=False), media_type="application/json")

    return api
