"""The console in a real browser: Debian's chromium, driven by Playwright (the Python package, launched with
the system browser's path — no browser is downloaded). Login, search, a loan's timeline, a requeue and a
dismiss on loopback; the same login over the TLS LAN mode with a self-signed certificate.

``REGBRIDGE_SCREENSHOTS=1`` writes the main pages' screenshots into docs/ (docs/console.md shows them).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import Browser, Page, sync_playwright

from agent.console import ConsoleServer
from agent.daemon import Agent
from sandbox import register

from ..conftest import Branch
from .conftest import PASSWORDS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
DOCS = Path(__file__).resolve().parents[3] / "docs"


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _shot(page: Page, name: str, tmp_path: Path) -> None:
    target = DOCS if os.environ.get("REGBRIDGE_SCREENSHOTS") == "1" else tmp_path
    page.screenshot(path=str(target / f"console-{name}.png"), full_page=True)


def _login(page: Page, url: str, name: str) -> None:
    page.goto(url + "/")
    assert page.locator("button", has_text="登录").is_visible()
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button:has-text('登录')")
    page.wait_for_selector("text=各收件夹队列")


def test_login_search_timeline_requeue_and_dismiss_in_chromium(
    worked: Branch, browser: Browser, tmp_path: Path
) -> None:
    agent = worked.agent()
    server = ConsoleServer(agent, port=0).start()
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    try:
        page.goto(server.url + "/loans")  # not logged in: the login page
        assert page.url.rstrip("/") == server.url and page.locator("input[name=password]").is_visible()
        _shot(page, "login", tmp_path)
        _login(page, server.url, "li.operator")
        assert page.locator("text=需要人工处理的贷款").is_visible()
        _shot(page, "overview", tmp_path)
        # search by a borrower's ID number: found, and the number is not on the page
        owner = register.owners_of(1)[0]
        page.click("nav >> text=贷款")
        page.fill("input[name=q]", owner.id_number)
        page.click("button:has-text('查询')")
        page.wait_for_selector("text=DEMO-001-DYSC")
        # the number typed stays in the search box (to correct a typo), is nowhere else, never in the URL
        assert page.input_value("input[name=q]") == owner.id_number and owner.id_number not in page.url
        assert page.content().count(owner.id_number) == 1 and owner.name not in page.content()
        page.fill("input[name=q]", "")  # the screenshot in docs/ shows no ID number, even a sandbox one
        _shot(page, "loans", tmp_path)
        page.click("a:has-text('DEMO-001')")
        page.wait_for_selector("text=时间线")
        assert page.locator("table.timeline tr").count() > 5 and "+08:00" in page.content()
        _shot(page, "timeline", tmp_path)
        # quarantine: one item requeued after its material arrived, the other dismissed with a reason
        page.click("nav >> text=隔离区")
        rows = page.locator("table.quarantine tr[id]")
        assert rows.count() == 2
        _shot(page, "quarantine", tmp_path)
        first, second = (rows.nth(i).get_attribute("id") for i in range(2))
        (worked.inbox() / "materials" / "DEMO-002_main_contract.pdf").write_bytes(b"%PDF-1.7 contract")
        page.click(f"tr#{first} >> button:has-text('重新处理')")
        page.wait_for_selector("text=已重新处理")
        page.fill(f"tr#{second} >> input[name=reason]", "客户撤回申请")
        page.click(f"tr#{second} >> button:has-text('撤销')")
        page.wait_for_selector("text=客户撤回申请")
        assert page.locator("table.quarantine tr[id]").count() == 0
        page.click("nav >> text=登记证明")
        assert page.locator("text=签章已验证").count() == 1
        _shot(page, "certificates", tmp_path)
    finally:
        page.close()
        server.stop()
        agent.close()
    statuses = {q["id"]: q["status"] for q in _quarantine(worked)}
    assert sorted(statuses.values()) == ["dismissed", "requeued"]
    audit = (worked.root / "var" / "audit.log").read_text()
    assert '"actor": "console:li.operator"' in audit and "客户撤回申请" in audit


def _quarantine(branch: Branch) -> list[dict[str, Any]]:
    a: Agent = branch.agent()
    try:
        return a.store.quarantined(None)
    finally:
        a.close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regbridge-console.branch.local")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "console.crt", folder / "console.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_path.chmod(0o600)
    return cert_path, key_path


def test_the_lan_mode_serves_tls_with_secure_cookies(with_users: Branch, browser: Browser, tmp_path: Path) -> None:
    worked = with_users
    cert, key = _self_signed(tmp_path)
    text = worked.config.read_text() + f'\n[console]\nlisten = "0.0.0.0"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
    worked.config.write_text(text)
    agent = worked.agent()
    server = ConsoleServer(agent, port=0).start()
    context = browser.new_context(ignore_https_errors=True, locale="zh-CN")  # the self-signed certificate
    page = context.new_page()
    try:
        assert server.url.startswith("https://")
        _login(page, server.url, "zhao.viewer")
        [cookie] = [c for c in context.cookies() if c["name"] == "regbridge_console"]
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.locator("text=重新处理").count() == 0  # a viewer
    finally:
        context.close()
        server.stop()
        agent.close()


def test_a_plain_http_console_beyond_loopback_is_refused(with_users: Branch) -> None:
    from agent.console.server import ConsoleUnsafe

    agent = with_users.agent()
    try:
        with pytest.raises(ConsoleUnsafe, match="tls_cert"):
            ConsoleServer(agent, listen="0.0.0.0", port=0)
    finally:
        agent.close()
    assert shutil.which("chromium") or Path(CHROMIUM).exists()
