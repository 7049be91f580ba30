"""The optional webhook receiver: the centre pushes events instead of waiting for the next poll.

A delivery is applied only when its RFC 9421 signature verifies with the centre key from the
enrolment bundle (``sdk.verify_webhook``); it is deduplicated by event id in the same
transaction that applies it, so a retried delivery and the same event read from the feed have
one effect. Anything else gets 401 and leaves no trace but an audit line. The feed stays the
source of truth: webhooks make the agent faster, never necessary.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sdk
from agent.pipeline.context import StageContext
from agent.pipeline.track import handle_event
from sdk.gm.sm2 import Sm2PrivateKey

__all__ = ["WebhookReceiver"]

log = logging.getLogger("regbridge.agent.webhook")
MAX_BODY = 256 * 1024


class WebhookReceiver:
    def __init__(
        self, ctx: StageContext, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None
    ) -> None:
        self.ctx = ctx
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self._body()
                if isinstance(body, int):  # too large or malformed: answered, and the rest is not read
                    self.close_connection = True
                    self.send_error(body)
                    return
                status = receiver.receive(self.command, list(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _body(self) -> bytes | int:
                """The request body, from Content-Length or chunked (RFC 9112 §7.1), at most MAX_BODY bytes;
                else the status to answer: 413 too large, 400 malformed."""
                encodings = [e.strip().lower() for e in self.headers.get_all("Transfer-Encoding") or []]
                if encodings:
                    return _read_chunked(self, MAX_BODY) if encodings[-1] == "chunked" else 400
                lengths = self.headers.get_all("Content-Length") or ["0"]
                if len(set(lengths)) != 1 or not lengths[0].strip().isdigit():
                    return 400
                length = int(lengths[0])
                return 413 if length > MAX_BODY else self.rfile.read(length)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = public_url or f"http://{host}:{self.port}/webhook"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)
        self.received = 0
        self.refused = 0
        #: the bank's SM2 encryption key: a delivery sealed to it is opened, one that does not open refused
        self.decryption_key: Sm2PrivateKey | Sequence[Sm2PrivateKey] | None = None

    def receive(self, method: str, headers: list[tuple[str, str]], body: bytes) -> int:
        ctx = self.ctx
        keys = {ctx.trust.centre_key_id: ctx.trust.centre_public_key()}
        try:
            event = sdk.verify_webhook(method=method, url=self.url, headers=headers, body=body, centre_keys=keys,
                                       decryption_key=self.decryption_key)  # fmt: skip
        except sdk.SignatureError as exc:
            self.refused += 1
            ctx.audit.append("webhook.refused", "", "refused", reason=str(exc)[:200])
            log.warning("webhook delivery refused", extra={"reason": str(exc)[:200]})
            return 401
        with ctx.store.transaction():  # idempotent by event id, whichever instance receives it
            if ctx.store.claim_event(event.event_id, event.sequence):
                handle_event(ctx, event)
                self.received += 1
        ctx.supervisor.wake()
        return 204

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_chunked(handler: BaseHTTPRequestHandler, limit: int) -> bytes | int:
    """A chunked body (its trailers skipped); 400 when malformed, 413 when over ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        line = handler.rfile.readline(1024)
        try:
            length = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            return 400
        if length == 0:
            while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return b"".join(chunks)
        size += length
        if size > limit:
            return 413
        chunks.append(handler.rfile.read(length))
        handler.rfile.readline(8)  # the CRLF after the chunk
