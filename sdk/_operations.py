"""Operations: one description per endpoint, shared by the sync and async clients.

An :class:`Operation` says what to send (method, path, body, headers, idempotency key) and how
to read the answer. The two clients differ only in how they send it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

T = TypeVar("T")

__all__ = ["Operation", "encode_json", "new_idempotency_key"]


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def encode_json(body: BaseModel | Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes: the same logical body always gives the same bytes."""
    data = body.model_dump(mode="json", exclude_none=True) if isinstance(body, BaseModel) else dict(body)
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _parse_as(model: Any) -> Callable[[httpx.Response], Any]:
    adapter: TypeAdapter[Any] = TypeAdapter(model)

    def parse(response: httpx.Response) -> Any:
        return adapter.validate_json(response.content)

    return parse


@dataclass
class Operation(Generic[T]):
    """One call of the API."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: BaseModel | Mapping[str, Any] | None = None
    content: bytes | None = None
    content_type: str | None = None
    params: Mapping[str, str | int] = field(default_factory=dict)
    idempotency_key: str | None = None
    signed: bool = True
    #: 404 answers ``None`` instead of raising (for look-ups)
    none_on_404: bool = False
    #: its retries may spend the retry budget's reserve (:class:`~sdk.retries.RetryBudget`): the event feed
    priority: bool = False

    @classmethod
    def returning(
        cls,
        model: type[T] | Any,
        method: str,
        path: str,
        *,
        json: BaseModel | Mapping[str, Any] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, str | int] | None = None,
        idempotency_key: str | None = None,
        signed: bool = True,
        priority: bool = False,
    ) -> Operation[T]:
        """An operation whose answer is parsed as ``model``; POSTs get an idempotency key."""
        if method == "POST" and idempotency_key is None:
            idempotency_key = new_idempotency_key()
        return cls(
            method=method,
            path=path,
            parse=_parse_as(model),
            json=json,
            content=content,
            content_type=content_type,
            params=dict(params or {}),
            idempotency_key=idempotency_key,
            signed=signed,
            priority=priority,
        )

    def build(
        self,
        client: httpx.Client | httpx.AsyncClient,
        seal: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> httpx.Request:
        """The HTTP request; ``seal`` (the personal-field envelope, :mod:`sdk.gm.envelope`) rewrites a
        JSON body before it is encoded (and so before it is digested and signed)."""
        headers: dict[str, str] = {"Accept": "application/json"}
        body: bytes | None = self.content
        if self.json is not None and seal is not None:
            data = self.json.model_dump(mode="json", exclude_none=True) if isinstance(self.json, BaseModel) else dict(
                self.json
            )
            body = encode_json(seal(data))
            headers["Content-Type"] = "application/json"
        elif self.json is not None:
            body = encode_json(self.json)
            headers["Content-Type"] = "application/json"
        elif self.content_type:
            headers["Content-Type"] = self.content_type
        if self.idempotency_key:
            headers["Idempotency-Key"] = self.idempotency_key
        if body is None and self.method in ("POST", "PUT"):
            body = b""
        return client.build_request(
            self.method, self.path, params=dict(self.params) or None, headers=headers, content=body
        )
