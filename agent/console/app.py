"""The console's pages and actions (Starlette + Jinja2, rendered on the server; no front-end build).

Every page but ``/`` (the login form to a visitor) needs a session: a page redirects to ``/``, an
``/api/…`` call answers 401; a role too low answers 403. Every form carries the session's CSRF token
(checked on each POST, with the Origin header when the browser sends one); the session cookie is
signed, ``HttpOnly``, ``SameSite=Strict``, and ``Secure`` in LAN mode (TLS, or behind a proxy). Each
action is recorded in the audit log with the user (``console:<name>``). Names and ID numbers are
never shown: what the pages show is what ``regbridge status`` and ``show`` show.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path, PurePath
from typing import Any, ClassVar, Protocol
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from agent import labels
from agent.config import AgentConfig
from agent.console.users import User, UserStore
from agent.pipeline.context import StageContext
from agent.state.audit import AuditLog
from agent.state.store import StateStore
from connectors.documents import DocumentStore

__all__ = ["ConsoleHost", "create_app"]

HERE = Path(__file__).resolve().parent
STAGES_ZH = labels.STAGES


class ConsoleHost(Protocol):
    """What the console needs of an agent (:class:`agent.daemon.Agent` has it all)."""

    @property
    def config(self) -> AgentConfig: ...
    @property
    def store(self) -> StateStore: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def context(self) -> StageContext: ...
    @property
    def documents(self) -> DocumentStore: ...
    @property
    def person_key(self) -> bytes: ...
    @property
    def data_dir(self) -> Path: ...


class _Failures:
    """Failed logins per name: after 5 in 5 minutes, that name waits (a guessing slowdown, not a lock-out)."""

    def __init__(self) -> None:
        self._seen: dict[str, list[float]] = {}

    def blocked(self, name: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._seen.get(name, []) if now - t < 300]
        self._seen[name] = recent
        return len(recent) >= 5

    def failed(self, name: str) -> None:
        if len(self._seen) > 10_000:  # names made up by a guesser must not grow this without end
            now = time.monotonic()
            self._seen = {n: ts for n, ts in self._seen.items() if ts and now - ts[-1] < 300}
        self._seen.setdefault(name, []).append(time.monotonic())

    def clear(self, name: str) -> None:
        self._seen.pop(name, None)


def create_app(host: ConsoleHost, *, secure_cookies: bool = False) -> Starlette:
    """The console for ``host``; ``secure_cookies`` in LAN mode (TLS here, or at the bank's reverse proxy)."""
    cfg = host.config
    users = UserStore(host.data_dir / "console-users.json")
    failures = _Failures()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    tz = cfg.timezone
    templates.env.filters["local"] = lambda at: labels.when(at, tz)
    templates.env.filters["mask"] = labels.for_staff  # masked, and no pre-flight code nor pointer
    templates.env.filters["stage"] = labels.stage
    templates.env.filters["cstatus"] = labels.centre_status
    templates.env.filters["btype"] = labels.business_type
    templates.env.filters["fee"] = labels.fee_status
    templates.env.filters["paper"] = labels.paper_status
    templates.env.filters["cert"] = labels.certificate_stage
    templates.env.filters["qkind"] = labels.quarantine_kind
    templates.env.filters["qstatus"] = labels.quarantine_status
    templates.env.filters["material"] = labels.material
    templates.env.filters["chinese"] = labels.chinese_or
    templates.env.filters["basename"] = lambda path: PurePath(str(path or "")).name
    templates.env.filters["urlq"] = lambda text: quote(str(text), safe="")
    templates.env.globals["alert_title"] = labels.alert_title
    templates.env.globals["alert_fix"] = labels.alert_fix_zh

    # the sessions logged in now, by a random id the signed cookie carries: logging out (or a restart)
    # ends a session for good, so a copied cookie is worthless afterwards, and a session id planted
    # before the login is never the one after it (no fixation)
    live: dict[str, tuple[str, float]] = {}
    lifetime = cfg.console.session_minutes * 60

    def current(request: Request) -> User | None:
        sid = request.session.get("sid")
        entry = live.get(sid) if isinstance(sid, str) else None
        now = time.monotonic()
        if entry is None or entry[1] < now:
            if entry is not None:
                live.pop(str(sid), None)
            return None
        live[str(sid)] = (entry[0], now + lifetime)  # ends after session_minutes without use
        return users.get(entry[0])

    def csrf(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def render(request: Request, name: str, user: User | None, status: int = 200, **ctx: Any) -> Response:
        message = request.session.pop("flash", None) if user is not None else None
        return templates.TemplateResponse(
            request,
            name,
            {
                "user": user,
                "csrf": csrf(request),
                "institution": cfg.centre.institution_name,
                "message": message,
                **ctx,
            },
            status_code=status,
        )

    def flash(request: Request, message: str, to: str) -> Response:
        """The result of an action, shown once on the next page (kept in the session, never in the URL)."""
        request.session["flash"] = message
        return RedirectResponse(to, 303)

    def denied(request: Request, user: User | None) -> Response:
        if request.url.path.startswith("/api/"):
            code = 401 if user is None else 403
            return JSONResponse({"error": "login required" if user is None else "forbidden"}, code)
        if user is None:
            return RedirectResponse("/", 303)
        return render(request, "denied.html", user, 403, title="无权限")

    def refused_form(request: Request, user: User | None) -> Response:
        return render(request, "denied.html", user, 403, title="页面已过期",
                      why="页面已过期或不是从本控制台提交的，请刷新页面后重试。")  # fmt: skip

    async def checked_form(request: Request) -> dict[str, str] | None:
        """The POSTed form if its CSRF token is the session's and its Origin (when given) is this site."""
        origin = request.headers.get("origin")
        if origin and origin != "null":
            expected = request.headers.get("host", "")
            if urlsplit(origin).netloc != expected:
                return None
        form = {k: str(v) for k, v in (await request.form()).items()}
        token = request.session.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(form.get("csrf", ""), token):
            return None
        return form

    def actor(user: User) -> str:
        return f"console:{user.name}"

    # --- pages ----------------------------------------------------------------------------------

    async def home(request: Request) -> Response:
        user = current(request)
        if user is None:
            return render(request, "login.html", None, title="登录", error=request.query_params.get("error"))
        from agent.state.status import snapshot

        snap = snapshot(host.store)
        needs = [{**e, **labels.need(e, tz)} for e in snap["needing_person"]]
        if request.query_params.get("view") == "it" and user.can("admin"):
            return render(request, "overview_it.html", user, title="技术视图（银行IT）", snap=snap)
        return render(request, "overview.html", user, title="概览", snap=snap, needs=needs,
                      inboxes=[i.name for i in cfg.inbox])  # fmt: skip

    async def login(request: Request) -> Response:
        form = await checked_form(request)
        if form is None:
            return RedirectResponse("/?error=csrf", 303)
        name = form.get("username", "").strip()
        if failures.blocked(name):
            host.audit.append("console.login", name, "refused", actor=f"console:{name}", reason="too many failures")
            return RedirectResponse("/?error=wait", 303)
        user = users.authenticate(name, form.get("password", ""))
        if user is None:
            failures.failed(name)
            host.audit.append("console.login", name, "failed", actor=f"console:{name}")
            return RedirectResponse("/?error=bad", 303)
        failures.clear(name)
        old_sid = request.session.get("sid")
        if isinstance(old_sid, str):
            live.pop(old_sid, None)
        request.session.clear()  # a fresh session id (and CSRF token) at login: no fixation
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        for gone in [k for k, (_, until) in live.items() if until < now]:
            live.pop(gone, None)
        live[sid] = (user.name, now + lifetime)
        request.session["sid"] = sid
        request.session["user"] = user.name
        csrf(request)
        host.audit.append("console.login", user.name, "ok", actor=actor(user), role=user.role)
        return RedirectResponse("/", 303)

    async def logout(request: Request) -> Response:
        user = current(request)
        form = await checked_form(request)
        if user is not None and form is not None:
            host.audit.append("console.logout", user.name, "ok", actor=actor(user))
            live.pop(str(request.session.get("sid")), None)
            request.session.clear()
        return RedirectResponse("/", 303)

    async def loans(request: Request) -> Response:
        """GET: the list with filters (no personal data in the URL); POST: a search, whose query — an ID
        number among them — travels in the body only and comes back unmasked in the search box alone, so
        the user sees what they typed and can correct it (the rest of the page shows it masked)."""
        user = current(request)
        if user is None:
            return denied(request, user)
        from agent.state.lookup import looks_like_id_number, masked_query, search

        if request.method == "POST":
            form = await checked_form(request)
            if form is None:
                return refused_form(request, user)
            params = form
        else:
            params = {k: str(v) for k, v in request.query_params.items()}
        q = params.get("q", "").strip()
        stage = params.get("stage", "")
        inbox = params.get("inbox", "")
        if q and request.method == "GET" and looks_like_id_number(q):
            request.session["flash"] = "证件号码请在查找框中输入后点“查询”（不经网址传送）"
            return RedirectResponse("/loans", 303)
        if q:
            matches = search(host.store, q, host.person_key)
            rows = [a for a in (host.store.application(m.reference) for m in matches) if a is not None]
            host.audit.append("console.search", masked_query(q), "ok", actor=actor(user), found=len(rows))
        else:
            rows = host.store.applications(*((stage,) if stage else ()))
        if inbox:
            rows = [a for a in rows if a.inbox == inbox]
        if stage and q:
            rows = [a for a in rows if a.stage == stage]
        rows = sorted(rows, key=lambda a: a.updated_at, reverse=True)[:200]
        return render(
            request,
            "loans.html",
            user,
            title="贷款",
            rows=rows,
            q=q if request.method == "POST" else masked_query(q),
            searched=masked_query(q),
            stage=stage,
            inbox=inbox,
            stages=list(STAGES_ZH),
            inboxes=[i.name for i in cfg.inbox],
        )

    async def loan(request: Request) -> Response:
        user = current(request)
        if user is None:
            return denied(request, user)
        from agent.state.lookup import loan_history

        history = loan_history(host.store, request.path_params["loan"], host.data_dir / "audit.log")
        if not history.applications and not history.quarantine:
            return render(request, "notfound.html", user, 404, title="未找到", what=request.path_params["loan"])
        if request.query_params.get("view") == "it":
            if not user.can("admin"):
                return denied(request, user)
            return render(
                request, "loan_it.html", user, title=f"贷款 {history.loan_no} · 技术视图（银行IT）", h=history
            )
        return render(
            request,
            "loan.html",
            user,
            title=f"贷款 {history.loan_no}",
            h=history,
            events=labels.narrate(history.timeline, tz),
        )

    async def quarantine(request: Request) -> Response:
        user = current(request)
        if user is None:
            return denied(request, user)
        from agent.state.lookup import row_ref
        from agent.state.status import quarantine_reasons

        show_all = request.query_params.get("all") == "1"
        items = [
            {**q, "row_ref": row_ref(q["row"]), "reason": quarantine_reasons(q)}
            for q in host.store.quarantined(None if show_all else "open")
        ]
        return render(request, "quarantine.html", user, title="隔离区", items=items, show_all=show_all,
                      )  # fmt: skip

    async def quarantine_action(request: Request) -> Response:
        user = current(request)
        if user is None or not user.can("operator"):
            return denied(request, user)
        if request.path_params["action"] not in ("requeue", "dismiss"):  # not "anything else dismisses"
            return render(request, "notfound.html", user, 404, title="未找到", what=request.url.path)
        form = await checked_form(request)
        if form is None:
            return refused_form(request, user)
        from agent.pipeline.requeue import dismiss, requeue

        item = int(request.path_params["item"])
        if request.path_params["action"] == "requeue":
            result = requeue(host.context, item, actor=actor(user))
        else:
            result = dismiss(host.context, item, form.get("reason", ""), actor(user))
        message = f"隔离区 #{item}：{labels.requeue_outcome(result.outcome, result.detail)}"
        return flash(request, message, "/quarantine")

    async def certificates(request: Request) -> Response:
        user = current(request)
        if user is None:
            return denied(request, user)
        certs = sorted(host.store.certificates(), key=lambda c: c["updated_at"], reverse=True)[:300]
        loans_of = {c["reference"]: (host.store.application(c["reference"]) or None) for c in certs}
        return render(request, "certificates.html", user, title="登记证明", certs=certs, loans_of=loans_of)

    async def certificate_file(request: Request) -> Response:
        user = current(request)
        if user is None:
            return denied(request, user)
        cert = host.store.certificate(request.path_params["cid"])
        if cert is None or cert["stage"] != "stored" or not cert.get("store_key"):
            return render(request, "notfound.html", user, 404, title="未找到", what="这份登记证明（或尚未验证存档）")
        if str(cert.get("error") or "").startswith("re-check:"):  # failed its last re-check: not handed out
            host.audit.append("console.certificate_refused", cert["reference"], "refused", actor=actor(user),
                              certificate=cert["certificate_id"])  # fmt: skip
            return Response(f"该证明复核未通过，不得使用（regbridge certificates check）：{cert['error']}", 409,
                            media_type="text/plain; charset=utf-8")  # fmt: skip
        try:  # the file as stored, checked against what was verified now, not only at the last re-check
            data: bytes | None = host.documents.get(cert["store_key"])
        except FileNotFoundError:
            data = None
        if data is None or (cert["sha256"] and hashlib.sha256(data).hexdigest() != cert["sha256"]):
            why = ("文件已不在文档库中 (the stored file is missing from the document store)" if data is None else
                   "文件入库后被改动或替换，与入库时核验的文件不一致 (the stored file is not the one verified when "
                   "it was stored: changed at rest)")  # fmt: skip
            host.store.update_certificate(cert["certificate_id"], error=f"re-check: {why}")  # a re-check clears it
            host.audit.append("console.certificate_refused", cert["reference"], "refused", actor=actor(user),
                              certificate=cert["certificate_id"], reason=why)  # fmt: skip
            return Response(f"该证明复核未通过，不得使用（regbridge certificates check）：re-check: {why}", 409,
                            media_type="text/plain; charset=utf-8")  # fmt: skip
        name = (cert["certificate_number"] or cert["certificate_id"]) + Path(cert["store_key"]).suffix
        disposition = "attachment" if request.query_params.get("download") else "inline"
        host.audit.append("console.certificate_opened", cert["reference"], "ok", actor=actor(user),
                          certificate=cert["certificate_id"], how=disposition)  # fmt: skip
        kind = "application/pdf" if cert["store_key"].endswith(".pdf") else "application/octet-stream"
        return Response(data, media_type=kind,
                        headers={"Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}"})  # fmt: skip

    async def fees(request: Request) -> Response:
        user = current(request)
        if user is None:
            return denied(request, user)
        from agent.pipeline.fees import fee_listing

        listing = fee_listing(host.store)
        return render(request, "fees.html", user, title="登记费", listing=listing, auto_pay=cfg.fees.auto_pay,
                      )  # fmt: skip

    async def fee_pay(request: Request) -> Response:
        user = current(request)
        if user is None or not user.can("operator"):
            return denied(request, user)
        if await checked_form(request) is None:
            return refused_form(request, user)
        from agent.pipeline.fees import FeeNotPayable, pay_now

        ref = request.path_params["ref"]
        try:
            receipt = pay_now(host.context, ref)
        except (FeeNotPayable, KeyError) as exc:
            host.audit.append("console.fee_pay", ref, "refused", actor=actor(user), reason=str(exc))
            message = f"{ref}：现在不能缴费（{labels.chinese_or(str(exc), '登记中心尚未开具缴费通知或已缴')}）"
        else:
            host.audit.append("console.fee_pay", ref, "ok", actor=actor(user), amount=str(receipt.amount))
            message = f"{ref}：已缴 {receipt.amount} 元，票据号 {receipt.receipt_number}"
        return flash(request, message, "/fees")

    async def transmittals(request: Request) -> Response:
        user = current(request)
        if user is None:
            return denied(request, user)
        return render(request, "transmittals.html", user, title="纸质材料移交", items=host.store.transmittals(),
                      owed=len(host.store.paper_owed()), )  # fmt: skip

    async def transmittal_new(request: Request) -> Response:
        user = current(request)
        if user is None or not user.can("operator"):
            return denied(request, user)
        if await checked_form(request) is None:
            return refused_form(request, user)
        from agent.pipeline.transmittal import make_transmittal

        result = make_transmittal(host.context, cfg.resolve(cfg.transmittal_dir))
        host.audit.append("console.transmittal_made", result.id or "-", "ok", actor=actor(user), count=result.count)
        message = f"移交清单 {result.id}：{result.count} 件" if result.count else "没有待移交的纸质材料"
        return flash(request, message, "/transmittals")

    async def transmittal_pdf(request: Request) -> Response:
        user = current(request)
        if user is None:
            return denied(request, user)
        found = next((t for t in host.store.transmittals() if t["id"] == request.path_params["tid"]), None)
        if found is None or not found.get("pdf_path") or not Path(found["pdf_path"]).is_file():
            return render(request, "notfound.html", user, 404, title="未找到", what="这份移交清单")
        return Response(Path(found["pdf_path"]).read_bytes(), media_type="application/pdf")

    async def transmittal_confirm(request: Request) -> Response:
        user = current(request)
        if user is None or not user.can("operator"):
            return denied(request, user)
        if await checked_form(request) is None:
            return refused_form(request, user)
        tid = request.path_params["tid"]
        try:
            n = host.store.confirm_transmittal(tid)
        except KeyError:
            return render(request, "notfound.html", user, 404, title="未找到", what="这份移交清单")
        host.audit.append("transmittal.delivered", tid, "ok", actor=actor(user), applications=n)
        return flash(request, f"移交清单 {tid}：{n} 件已确认送达", "/transmittals")

    async def audit_page(request: Request) -> Response:
        user = current(request)
        if user is None:
            return denied(request, user)
        return render(request, "audit.html", user, title="审计导出")

    async def audit_export(request: Request) -> Response:
        user = current(request)
        if user is None or not user.can("admin"):
            return denied(request, user)
        from agent.state.audit import export_audit, parse_bound

        p = request.query_params
        fmt = "jsonl" if p.get("format") == "jsonl" else "csv"
        try:
            since = parse_bound(p["from"], tz, end=False) if p.get("from") else None
            until = parse_bound(p["to"], tz, end=True) if p.get("to") else None
        except ValueError:
            return render(request, "denied.html", user, 400, title="日期有误",
                          why="起止日期应为 年-月-日，如 2026-11-30。")  # fmt: skip
        host.audit.append("console.audit_export", f"{p.get('from', '')}..{p.get('to', '')}", "ok", actor=actor(user))
        data, _ = export_audit(host.data_dir / "audit.log", since, until, fmt, tz)
        name = f"audit-{p.get('from') or 'start'}-{p.get('to') or 'now'}.{fmt}"
        kind = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
        return Response(data, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def api_status(request: Request) -> Response:
        user = current(request)
        if user is None:
            return denied(request, user)
        from agent.state.status import snapshot

        return JSONResponse(snapshot(host.store))

    session_key = hmac.new(host.person_key, b"regbridge/console/session/v1", hashlib.sha256).hexdigest()
    routes = [
        Route("/", home),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/loans", loans, methods=["GET", "POST"]),
        Route("/loans/{loan:path}", loan),
        Route("/quarantine", quarantine),
        Route("/quarantine/{item:int}/{action:str}", quarantine_action, methods=["POST"]),
        Route("/certificates", certificates),
        Route("/certificates/{cid}/file", certificate_file),
        Route("/fees", fees),
        Route("/fees/{ref}/pay", fee_pay, methods=["POST"]),
        Route("/transmittals", transmittals),
        Route("/transmittals/new", transmittal_new, methods=["POST"]),
        Route("/transmittals/{tid}/pdf", transmittal_pdf),
        Route("/transmittals/{tid}/confirm", transmittal_confirm, methods=["POST"]),
        Route("/audit", audit_page),
        Route("/audit/export", audit_export),
        Route("/api/status", api_status),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=session_key,
            session_cookie="regbridge_console",
            max_age=cfg.console.session_minutes * 60,
            same_site="strict",
            https_only=secure_cookies,
        )
    ]
    middleware.append(Middleware(_SecurityHeaders, hsts=secure_cookies))
    return Starlette(routes=routes, middleware=middleware)


class _SecurityHeaders:
    """No framing, no sniffing, no caching of pages, a strict content policy; HSTS in LAN mode (ASGI middleware)."""

    HEADERS: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
        (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    ]

    def __init__(self, app: Any, hsts: bool = False) -> None:
        self.app = app
        self.extra = [*self.HEADERS, *([(b"strict-transport-security", b"max-age=31536000")] if hsts else [])]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                present = {k.lower() for k, _ in message["headers"]}
                message["headers"] += [(k, v) for k, v in self.extra if k not in present]
            await send(message)

        await self.app(scope, receive, sending)
