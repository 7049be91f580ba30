"""The notify receiver of a provincial platform: notices it pushes to the mortgagee bank (docs/dialects.md).

The platform pushes 查封, 解封, 异议 and 产权变动 on a unit to the bank's notify URL, in its envelope
(:mod:`sdk.dialects.province`). A push is applied only when it opens: the platform's signing key
from enrolment (never one sent with the message), the timestamp within the window, a nonce not seen
before, ``encKey`` sealed to the bank's key and ``encData`` intact. Anything else is answered with
its refusal code (HTTP 401) and leaves an audit line only.

An applied notice is the notice event docs/api.md §9a defines (:func:`apply_notice`), for every
application of the bank on that 不动产单元号 (any stage): one receipt line for the loan system
(``事件`` ``notice_seizure`` …, ``状态`` 查封通知 …, the unit, the platform's notice number and the
mortgage's 证明号 in ``原因``) — the same line a sealed 查封登记通知书 or the collateral watch writes,
so one 查封 is one line whichever path saw it first; one open ``collateral`` alert (``regbridge
status`` shows it with what to do); one audit record. A notice on a unit the bank holds no
application for is audited and acknowledged.

The replay window is kept in the state store (:class:`StoredNonceWindow`): a push replayed after the
agent restarted (or to another instance on a shared state) is still refused (``4013``) while its
timestamp is inside the window; older entries are forgotten as new pushes come in.

Refusals are audited at a bounded rate (:class:`RefusalThrottle`): per remote address, the first ``limit``
(10) refusals of each minute get an audit record and a log line each; the rest of that minute are only
counted, and one summary record (outcome ``suppressed``: the address, the window, how many, by code) is written
when the window ends — so a stranger's flood cannot fill the audit log or the disk. Every refusal is still
answered with its code.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.pipeline.context import StageContext
from agent.pipeline.outbox import (
    NOTICE_EVENTS,
    collateral_alert,
    notice_announced,
    queue_receipt,
    report_collateral,
)
from agent.state.store import StateStore
from sdk.dialects.fields import FieldDictionary
from sdk.dialects.province import (
    DEFAULT_MAX_SKEW,
    EnvelopeRefused,
    NonceWindow,
    Opened,
    PeerDirectory,
    answer,
    open_envelope,
    parse_json,
)
from sdk.gm.sm2 import Sm2PrivateKey

__all__ = ["NOTICE_TITLES", "PlatformNoticeReceiver", "RefusalThrottle", "StoredNonceWindow", "apply_notice"]

log = logging.getLogger("regbridge.agent.notify")
MAX_BODY = 256 * 1024
#: the notice kinds of docs/api.md §9a the platform pushes, and how branch staff read them
NOTICE_TITLES = {"seizure": "查封", "seizure_release": "解封", "objection": "异议", "ownership_change": "产权变动"}


class StoredNonceWindow(NonceWindow):
    """The replay window of :class:`~sdk.dialects.province.NonceWindow`, kept in the state store
    (:meth:`~agent.state.store.StateStore.claim_nonce`) instead of memory: it survives a restart.

    A nonce is remembered for ``2 × seconds`` (a timestamp may be ``seconds`` early or late), then
    forgotten: by then its message is refused by its timestamp.
    """

    def __init__(self, store: StateStore, seconds: float = DEFAULT_MAX_SKEW) -> None:
        super().__init__(seconds)
        self.store = store

    def admit(self, app_id: str, nonce: str, *, now: float | None = None) -> bool:
        """``True`` the first time ``nonce`` is seen from ``app_id`` in the window (before or after a restart)."""
        at = time.time() if now is None else now
        with self._lock:
            return self.store.claim_nonce(app_id, nonce, at=at, keep_seconds=2 * self.seconds)


def apply_notice(ctx: StageContext, fields: FieldDictionary, opened: Opened) -> int:
    """Apply one opened notice as the notice events of docs/api.md §9a; answers how many loans it touches.

    For every application of the bank on the notice's 不动产单元号 (``BDCDYH``):

    - a 查封, 解封 or 异议 is the collateral event a sealed notice (``notice.issued``) or the collateral watch
      reports (:func:`agent.pipeline.outbox.report_collateral`): one receipt line (事件 ``notice_<kind>``,
      keyed by unit, restriction and event, so the same 查封 seen again by any path writes nothing more), one
      alert ``collateral:<证明号>:<event>`` (a 解封 clears the 查封's), one audit record;
    - a 产权变动 is one receipt line (事件 ``notice_ownership_change``) per notice number and an alert;
    - when the push names the county centre's sealed notice (``notice_id``), that notice is announced as a
      ``notice.issued`` is: fetched through the platform, verified against its centre's anchors and stored.

    The restriction is the one the push names (``restriction_id``), else its 通知编号 (``TZBH``).

    Raises:
        ValueError: the notice has no unit, or its ``TZLX`` is not in the dialect's code table.
    """
    data = opened.data if isinstance(opened.data, dict) else {}
    unit = data.get("BDCDYH")
    if not isinstance(unit, str) or not unit:
        raise ValueError("the notice names no 不动产单元号 (BDCDYH)")
    kind = fields.to_sdk_code("TZLX", str(data.get("TZLX", "")))
    title = NOTICE_TITLES.get(kind, kind)
    number = str(data.get("TZBH") or opened.nonce)
    details = fields.from_dialect({k: v for k, v in data.items() if k not in ("BDCDYH", "TZLX", "TZBH")})
    subject = str(details.get("restriction_id") or number)
    sealed = str(details.get("notice_id") or "")
    what = NOTICE_EVENTS.get(kind)
    touched = 0
    with ctx.store.transaction():
        for app in ctx.store.applications():
            units = {p.get("unit_id") for p in app.payload.get("properties", []) if isinstance(p, dict)}
            if unit not in units:
                continue
            certificate = next((str(c["certificate_number"]) for c in ctx.store.certificates(reference=app.reference)
                                if c["certificate_number"]), app.application_id or app.reference)  # fmt: skip
            reason = f"平台通知{number}：不动产单元{unit}已{title}（不动产登记证明 {certificate}）"
            if what is not None:
                report_collateral(ctx, app, certificate, unit, subject, what, reason, event=f"notice_{kind}",
                                  status=f"{title}通知", notice_number=number)  # fmt: skip
            elif queue_receipt(ctx, app, f"notice:{number}", f"notice_{kind}", status=f"{title}通知", reason=reason,
                               notice_number=number, application_id=app.application_id):  # fmt: skip
                ctx.store.raise_alert(f"collateral:{certificate}:{kind}", collateral_alert(ctx, app, reason))
            if sealed:
                notice_announced(ctx, sealed, app.reference)
            touched += 1
        ctx.audit.append("platform.notice", unit, kind, number=number, applications=touched)
    ctx.supervisor.wake()
    return touched


@dataclass
class _Window:
    started: float
    written: int = 0
    codes: Counter[str] = field(default_factory=Counter)  # the refusals counted, not written, by code


class RefusalThrottle:
    """Audit refused pushes at a bounded rate per remote address (a stranger's flood must not fill the disk).

    Each address has a window of ``seconds`` from its first refusal: the first ``limit`` refusals in it are
    written (an audit record each); the rest are counted; when the window has ended (:meth:`flush`, called on
    every push and by the receiver's serving loop about every half second) one summary record is written for
    it — ``platform.notice.refused``, outcome ``suppressed``, detail ``source``, ``since``/``until`` (ISO),
    ``count`` and ``codes`` (``4011×120,4001×3``). At most ``max_sources`` addresses are tracked; refusals from
    any more are counted under the source ``*`` (the memory stays bounded too).

    Args:
        limit: records written per address and window.
        seconds: the window.
        max_sources: addresses tracked at once.
    """

    def __init__(self, limit: int = 10, seconds: float = 60.0, max_sources: int = 1024) -> None:
        self.limit, self.seconds, self.max_sources = limit, seconds, max_sources
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def admit(self, source: str, code: str, *, now: float | None = None) -> tuple[bool, list[dict[str, Any]]]:
        """Whether this refusal from ``source`` gets its own record, and the summaries of windows that ended."""
        now = time.time() if now is None else now
        with self._lock:
            ended = self._ended(now)
            if source not in self._windows and len(self._windows) >= self.max_sources:
                source = "*"
            window = self._windows.setdefault(source, _Window(now))
            if window.written < self.limit:
                window.written += 1
                return True, ended
            window.codes[code] += 1
            return False, ended

    def flush(self, *, now: float | None = None, everything: bool = False) -> list[dict[str, Any]]:
        """The summaries of the windows that ended by ``now`` (``everything``: of every window: on stop)."""
        now = time.time() if now is None else now
        with self._lock:
            return self._ended(float("inf") if everything else now)

    def _ended(self, now: float) -> list[dict[str, Any]]:
        summaries = []
        for source, window in list(self._windows.items()):
            if now - window.started < self.seconds:
                continue
            del self._windows[source]
            if window.codes:
                until = min(now, window.started + self.seconds)
                summaries.append({
                    "source": source, "count": sum(window.codes.values()),
                    "codes": ",".join(f"{c}×{n}" for c, n in sorted(window.codes.items())),
                    "since": datetime.fromtimestamp(window.started, UTC).isoformat(timespec="seconds"),
                    "until": datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds"),
                })  # fmt: skip
        return summaries


class PlatformNoticeReceiver:
    """An HTTP receiver (a thread) for a platform's pushed notices.

    Args:
        ctx: the stages' context (state store, audit, supervisor).
        fields: the dialect's field dictionary (its ``TZLX`` code table).
        recipient: the bank's SM2 encryption key (the platform seals notices to its public half).
        peers: the platform's signing key by ``appId``, from enrolment.
        window: the replay window (default: kept in the state store, :class:`StoredNonceWindow`, as long
            as ``max_skew``).
        max_skew: the timestamp window, seconds either way.
        throttle: how refusals are audited (default: 10 records a minute per remote address, the rest counted).
        idle_seconds: how long a connection may stay silent (reading a request, or between requests) before it
            is closed: a stranger's idle connections must not hold a thread each for ever.
        max_connections: connections served at once (a thread each); more are closed at once, unanswered.
    """

    def __init__(
        self,
        ctx: StageContext,
        fields: FieldDictionary,
        *,
        recipient: Sm2PrivateKey,
        peers: PeerDirectory,
        window: NonceWindow | None = None,
        max_skew: float = DEFAULT_MAX_SKEW,
        host: str = "127.0.0.1",
        port: int = 0,
        throttle: RefusalThrottle | None = None,
        idle_seconds: float = 15.0,
        max_connections: int = 64,
    ) -> None:
        self.ctx, self.fields, self.recipient, self.peers = ctx, fields, recipient, peers
        self.throttle = throttle or RefusalThrottle()
        self.max_skew = max_skew
        self.window = window or StoredNonceWindow(ctx.store, max_skew)
        self.received = 0
        self.refused = 0
        receiver = self

        slots = threading.BoundedSemaphore(max_connections)

        class Handler(BaseHTTPRequestHandler):
            timeout = idle_seconds  # the socket's: a silent connection is closed, its thread freed

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                length = self.headers.get("Content-Length", "0")
                if not length.isdigit() or int(length) > MAX_BODY:
                    self.close_connection = True
                    self.send_error(413 if length.isdigit() else 400)
                    return
                status, document = receiver.receive(
                    dict(self.headers.items()), self.rfile.read(int(length)), source=str(self.client_address[0])
                )
                payload = json.dumps(document, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            def service_actions(self) -> None:  # serve_forever's loop, about every half second
                receiver.summarise()

            def process_request(self, request: Any, client_address: Any) -> None:
                if not slots.acquire(blocking=False):  # a flood of connections: no thread for this one
                    self.shutdown_request(request)
                    return
                try:
                    super().process_request(request, client_address)
                except BaseException:
                    slots.release()
                    raise

            def process_request_thread(self, request: Any, client_address: Any) -> None:
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    slots.release()

        self.server = Server((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/notify"
        self._thread = threading.Thread(target=self.server.serve_forever, name="platform-notify", daemon=True)

    def summarise(self, *, now: float | None = None, everything: bool = False) -> None:
        """Write the summary record of each refusal window that has ended by ``now`` (:class:`RefusalThrottle`)."""
        for summary in self.throttle.flush(now=now, everything=everything):
            self._summary(summary)

    def _summary(self, summary: dict[str, Any]) -> None:
        self.ctx.audit.append("platform.notice.refused", "", "suppressed", **summary)
        log.warning("platform notices refused and not audited one by one", extra=summary)

    def receive(self, headers: dict[str, str], body: bytes, *, source: str = "") -> tuple[int, dict[str, Any]]:
        """Check and apply one push (from the remote address ``source``); answers the HTTP status and the dialect's
        answer document. A refusal is audited within the throttle's bounds."""
        try:
            document = parse_json(body)
            opened = open_envelope(
                headers,
                document,
                recipient=self.recipient,
                peers=self.peers,
                window=self.window,
                max_skew=self.max_skew,
            )
        except (ValueError, EnvelopeRefused) as exc:
            refused = exc if isinstance(exc, EnvelopeRefused) else EnvelopeRefused("4001", "the body is not JSON")
            self.refused += 1
            written, ended = self.throttle.admit(source, refused.code)
            for summary in ended:
                self._summary(summary)
            if written:
                self.ctx.audit.append("platform.notice.refused", "", "refused", code=refused.code,
                                      reason=refused.reason, source=source)  # fmt: skip
                log.warning("platform notice refused", extra={"code": refused.code, "reason": refused.reason[:200]})
            return 401, answer(refused.code, refused.reason)
        try:
            apply_notice(self.ctx, self.fields, opened)
        except ValueError as exc:
            self.ctx.audit.append("platform.notice.refused", "", "refused", code="4220", reason=str(exc)[:200])
            return 422, answer("4220", str(exc))
        self.received += 1
        return 200, answer("0000")

    def start(self) -> PlatformNoticeReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.summarise(everything=True)  # what the last windows counted
