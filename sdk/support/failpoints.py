"""Named crash points, for the reliability suite's crash matrix (tests/reliability); inert otherwise.

``REGBRIDGE_FAILPOINT=<point>`` or ``<point>@<n>``: the n-th time (default: the first) this process
reaches the point, it kills itself with SIGKILL — no ``finally``, no flush, no atexit, as a power
cut or the OOM killer would leave it. The next start must recover from whatever was half done.
Read once at import: with the variable unset, :func:`reached` is one comparison.

The points, in pipeline order (:data:`POINTS`):

- ``create.before_send``: the application is persisted, its create request not yet sent;
- ``create.after_send`` / ``submit.after_send``: the centre processed the request, the agent
  dies before reading the answer;
- ``create.after_response``: the answer is read, not yet committed to the state store;
- ``upload.during``: half of a material's bytes are on the wire;
- ``download.during``: half of a certificate's bytes have arrived;
- ``store.during_write``: half of a certificate is written to the document store's temporary file;
- ``receipt.during_write``: half of a receipt file is written;
- ``migration.during``: between two statements of a state-schema migration.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import httpx

__all__ = ["POINTS", "FailpointTransport", "active", "armed", "halves", "reached"]

POINTS = (
    "create.before_send",
    "create.after_send",
    "create.after_response",
    "upload.during",
    "submit.after_send",
    "download.during",
    "store.during_write",
    "receipt.during_write",
    "migration.during",
)

_name, _, _nth = os.environ.get("REGBRIDGE_FAILPOINT", "").partition("@")
_NAME = _name.strip()
_NTH = int(_nth) if _nth.strip().isdigit() else 1
_hits = 0
_lock = threading.Lock()
if _NAME and _NAME not in POINTS:
    raise SystemExit(f"REGBRIDGE_FAILPOINT={_NAME!r} is not a crash point; known: {', '.join(POINTS)}")


def active() -> bool:
    return bool(_NAME)


def armed(name: str) -> bool:
    return name == _NAME


def reached(name: str) -> None:
    """Die here (SIGKILL) if this is the armed point and its n-th passage."""
    global _hits
    if name != _NAME:
        return
    with _lock:
        _hits += 1
        if _hits < _NTH:
            return
    os.kill(os.getpid(), signal.SIGKILL)
    threading.Event().wait()  # SIGKILL is not deferred, but never run on


def halves(data: bytes, name: str) -> Iterator[bytes]:
    """The bytes in two pieces with the point between them (a body cut mid-stream)."""
    half = len(data) // 2
    yield data[:half]
    reached(name)
    yield data[half:]


def _operation(request: httpx.Request) -> str | None:
    parts = request.url.path.rstrip("/").split("/")
    if request.method == "POST" and request.url.path.rstrip("/") == "/v1/applications":
        return "create"
    if request.method == "POST" and parts[-1] == "submit":
        return "submit"
    if request.method == "PUT" and len(parts) >= 2 and parts[-2] == "materials":
        return "upload"
    if request.method == "GET" and len(parts) >= 2 and parts[-2] == "downloads":
        return "download"  # where GET /v1/certificates/{id}/content redirects
    return None


class _Halves(httpx.SyncByteStream):
    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name = data, name

    def __iter__(self) -> Iterator[bytes]:
        return halves(self.data, self.name)


class FailpointTransport(httpx.BaseTransport):
    """Wraps the centre transport when a point on the wire is armed (never otherwise)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        op = _operation(request)
        if op == "upload" and armed("upload.during"):
            body = request.read()
            request = httpx.Request(
                request.method, request.url, headers=request.headers, stream=_Halves(body, "upload.during")
            )
        response = self.inner.handle_request(request)
        if op is not None:
            reached(f"{op}.after_send")
        if op == "download" and armed("download.during") and response.status_code == 200:
            length = int(response.headers.get("content-length") or 0)
            chunks: list[bytes] = []
            cut = False
            for chunk in response.stream:  # type: ignore[union-attr]
                chunks.append(chunk)
                if not cut and sum(map(len, chunks)) * 2 >= length:
                    cut = True
                    reached("download.during")
            response.close()
            if not cut:
                reached("download.during")
            # not this passage: hand on what was read, as it came
            return httpx.Response(200, headers=response.headers, content=b"".join(chunks), request=request)
        return response

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
