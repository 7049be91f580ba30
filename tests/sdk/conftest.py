from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import sdk
from sdk.retries import RetryPolicy
from sdk.signing import KeySigner, generate_private_key, verify_request
from tests import factories as f

BASE = "http://127.0.0.1:8700"


def record_json(status: str = "draft", app_id: str = "A-1", **extra: Any) -> dict[str, Any]:
    data = {
        "application_id": app_id,
        "client_reference": "LN2026-0001",
        "type": "mortgage_first",
        "status": status,
        "created_at": "2026-03-05T10:00:00Z",
        "updated_at": "2026-03-05T10:00:00Z",
        "application": f.application_dict("mortgage_first"),
    }
    data.update(extra)
    return data


def problem(status: int, code: str, detail: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "type": f"urn:regbridge:error:{code}",
        "title": code,
        "status": status,
        "code": code,
        "detail": detail,
        "request_id": "req-1",
        **extra,
    }


@dataclass
class Centre:
    """A scripted centre: answers from a queue per (method, path), records every request."""

    key: Any
    requests: list[httpx.Request] = field(default_factory=list)
    routes: dict[tuple[str, str], list[Callable[[httpx.Request], httpx.Response]]] = field(default_factory=dict)
    sleeps: list[float] = field(default_factory=list)

    def on(
        self,
        method: str,
        path: str,
        *answers: Callable[[httpx.Request], httpx.Response] | httpx.Response | dict[str, Any] | list[Any] | Exception,
    ) -> None:
        queue = self.routes.setdefault((method, path), [])
        for a in answers:
            queue.append(_as_answer(a))

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        # the client re-sends the same Request object on a retry: keep what was sent this time
        request = httpx.Request(request.method, request.url, headers=request.headers.copy(), content=request.content)
        self.requests.append(request)
        queue = self.routes.get((request.method, request.url.path))
        if not queue:
            return httpx.Response(404, json=problem(404, "not_found", f"no route {request.url.path}"))
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request)

    def verify(self, request: httpx.Request) -> Any:
        return verify_request(
            method=request.method,
            url=str(request.url),
            headers=request.headers.items(),
            body=request.content,
            keys={"bank-key-1": self.key.public_key()},
        )

    def client(self, **kw: Any) -> sdk.Client:
        retry = kw.pop("retry", None) or RetryPolicy(sleep=self.sleeps.append)
        return sdk.Client(
            BASE, sdk.Credential("bank-key-1", self.key), transport=httpx.MockTransport(self.handler), retry=retry, **kw
        )

    def async_client(self, **kw: Any) -> sdk.AsyncClient:
        retry = kw.pop("retry", None) or RetryPolicy(sleep=self.sleeps.append)
        return sdk.AsyncClient(
            BASE, KeySigner("bank-key-1", self.key), transport=httpx.MockTransport(self.handler), retry=retry, **kw
        )


def _as_answer(a: Any) -> Callable[[httpx.Request], httpx.Response]:
    if isinstance(a, Exception):

        def raise_(request: httpx.Request) -> httpx.Response:
            raise a

        return raise_
    if isinstance(a, httpx.Response):

        def copy_(request: httpx.Request) -> httpx.Response:
            return httpx.Response(a.status_code, headers=a.headers, content=a.content)

        return copy_
    if isinstance(a, dict | list):
        body = json.dumps(a).encode()
        return lambda request: httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    return a  # type: ignore[no-any-return]


@pytest.fixture
def centre() -> Centre:
    return Centre(key=generate_private_key())
