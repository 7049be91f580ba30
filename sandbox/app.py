"""The sandbox centre's HTTP API (docs/api.md) and its admin API (docs/sandbox.md), on FastAPI.

:func:`create_app` composes the centre, the authenticator, the injected faults and the background
worker, and includes the route groups of :mod:`sandbox.routes` (one module per resource group).
Every error is a problem document with a stable code; every answer carries ``X-Request-Id``;
every call leaves an audit record (who, what, when, outcome) with ids only, never names or
identity numbers.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from email.utils import formatdate
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from sdk import __version__
from sdk.models import APPLICATION_TYPES
from sdk.suites import Suite

from .auth import Authenticator, Caller
from .centre import Centre
from .errors import CentreError
from .faults import Faults, FaultsMiddleware, RequestTally, TallyMiddleware
from .gate import Gate, own_base
from .register import CHANGFENG, County
from .routes import accounts, admin, applications, certificates, events
from .routes.common import Context
from .store import Store, new_id
from .webhooks import Webhooks
from .worker import Worker
from .workflow import Timing

__all__ = ["create_app"]


def _pointer(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    # drop the discriminator tag pydantic puts in the location of a union member
    return "/" + "/".join(p for p in parts if not (p.startswith("function-") or p in _UNION_TAGS))


# pydantic puts a union member's tag in an error's location; a JSON pointer leaves it out
_UNION_TAGS = frozenset(APPLICATION_TYPES) | {"person", "organisation"}


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
    suite: Suite | None = None,
    county: County = CHANGFENG,
) -> FastAPI:
    """The centre's ASGI app over ``store`` (in memory when omitted).

    Args:
        timing: how fast reviews move (instant by default).
        faults: faults to inject (none by default); also settable through the admin API.
        passphrase: unlocks the centre's keys of a file-backed store.
        public_url: the base URL certificates' QR codes and bundles point at (else learnt from requests).
        run_worker: run the workflow and webhook threads while the app is served.
        suite: the crypto suite of a new centre (:mod:`sdk.suites`; default ``intl``).
        county: the county of a new centre (:class:`sandbox.register.County`; default 长丰县).
    """
    store = store or (centre.store if centre else Store())
    centre = centre or Centre(
        store, name=centre_name, timing=timing, passphrase=passphrase, public_url=public_url, suite=suite,
        county=county,
    )
    faults = faults or Faults()
    auth = Authenticator(store, clock=lambda: time.time() + faults.config.clock_skew_seconds, suite=centre.suite)
    worker = Worker(centre.workflow, Webhooks(store, centre.keys, faults, development=centre.accounts.development))

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
    # innermost of the middlewares: authentication and body limits before any route reads a byte
    app.add_middleware(
        Gate, auth=auth, store=store, admin_token=centre.check_admin_token, public_url=lambda: centre.public_url,
        open_envelope=centre.open_envelope, seal_answer=centre.seal_answer,
    )
    app.add_middleware(FaultsMiddleware, faults=faults)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = new_id("req")
        request.state.request_id = rid
        if centre.public_url is None:  # the address it serves on — never a Host header a client chose
            centre.public_url = own_base(request.scope)
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

    ctx = Context(centre=centre, store=store, auth=auth, faults=faults, tally=tally)
    for group in (accounts, applications, events, certificates, admin):
        app.include_router(group.router(ctx))

    app.add_middleware(TallyMiddleware, tally=tally)  # last added: outermost, sees every request
    return app


def _target(request: Request) -> str | None:
    params = request.path_params
    for name in ("application_id", "certificate_id", "payment_id", "key_id", "institution_id", "material_id"):
        if name in params:
            return str(params[name])
    return None
