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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sdk
from agent.pipeline.context import StageContext
from agent.pipeline.track import handle_event

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
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self.send_error(413)
                    return
                body = self.rfile.read(length)
                status = receiver.receive(self.command, list(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = public_url or f"http://{host}:{self.port}/webhook"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)
        self.received = 0
        self.refused = 0

    def receive(self, method: str, headers: list[tuple[str, str]], body: bytes) -> int:
        ctx = self.ctx
        keys = {ctx.trust.centre_key_id: ctx.trust.centre_public_key()}
        try:
            event = sdk.verify_webhook(method=method, url=self.url, headers=headers, body=body, centre_keys=keys)
        except sdk.SignatureError as exc:
            self.refused += 1
            ctx.audit.append("webhook.refused", "", "refused", reason=str(exc)[:200])
            log.warning("webhook delivery refused", extra={"reason": str(exc)[:200]})
            return 401
        with ctx.store.transaction():
            if not ctx.store.event_seen(event.event_id):
                handle_event(ctx, event)
                ctx.store.mark_event(event.event_id, event.sequence)
                self.received += 1
        ctx.supervisor.wake()
        return 204

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
