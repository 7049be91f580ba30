"""The console over HTTP (its real server on loopback, the real agent state): login, roles, CSRF, masking,
actions audited with the user."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

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
        found = c.get("/loans", params={"q": owner.id_number}).text
        assert "DEMO-001-DYSC" in found and owner.id_number not in found and owner.name not in found
        assert "DEMO-002" not in c.get("/loans", params={"q": "DEMO-001"}).text
        assert "DEMO-002" not in c.get("/loans", params={"stage": "done"}).text
        timeline = c.get("/loans/DEMO-001").text
        for expected in ("时间线", "DEMO-001-DYSC", "第2行", "application.submitted", "已验证"):
            assert expected in timeline, expected
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
        assert "requeued" in done.text
        gone = c.post(f"/quarantine/{ids[1]}/dismiss", data={"csrf": _csrf(page), "reason": "贷款已撤销"},
                      follow_redirects=True)  # fmt: skip
        assert "dismissed" in gone.text
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
        export = c.get("/audit/export", params={"from": "2000-01-01", "to": "2999-12-31"})
        assert export.status_code == 200 and "console:wang.admin" in export.content.decode("utf-8-sig")
        assert "纸质" in c.get("/transmittals").text and "待缴" in c.get("/fees").text
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
