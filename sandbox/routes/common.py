"""What every route group shares: the :class:`Context` (centre, authenticator, faults, tally) with
the signed-caller and idempotent-request helpers, and the JSON answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header, Request, Response
from pydantic import BaseModel

from ..auth import Authenticator, Caller
from ..centre import Centre
from ..errors import CentreError
from ..faults import Faults, RequestTally
from ..idempotency import request_fingerprint
from ..store import Store

__all__ = ["BINARY_BODY", "POLL_INTERVAL_SECONDS", "Context", "IdemKey", "json_response"]

#: how often a client should poll an application or the feed, in seconds
POLL_INTERVAL_SECONDS = 2
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
#: an OpenAPI request body of raw bytes (materials, filing documents)
BINARY_BODY = {"requestBody": {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}}


def json_response(model: BaseModel | list[Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(model, list):
        body = json.dumps([m.model_dump(mode="json") for m in model], ensure_ascii=False).encode()
    else:
        body = model.model_dump_json().encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


@dataclass
class Context:
    """The centre and the request machinery the route groups work with."""

    centre: Centre
    store: Store
    auth: Authenticator
    faults: Faults
    tally: RequestTally

    async def caller(self, request: Request) -> Caller:
        """The institution whose key signed the request (docs/api.md §3), as the gate verified it
        (``sandbox.gate``: from the headers before the body, then the signature over the body).

        Raises:
            CentreError: 401 for a request the gate did not authenticate.
        """
        who: Caller | None = getattr(request.state, "caller", None)
        if who is None:
            raise CentreError(401, "signature_missing", "the request carries no Signature / Signature-Input")
        return who

    async def managing_caller(self, request: Request) -> Caller:
        """The caller of a credential or channel change (rotate, revoke, webhook URL): not a retiring key.

        A key in its rotation grace period may sign ordinary requests until it dies, nothing else —
        it cannot rotate again (postponing its own end), revoke a key or move the webhooks.

        Raises:
            CentreError: 403 ``key_retiring``.
        """
        return self.not_retiring(await self.caller(request))

    @staticmethod
    def not_retiring(who: Caller) -> Caller:
        """``who``, unless its key is retiring (403 ``key_retiring``)."""
        if who.retiring:
            raise CentreError(
                403, "key_retiring", f"key {who.key_id} is being rotated out: it may sign ordinary requests only"
            )
        return who

    async def idempotent(
        self, request: Request, key: str | None, status: int, act: Callable[[Caller], BaseModel]
    ) -> Response:
        """Authenticate, then run ``act`` once per idempotency key (docs/api.md §4), answering ``status``."""
        who = await self.caller(request)
        fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
        result = self.centre.idempotency.run(
            who.institution_id, key, fingerprint, lambda: (status, act(who).model_dump_json().encode())
        )
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        media = "application/json" if result.status < 400 else "application/problem+json"
        return Response(result.body, status_code=result.status, media_type=media, headers=headers)
