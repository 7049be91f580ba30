"""Faults on demand, for the agent's reliability tests (docs/sandbox.md §Faults).

Per endpoint (``"POST /v1/applications*"`` style patterns, first match wins) and seedable:
added latency, 503, 429 with ``Retry-After``, the connection dropped after the request was
processed (the response is lost), duplicate event deliveries (feed and webhooks), and a skewed
centre clock. Set at start (``regbridge sandbox serve --faults FILE``) or at run time through
the admin API (``PUT /admin/v1/faults``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import random
import threading
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["FaultRule", "Faults", "FaultsConfig", "FaultsMiddleware", "ResponseDropped"]


class FaultRule(BaseModel):
    endpoint: str = Field(default="*", description='"METHOD /path*" pattern, or "*"')
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    error_rate: float = Field(default=0.0, ge=0, le=1, description="share answered 503 before processing")
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1, description="share answered 429 before processing")
    retry_after: int = Field(default=1, ge=0, le=3600)
    drop_after_rate: float = Field(default=0.0, ge=0, le=1, description="share processed whose response is lost")


class FaultsConfig(BaseModel):
    seed: int | None = None
    rules: list[FaultRule] = Field(default_factory=list)
    duplicate_event_rate: float = Field(default=0.0, ge=0, le=1)
    clock_skew_seconds: float = 0.0


class ResponseDropped(Exception):
    """Raised after the response has started, so the server closes the connection mid-response."""


class Faults:
    def __init__(self, config: FaultsConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultsConfig())
        self.counts: dict[str, int] = {"error": 0, "rate_limit": 0, "drop": 0, "duplicate": 0}

    def configure(self, config: FaultsConfig) -> None:
        with self._lock:
            self.config = config
            self.rng = random.Random(config.seed)

    @property
    def active(self) -> bool:
        c = self.config
        return bool(c.rules or c.duplicate_event_rate or c.clock_skew_seconds)

    def rule_for(self, method: str, path: str) -> FaultRule | None:
        target = f"{method} {path}"
        for rule in self.config.rules:
            if rule.endpoint == "*" or fnmatch.fnmatchcase(target, rule.endpoint):
                return rule
        return None

    def roll(self, rate: float, what: str) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            hit = self.rng.random() < rate
        if hit:
            self.counts[what] += 1
        return hit

    def duplicate_event(self) -> bool:
        return self.roll(self.config.duplicate_event_rate, "duplicate")


def _problem(status: int, code: str, title: str, retry_after: int | None) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"type": f"urn:regbridge:error:{code}", "title": title, "status": status,
                       "code": code, "detail": "injected by the sandbox's fault configuration"}).encode()  # fmt: skip
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return {"type": "http.response.start", "status": status, "headers": headers}, body


class FaultsMiddleware:
    """Pure ASGI middleware: cheap when no fault is configured."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.faults.active or scope["path"].startswith("/admin/"):
            await self.app(scope, receive, send)
            return
        rule = self.faults.rule_for(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        for rate, status, code, title, what in (
            (rule.error_rate, 503, "unavailable", "Service Unavailable (injected)", "error"),
            (rule.rate_limit_rate, 429, "rate_limited", "Too Many Requests (injected)", "rate_limit"),
        ):
            if self.faults.roll(rate, what):
                start, body = _problem(status, code, title, rule.retry_after)
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
        if not self.faults.roll(rule.drop_after_rate, "drop"):
            await self.app(scope, receive, send)
            return
        started: dict[str, Any] = {}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)

        await self.app(scope, receive, capture)  # the centre does the work…
        if started:
            await send(started)  # …the status line goes out, the body never does
        raise ResponseDropped("response dropped after processing (injected fault)")


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ResponseDropped)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
