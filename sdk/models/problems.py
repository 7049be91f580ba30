"""The error body: RFC 9457 problem details with a stable code and every error at once."""

from __future__ import annotations

from pydantic import Field

from ._base import Resource

__all__ = ["ErrorDetail", "Problem"]


class ErrorDetail(Resource):
    code: str
    detail: str
    pointer: str | None = Field(default=None, description="JSON pointer into the request body")


class Problem(Resource):
    type: str = Field(description="urn:regbridge:error:{code}")
    title: str
    status: int
    code: str = Field(description="stable, machine-readable")
    detail: str = ""
    request_id: str | None = None
    errors: list[ErrorDetail] = Field(default_factory=list)
    retry_after_seconds: int | None = None
