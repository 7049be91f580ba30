"""The sandbox centre's HTTP API (docs/api.md), on FastAPI.

Handlers are thin: authenticate, call :class:`sandbox.centre.Centre`, answer. Every error is a
problem document with a stable code; every answer carries ``X-Request-Id``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from sdk import __version__
from sdk.models import (
    APPLICATION_TYPES,
    Application,
    ApplicationRecord,
    Enrolment,
    EnrolmentResult,
    EventPage,
    InstitutionProfile,
)

from .auth import Authenticator, Caller
from .centre import Centre, request_fingerprint
from .errors import CentreError
from .store import Store, new_id

__all__ = ["create_app"]

POLL_INTERVAL_SECONDS = 2
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]


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


def create_app(store: Store | None = None, *, centre_name: str = "长丰县不动产登记中心") -> FastAPI:
    """The centre's ASGI app over ``store`` (in memory when omitted)."""
    store = store or Store()
    centre = Centre(store, name=centre_name)
    auth = Authenticator(store)
    app = FastAPI(
        title="RegBridge sandbox registration centre",
        version=__version__,
        description="The registration centre's side of the RegBridge API (docs/api.md).",
    )
    app.state.store = store
    app.state.centre = centre
    app.state.auth = auth

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = new_id("req")
        request.state.request_id = rid
        response = await call_next(request)
        response.headers["X-Request-Id"] = rid
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
        return auth.authenticate(
            method=request.method, url=str(request.url), headers=list(request.headers.items()), body=body
        )

    async def idempotent(
        request: Request, who: Caller, key: str | None, act: Callable[[], tuple[int, bytes]]
    ) -> Response:
        fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
        result = centre.idempotent(who.institution_id, key, fingerprint, act)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        media = "application/json" if result.status < 400 else "application/problem+json"
        return Response(result.body, status_code=result.status, media_type=media, headers=headers)

    @app.post("/v1/enrolment", response_model=EnrolmentResult, tags=["credentials"])
    async def enroll(enrolment: Enrolment) -> Response:
        return _json(centre.enroll(enrolment), 201)

    @app.get("/v1/institution", response_model=InstitutionProfile, tags=["institution"])
    async def institution(request: Request) -> Response:
        who = await caller(request)
        return _json(centre.profile(who.institution_id))

    @app.post("/v1/applications", response_model=ApplicationRecord, status_code=201, tags=["applications"])
    async def create_application(
        request: Request, application: Annotated[Application, Body()], idempotency_key: IdemKey = None
    ) -> Response:
        who = await caller(request)

        def act() -> tuple[int, bytes]:
            return 201, centre.create_application(who.institution_id, application).model_dump_json().encode()

        return await idempotent(request, who, idempotency_key, act)

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
        openapi_extra={
            "requestBody": {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}
        },
    )
    async def upload_material(request: Request, application_id: str, material_id: str) -> Response:
        who = await caller(request)
        content = await request.body()
        return _json(centre.upload_material(who.institution_id, application_id, material_id, content))

    @app.post("/v1/applications/{application_id}/submit", response_model=ApplicationRecord, tags=["applications"])
    async def submit(request: Request, application_id: str, idempotency_key: IdemKey = None) -> Response:
        who = await caller(request)

        def act() -> tuple[int, bytes]:
            return 200, centre.submit(who.institution_id, application_id).model_dump_json().encode()

        return await idempotent(request, who, idempotency_key, act)

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
        batch = store.events_after(who.institution_id, position, limit + 1)
        has_more = len(batch) > limit
        batch = batch[:limit]
        cursor = str(batch[-1]["sequence"]) if batch else str(position)
        page = EventPage.model_validate(
            {
                "events": batch,
                "next_cursor": cursor,
                "has_more": has_more,
                "poll_interval_seconds": POLL_INTERVAL_SECONDS,
            }
        )
        return _json(page)

    return app
