"""Faults on demand, for the agent's reliability tests (docs/sandbox.md §Faults).

Per endpoint (``"POST /v1/applications*"`` style patterns, first match wins) and seedable:
added latency, 503, 429 with ``Retry-After``, a request held past the client's timeout, the
connection dropped after the request was processed (the response is lost), duplicate event
deliveries (feed and webhooks), and a skewed centre clock. Set at start (``regbridge sandbox
serve --faults FILE``) or at run time through the admin API (``PUT /admin/v1/faults``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import random
import re
import threading
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "FaultRule",
    "Faults",
    "FaultsConfig",
    "FaultsMiddleware",
    "RequestTally",
    "ResponseDropped",
    "TallyMiddleware",
    "route_of",
]


class FaultRule(BaseModel):
    endpoint: str = Field(default="*", description='"METHOD /path*" pattern, or "*"')
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    error_rate: float = Field(default=0.0, ge=0, le=1, description="share answered 503 before processing")
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1, description="share answered 429 before processing")
    retry_after: int = Field(default=1, ge=0, le=3600)
    drop_after_rate: float = Field(default=0.0, ge=0, le=1, description="share processed whose response is lost")
    timeout_rate: float = Field(
        default=0.0, ge=0, le=1, description="share held for timeout_seconds before processing (a client times out)"
    )
    timeout_seconds: float = Field(default=5.0, ge=0, le=600)


class FaultsConfig(BaseModel):
    seed: int | None = None
    rules: list[FaultRule] = Field(default_factory=list)
    duplicate_event_rate: float = Field(default=0.0, ge=0, le=1)
    clock_skew_seconds: float = Field(
        default=0.0, ge=-366 * 86400, le=366 * 86400, description="how far the centre's clock is off, in seconds"
    )


class ResponseDropped(Exception):
    """Raised after the response has started, so the server closes the connection mid-response."""


class Faults:
    def __init__(self, config: FaultsConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultsConfig())
        self.counts: dict[str, int] = {"error": 0, "rate_limit": 0, "timeout": 0, "drop": 0, "duplicate": 0}

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
        if self.faults.roll(rule.timeout_rate, "timeout"):
            await asyncio.sleep(rule.timeout_seconds)  # the client has given up; the work is still done
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


_ID = re.compile(r"^(?:[a-z]+_[0-9a-f]{6,}|[0-9a-f-]{16,}|[A-Za-z0-9_-]{32,})$")


def route_of(path: str) -> str:
    """``/v1/applications/app_1f…/materials/m1`` → ``/v1/applications/{id}/materials/{id}``."""
    parts = path.split("/")
    out = []
    for i, part in enumerate(parts):
        prev = parts[i - 1] if i else ""
        out.append("{id}" if part and (_ID.match(part) or prev in ("materials", "downloads")) else part)
    return "/".join(out)


class RequestTally:
    """Every API request the centre received (faulted ones too), by route and status: for the proofs
    and the benchmarks' request economy (``GET /admin/v1/requests``)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, int]] = Counter()
        self._lock = threading.Lock()

    def by_route(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (method, route, _), n in self.counts.items():
            out[f"{method} {route}"] += n
        return dict(out)

    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def add(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.counts[(method, route_of(path), status)] += 1


class TallyMiddleware:
    """Outermost: counts what arrived, whatever the faults or the handlers then did with it."""

    def __init__(self, app: Any, tally: RequestTally) -> None:
        self.app = app
        self.tally = tally

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/admin/"):
            await self.app(scope, receive, send)
            return
        status = {"code": 0}

        async def seen(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, seen)
        finally:
            self.tally.add(scope["method"], scope["path"], status["code"])


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ResponseDropped)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
