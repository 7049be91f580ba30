"""The centre's gate: who is asking, and how much they may send, before any body is read or parsed.

A pure ASGI middleware in front of every route (docs/api.md §5, §11):

1. **Authentication first.** A signed route's ``Signature-Input`` is parsed and judged — key
   known and not revoked, clock window — from the headers alone, so an unsigned or badly signed
   request is refused (401) before one byte of its body is read. An admin route's bearer token
   is checked the same way. Nothing is parsed or validated for a caller who is not one.
2. **Limits while streaming, per route.** A ``Content-Length`` over the route's limit is refused
   at once (413 ``payload_too_large``); a body without one (chunked) is read chunk by chunk and
   refused the moment it passes the limit — the rest is never read. Limits: 1 MiB for JSON
   bodies (applications and every other signed or admin route), 64 KiB for an enrolment, and for
   a material or filing document the size its declaration gave (at most 50 MiB).
3. **Then the signature over the body**, against the request target exactly as sent (raw path
   and query, never decoded) on the centre's own scheme and authority — the configured public URL,
   or the address the server listens on — never a ``Host`` header the bank did not sign. The
   verified caller is handed to the routes in ``request.state.caller``.
4. **Then the personal-field envelope** (gm centres, :meth:`sandbox.centre.Centre.open_envelope`): a
   signed JSON body's SM4-encrypted personal fields are opened with the centre's encryption key, so
   the routes read them as any body; a centre that asks for the envelope refuses them in the clear.
   On the way back, a JSON answer to a signed caller has its personal fields sealed to the bank's
   own SM2 encryption key (registered at enrolment; :meth:`sandbox.centre.Centre.seal_answer`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from .auth import Authenticator
from .errors import CentreError
from .store import Store

__all__ = ["JSON_LIMIT", "MATERIAL_LIMIT", "Gate", "own_base", "raw_target"]

JSON_LIMIT = 1024 * 1024
MATERIAL_LIMIT = 50 * 1024 * 1024
ENROLMENT_LIMIT = 64 * 1024

#: routes anyone may call (no signature): enrolment, downloads, online verification, the API's documents
_OPEN = re.compile(
    r"^/(v1/enrolment|v1/downloads/[^/]+|v1/verification|openapi\.json|docs|redoc|pki/(?:ca|banks)\.crl)/?$"
)
_MATERIAL = re.compile(r"^/v1/applications/([^/]+)/materials/([^/]+)$")
_FILING_DOCUMENT = re.compile(r"^/v1/institution/filing/documents/([^/]+)$")

ASGIApp = Callable[..., Any]


class Gate:
    """Pure ASGI middleware; see the module's text for what it does, in which order."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: Authenticator,
        store: Store,
        admin_token: Callable[[str], str | None],
        public_url: Callable[[], str | None],
        open_envelope: Callable[[str, bytes], bytes] | None = None,
        seal_answer: Callable[[str, bytes], bytes] | None = None,
    ) -> None:
        #: a JSON answer's personal fields sealed to the calling bank's encryption key (gm centres)
        self.seal_answer = seal_answer
        self.app = app
        #: a signed body's personal-field envelope opened after its signature is checked (gm centres)
        self.open_envelope = open_envelope
        self.auth = auth
        self.store = store
        self.admin_token = admin_token
        self.public_url = public_url

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        state = scope.setdefault("state", {})
        try:
            if path.startswith("/admin/"):
                state["actor"] = f"admin:{self._admin(headers)}"
                limit = JSON_LIMIT
                signed = False
            elif _OPEN.match(path):
                limit = ENROLMENT_LIMIT
                signed = False
            elif path.startswith("/v1/"):
                institution_id = self.auth.precheck(headers)
                limit = self._limit(path, institution_id)
                signed = True
            else:
                limit, signed = JSON_LIMIT, False
            body = await _read(scope, receive, headers, limit)
            if signed:
                url = raw_target(scope, self.public_url())
                state["caller"] = self.auth.authenticate(method=scope["method"], url=url, headers=headers, body=body)
                if self.open_envelope is not None and body:
                    opened = self.open_envelope(scope["method"], body)
                    if opened is not body:
                        body = opened
                        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
                        scope["headers"].append((b"content-length", str(len(body)).encode()))
        except CentreError as exc:
            await _problem(send, exc, state.get("request_id"))
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: dict[str, Any] = await receive()  # a disconnect, when the client goes
            return message

        caller = state.get("caller")
        if self.seal_answer is not None and caller is not None:
            send = self._sealing(send, caller.institution_id)
        await self.app(scope, replay, send)

    def _sealing(self, send: Any, institution_id: str) -> Any:
        """``send`` holding back a 2xx JSON answer until its last chunk, to seal its personal fields."""
        assert self.seal_answer is not None
        seal = self.seal_answer
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def sealing(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                types = [v for k, v in message.get("headers", []) if k.lower() == b"content-type"]
                if 200 <= message["status"] < 300 and types and types[0].startswith(b"application/json"):
                    start = message
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = seal(institution_id, b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return sealing

    def _admin(self, headers: list[tuple[str, str]]) -> str:
        values = [v for k, v in headers if k.lower() == "authorization"]
        token = values[0].removeprefix("Bearer ").strip() if len(values) == 1 else ""
        label = self.admin_token(token) if token else None
        if label is None:
            raise CentreError(401, "admin_unauthorised", "the admin API needs Authorization: Bearer <admin token>")
        return label

    def _limit(self, path: str, institution_id: str) -> int:
        """The route's body limit: a material's or filing document's declared size, else the JSON limit."""
        material = _MATERIAL.match(path)
        if material:
            row = self.store.one(
                "SELECT record FROM applications WHERE id = ? AND institution_id = ?", material[1], institution_id
            )
            declared = json.loads(row["record"])["application"].get("materials", []) if row else []
            return _declared(declared, material[2])
        document = _FILING_DOCUMENT.match(path)
        if document:
            row = self.store.one("SELECT filing FROM institutions WHERE id = ?", institution_id)
            return _declared(json.loads(row["filing"]) if row else [], document[1])
        return JSON_LIMIT


def _declared(materials: list[dict[str, Any]], material_id: str) -> int:
    for m in materials:
        if m.get("id") == material_id and isinstance(m.get("size"), int):
            return min(int(m["size"]), MATERIAL_LIMIT)
    return 0  # not declared: the route answers 404 for an empty body; no bytes are worth reading


def own_base(scope: Mapping[str, Any]) -> str:
    """The scheme and authority the server listens on (the socket's, not a client's ``Host`` header)."""
    host, port = scope.get("server") or ("127.0.0.1", 80)
    scheme = scope.get("scheme", "http")
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")


def raw_target(scope: Mapping[str, Any], public_url: str | None) -> str:
    """The request's target as sent (raw path and query) on the centre's own scheme and authority."""
    base = public_url.rstrip("/") if public_url else own_base(scope)
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string") or b""
    return base + raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def _read(scope: dict[str, Any], receive: Any, headers: list[tuple[str, str]], limit: int) -> bytes:
    lengths = [v for k, v in headers if k.lower() == "content-length"]
    if lengths and lengths[0].strip().isdigit() and int(lengths[0]) > limit:
        raise _too_large(scope, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(scope, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _too_large(scope: dict[str, Any], limit: int) -> CentreError:
    return CentreError(
        413, "payload_too_large", f"the body of {scope['method']} {scope['path']} may be at most {limit} bytes"
    )


async def _problem(send: Any, exc: CentreError, request_id: str | None) -> None:
    body = json.dumps(exc.problem(request_id), ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    if exc.status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
