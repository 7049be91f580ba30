"""Errors the centre answers with: RFC 9457 problem documents with stable codes (docs/api.md §3)."""

from __future__ import annotations

from typing import Any

from sdk.privacy import mask_text

__all__ = ["CentreError"]

TITLES = {
    400: "Malformed request",
    401: "Authentication failed",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    422: "The request does not satisfy the contract",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}


class CentreError(Exception):
    """Raised anywhere in the centre; turned into a problem document by the app."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str = "",
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.detail = mask_text(detail)
        self.errors = [{**e, "detail": mask_text(str(e.get("detail", "")))} for e in errors or []]
        self.headers = headers or {}

    def problem(self, request_id: str | None) -> dict[str, Any]:
        return {
            "type": f"urn:regbridge:error:{self.code}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            "request_id": request_id,
            "errors": self.errors,
        }
