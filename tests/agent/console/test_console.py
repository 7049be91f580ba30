"""The console over HTTP (its real server on loopback, the real agent state): login, roles, CSRF, masking,
actions audited with the user."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.console import ConsoleServer
from agent.daemon import Agent
from sandbox import register

from ..conftest import Branch
from .conftest import PASSWORDS


@pytest.fixture
def agent(worked: Branch) -> Iterator[Agent]:
    a = worked.agent()
    server = ConsoleServer(a, port=0).start()
    a.console_url = server.url  # type: ignore[attr-defined]
    yield a
    server.stop()
    a.close()


def _client(agent: Agent) -> httpx.Client:
    return httpx.Client(base_url=agent.console_url, timeout=30)  # type: ignore[attr-defined]


def _csrf(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(client: httpx.Client, name: str) -> str:
    page = client.get("/").text
    r = client.post("/login", data={"csrf": _csrf(page), "username": name, "password": PASSWORDS[name]},
                    follow_redirects=True)  # fmt: skip
    assert r.status_code == 200 and name in r.text, r.text[:500]
    return r.text


def test_a_visitor_sees_the_login_page_and_nothing_else(agent: Agent) -> None:
    with _client(agent) as c:
        home = c.get("/")
        assert home.status_code == 200 and "登录" in home.text and "DEMO-001" not in home.text
        for path in ("/loans", "/loans/DEMO-001", "/quarantine", "/certificates", "/fees", "/transmittals", "/audit",
                     "/audit/export"):  # fmt: skip
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/", path
        assert c.get("/api/status").status_code == 401
        r = c.post("/quarantine/1/requeue", data={"csrf": "x"}, follow_redirects=False)
        assert r.status_code == 303
        bad = c.post("/login", data={"csrf": _csrf(home.text), "username": "wang.admin", "password": "wrong-pass-1"},
                     follow_redirects=True)  # fmt: skip
        assert "用户名或密码错误" in bad.text
        no_token = c.post("/login", data={"username": "wang.admin", "password": PASSWORDS["wang.admin"]},
                          follow_redirects=True)  # fmt: skip
        assert "页面已过期" in no_token.text and c.get("/api/status").status_code == 401
    audit = (agent.data_dir / "audit.log").read_text()
    assert '"console.login"' in audit and '"failed"' in audit


def test_the_overview_loans_search_and_timeline_are_in_chinese_and_masked(agent: Agent) -> None:
    owner = register.owners_of(1)[0]
    with _client(agent) as c:
        page = login(c, "zhao.viewer")
        assert "各收件夹队列" in page and "需要人工处理的贷款" in page and "DEMO-002" in page
        assert "+08:00" in page  # times in the branch's zone, with the offset
        # an ID number is searched by POST: found; it comes back only in the search box, as typed
        loans_page = c.get("/loans").text
        found = c.post("/loans", data={"csrf": _csrf(loans_page), "q": owner.id_number}).text
        assert "DEMO-001-DYSC" in found and owner.name not in found
        assert found.count(owner.id_number) == 1 and f'name="q" value="{owner.id_number}"' in found
        assert "DEMO-002" not in c.get("/loans", params={"q": "DEMO-001"}).text
        assert "DEMO-002" not in c.get("/loans", params={"stage": "done"}).text
        timeline = c.get("/loans/DEMO-001").text
        for expected in ("时间线", "DEMO-001-DYSC", "第2行", "已提交登记中心", "已验证"):
            assert expected in timeline, expected
        assert "application.submitted" not in timeline and c.get("/loans/DEMO-001?view=it").status_code == 403
        assert owner.id_number not in timeline and owner.name not in timeline
        status = c.get("/api/status").json()
        assert status["inboxes"]["corebank"]["done"] == 1
        # a viewer may look but not act
        q = c.get("/quarantine").text
        assert "重新处理" not in q
        assert c.post("/quarantine/1/dismiss", data={"csrf": _csrf(q), "reason": "x"}).status_code == 403
        assert agent.store.quarantine_item(1)["status"] == "open"  # type: ignore[index]
        assert c.get("/audit/export").status_code == 403


def test_an_operator_requeues_and_dismisses_and_each_action_is_audited_with_the_user(
    agent: Agent, worked: Branch
) -> None:
    with _client(agent) as c:
        login(c, "li.operator")
        page = c.get("/quarantine").text
        ids = [int(i) for i in re.findall(r'<tr id="q(\d+)">', page)]
        assert len(ids) == 2
        assert c.post(f"/quarantine/{ids[0]}/dismiss", data={"reason": "x"}).status_code == 403  # no CSRF token
        r = c.post(f"/quarantine/{ids[0]}/dismiss", data={"csrf": _csrf(page), "reason": "贷款已撤销"},
                   headers={"Origin": "http://evil.example"})  # fmt: skip
        assert r.status_code == 403  # another site's form
        (worked.inbox() / "materials" / "DEMO-002_main_contract.pdf").write_bytes(b"%PDF-1.7 contract")
        done = c.post(f"/quarantine/{ids[0]}/requeue", data={"csrf": _csrf(page)}, follow_redirects=True)
        assert "已重新处理" in done.text
        gone = c.post(f"/quarantine/{ids[1]}/dismiss", data={"csrf": _csrf(page), "reason": "贷款已撤销"},
                      follow_redirects=True)  # fmt: skip
        assert "已撤销" in gone.text and "贷款已撤销" in gone.text
        assert c.get("/audit/export").status_code == 403  # operators do not export the audit
    records = [json.loads(line) for line in (agent.data_dir / "audit.log").read_text().splitlines()]
    acts = {(r["action"], r["actor"]) for r in records}
    assert ("quarantine.requeued", "console:li.operator") in acts
    assert ("quarantine.dismissed", "console:li.operator") in acts


def test_certificates_open_and_the_admin_exports_the_audit(agent: Agent) -> None:
    with _client(agent) as c:
        login(c, "wang.admin")
        page = c.get("/certificates").text
        assert "签章已验证" in page
        link = re.search(r'href="(/certificates/[^"]+/file)"', page)
        assert link
        pdf = c.get(link.group(1))
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert c.get(link.group(1), params={"download": "1"}).headers["content-disposition"].startswith("attachment")
        # one that failed its re-check (regbridge certificates check: a revoked seal) is not handed out
        cid = link.group(1).split("/")[2]
        # ... nor one changed or replaced since its last re-check (break20): checked as it is handed out
        stored = agent.store.certificate(cid)
        assert stored is not None
        path = Path(stored["location"])
        original = path.read_bytes()
        path.write_bytes(original + b"%%EOF\n")
        changed = c.get(link.group(1))
        assert changed.status_code == 409 and "入库后被改动或替换" in changed.text, changed.text
        path.write_bytes(original)  # put back: still refused until a re-check clears the mark
        assert c.get(link.group(1)).status_code == 409
        agent.store.update_certificate(cid, error=None)
        assert c.get(link.group(1)).status_code == 200
        agent.store.update_certificate(cid, error="re-check: the seal certificate is revoked")
        refused = c.get(link.group(1))
        assert refused.status_code == 409 and "复核未通过" in refused.text and not refused.content.startswith(b"%PDF")
        export = c.get("/audit/export", params={"from": "2000-01-01", "to": "2999-12-31"})
        assert export.status_code == 200 and "console:wang.admin" in export.content.decode("utf-8-sig")
        assert "纸质" in c.get("/transmittals").text and "待缴" in c.get("/fees").text
        raw = c.get("/loans/DEMO-001", params={"view": "it"}).text  # bank IT's view keeps the codes
        assert "application.submitted" in raw and "certificate_number=" in raw
        assert c.get("/").headers["x-frame-options"] == "DENY"


def test_the_daemon_serves_the_console_and_its_metrics_index_links_to_it(with_users: Branch) -> None:
    import socket
    import threading
    import time
    import urllib.request

    from agent.daemon import run_daemon

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    console_port, metrics_port = free_port(), free_port()
    text = with_users.config.read_text().replace("[metrics]\nport = 0", f"[metrics]\nport = {metrics_port}")
    assert f"port = {metrics_port}" in text
    with_users.config.write_text(text + f"\n[console]\nenabled = true\nport = {console_port}\n")
    urls = {
        "web console": f"http://127.0.0.1:{console_port}",
        "metrics and health endpoint": f"http://127.0.0.1:{metrics_port}",
    }
    agent = with_users.agent()
    stop = threading.Event()
    daemon = threading.Thread(target=run_daemon, args=(agent,), kwargs={"stop": stop, "install_signals": False})
    daemon.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(urls["web console"] + "/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=urls["web console"]) as c:
            assert "登录" in c.get("/").text and c.get("/api/status").status_code == 401
        with urllib.request.urlopen(urls["metrics and health endpoint"] + "/", timeout=5) as r:
            assert urls["web console"] in r.read().decode()
    finally:
        stop.set()
        daemon.join(timeout=60)
    assert not daemon.is_alive()


# --- every page in Chinese, local time, no raw codes (issue 23 gap 1) ---------------------------------

ISO_T = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")  # the console writes 2026-12-01 02:11:35 +08:00, never ISO-T
KEY_VALUE = re.compile(r"\b[a-z_]{2,}=\S")
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:tmp|home|var|srv|opt|etc|root|usr)/")
ENGLISH = re.compile(r"\b[A-Za-z]{3,} [A-Za-z]{2,} [A-Za-z]{2,}\b")


def _codes() -> set[str]:
    """Every code a page could leak: stages, centre statuses, business types, fee/quarantine/receipt words,
    audit actions, alert kinds."""
    from agent import labels
    from sdk.models import APPLICATION_TYPES, ApplicationStatus

    return {
        *labels.STAGES, *labels.CERTIFICATE_STAGES, *labels.FEE_STATUSES, *labels.QUARANTINE_KINDS,
        *labels.QUARANTINE_STATUSES, *labels.RECEIPT_EVENTS, *labels.AUDIT_ZH, *labels.ALERT_TITLES,
        *(s.value for s in ApplicationStatus), *APPLICATION_TYPES,
    }  # fmt: skip


def _visible(html: str) -> str:
    """The text a person reads: tags dropped, entities kept as written (a text box's value is read too)."""
    values = " ".join(re.findall(r'<input(?![^>]*type="hidden")[^>]*value="([^"]*)"', html))
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", body) + " " + values


def leaks(text: str, codes: set[str]) -> list[str]:
    found = [m.group(0) for rx in (ISO_T, KEY_VALUE, ABSOLUTE_PATH, ENGLISH) for m in rx.finditer(text)]
    found += [c for c in codes if re.search(rf"(?<![\w.@/-]){re.escape(c)}(?![\w/-]|\.[a-z])", text)]
    return found


def test_every_audit_action_the_agent_writes_has_a_chinese_sentence() -> None:
    import ast
    from pathlib import Path

    from agent.labels import AUDIT_ZH

    root = Path(__file__).resolve().parents[3]
    missing = []
    for path in [*root.joinpath("agent").rglob("*.py"), *root.joinpath("connectors").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append"
                    and len(node.args) >= 2 and "audit" in ast.unparse(node.func.value)):  # fmt: skip
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                if first.value not in AUDIT_ZH:
                    missing.append(f"{path.name}: {first.value}")
            elif isinstance(first, ast.JoinedStr):  # f"application.{what}": some sentence for that family
                head = first.values[0].value if isinstance(first.values[0], ast.Constant) else ""
                if not any(k.startswith(str(head)) for k in AUDIT_ZH):
                    missing.append(f"{path.name}: {ast.unparse(first)}")
    assert not missing, missing


def test_every_page_speaks_chinese_in_local_time_with_no_raw_codes(agent: Agent, worked: Branch) -> None:
    """Walks every page an admin reaches by its links (after a requeue, a dismiss, open alerts and a
    transmittal, so each kind of row shows) and `regbridge show`; fails on an untranslated stage/event
    code, an ISO time, a key=value list, a file system path or an English sentence. The technical
    view (?view=it) is bank IT's and is skipped."""
    from typer.testing import CliRunner

    from agent.cli import app

    agent.store.raise_alert("deadline:DEMO-009-DYSC", "补正 for DEMO-009 is due 2026-12-03T00:00:00+00:00")
    agent.store.raise_alert("inbox:corebank", f"inbox folder {worked.inbox()} is missing (share dropped?)")
    agent.store.raise_alert("collateral:皖(2026)长丰县不动产证明第0000001号:seized",
                            "【长丰支行】DEMO-004 (R-4) 平台通知TZ1：不动产单元已查封")  # fmt: skip
    codes = _codes()
    seen: dict[str, str] = {}
    with _client(agent) as c:
        login(c, "wang.admin")
        page = c.get("/quarantine").text
        (worked.inbox() / "materials" / "DEMO-002_main_contract.pdf").write_bytes(b"%PDF-1.7 contract")
        c.post("/quarantine/1/requeue", data={"csrf": _csrf(page)})
        c.post("/quarantine/2/dismiss", data={"csrf": _csrf(page), "reason": "客户撤回"})
        c.post("/transmittals/new", data={"csrf": _csrf(page)})
        todo = ["/", "/quarantine?all=1", "/loans/DEMO-002", "/loans/DEMO-003"]
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            r = c.get(path)
            assert r.status_code == 200, path
            seen[path] = r.text
            for link in re.findall(r'href="(/[^"]*)"', r.text):
                link = link.replace("&amp;", "&")
                if (
                    not link.startswith(("/static", "/audit/export"))
                    and "view=it" not in link
                    and not link.endswith(("/file", "/pdf", "download=1"))
                ):
                    todo.append(link)
    assert {"/", "/loans", "/quarantine", "/certificates", "/fees", "/transmittals", "/audit"} <= set(seen)
    assert any(p.startswith("/loans/DEMO-001") for p in seen) and "隔离区 #2 已撤销" in seen["/loans/DEMO-003"]
    assert "补正期限将至（DEMO-009-DYSC）" in seen["/"] and "收件夹不可用（corebank）" in seen["/"]
    assert "长丰支行：" in seen["/"]  # a collateral alert names the branch whose loan it is
    problems = {p: leaks(_visible(html), codes) for p, html in seen.items()}
    assert not any(problems.values()), {p: v for p, v in problems.items() if v}
    runner = CliRunner()
    for loan in ("DEMO-001", "DEMO-002", "DEMO-003"):
        out = runner.invoke(app, ["show", loan, "--config", str(worked.config)])
        assert out.exit_code == 0 and "时间线" in out.output, out.output
        assert not leaks(out.output, codes), (loan, leaks(out.output, codes))
    raw = runner.invoke(app, ["show", "DEMO-001", "--raw", "--config", str(worked.config)]).output
    assert "application.submitted" in raw and "certificate_number=" in raw  # bank IT's form, on request


# --- a hostile visitor (issue 23 gap 3) ---------------------------------------------------------------


def test_hostile_requests_are_refused(agent: Agent, worked: Branch) -> None:
    from agent.demo import samples

    from ..conftest import drop

    owner = register.owners_of(1)[0]
    # an export whose loan number and name carry markup: shown escaped, never as markup
    rows = samples.mortgage_rows("EVIL-1", 11, amount="90")
    rows[0]["贷款编号"] = '<script>alert("x")</script>'
    rows[0]["抵押人"] = "<img src=x onerror=alert(1)>"
    drop(worked.inbox(), "evil.csv", samples.corebank_csv(rows))
    assert agent.run_until_idle(timeout=60)
    with _client(agent) as c:
        # CSRF: a login without the page's token, or from another site, is refused
        home = c.get("/").text
        assert "页面已过期" in c.post("/login", data={"username": "wang.admin", "password": PASSWORDS["wang.admin"]},
                                      follow_redirects=True).text  # fmt: skip
        r = c.post("/login", data={"csrf": _csrf(home), "username": "wang.admin", "password": PASSWORDS["wang.admin"]},
                   headers={"Origin": "http://evil.example"}, follow_redirects=False)  # fmt: skip
        assert r.headers["location"] == "/?error=csrf"
        # session fixation: a cookie planted before the login is not the session after it
        planted = c.cookies.get("regbridge_console")
        login(c, "li.operator")
        assert c.cookies.get("regbridge_console") != planted
        stolen = c.cookies.get("regbridge_console")
        assert stolen
        page = c.get("/quarantine").text
        for evil in ("<script>", "<img src=x"):
            assert evil not in page and evil not in c.get("/").text, evil
        assert "&lt;script&gt;" in page or "&lt;img" in page
        # path traversal in the document and transmittal downloads: nothing outside the store
        for path in ("/certificates/..%2F..%2F..%2Fetc%2Fpasswd/file", "/certificates/../../etc/passwd/file",
                     "/transmittals/..%2F..%2Fetc%2Fpasswd/pdf", "/static/..%2F..%2Fapp.py"):  # fmt: skip
            r = c.get(path)
            assert r.status_code == 404 and b"root:" not in r.content and b"import" not in r.content, path
        # an action the console does not have is not taken for a dismissal
        r = c.post("/quarantine/1/delete", data={"csrf": _csrf(page), "reason": "x"}, follow_redirects=False)
        assert r.status_code == 404 and agent.store.quarantined("open")[0]["id"] == 1
        # a result message travels in the session, not in a URL anyone could craft
        assert "钓鱼" not in c.get("/quarantine", params={"message": "请拨打钓鱼电话"}).text
        # an ID number in a URL is refused, not searched nor echoed
        r = c.get("/loans", params={"q": owner.id_number}, follow_redirects=False)
        assert r.status_code == 303 and owner.id_number not in r.headers["location"]
        assert owner.id_number not in c.get("/loans").text
        c.post("/logout", data={"csrf": _csrf(page)})
    # the copied cookie is worthless after the logout
    with _client(agent) as thief:
        thief.cookies.set("regbridge_console", stolen)
        assert thief.get("/api/status").status_code == 401
        assert thief.get("/loans", follow_redirects=False).status_code == 303
    # wrong passwords: after 5, even the right one waits (and that is audited)
    with _client(agent) as c:
        for _ in range(5):
            c.post("/login", data={"csrf": _csrf(c.get("/").text), "username": "zhao.viewer", "password": "guess-1234"})
        r = c.post("/login", data={"csrf": _csrf(c.get("/").text), "username": "zhao.viewer",
                                   "password": PASSWORDS["zhao.viewer"]}, follow_redirects=True)  # fmt: skip
        assert "失败次数过多" in r.text and c.get("/api/status").status_code == 401
    audit = [json.loads(line) for line in (agent.data_dir / "audit.log").read_text().splitlines()]
    assert any(a["action"] == "console.login" and a["outcome"] == "refused" for a in audit)
    assert not any(owner.id_number in json.dumps(a, ensure_ascii=False) for a in audit)
