"""`regbridge doctor`: green on a fresh branch, and each problem named with its fix."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import load_config
from agent.credentials.custody import custody_for
from installer.doctor import diagnose
from installer.enrol import enrol
from sandbox import register
from sandbox.local import LocalCentre
from sdk.csr import read_certificate
from sdk.gm import x509 as gm_x509
from sdk.suites import GM
from tests.agent.conftest import INBOXES, SECRET, Branch, make_branch

runner = CliRunner()


def test_doctor_is_green_on_a_fresh_branch_and_names_each_problem_with_a_fix(
    branch: Branch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    assert {f.check: f.status for f in diagnose(branch.config) if f.status != "ok"} == {}

    key_file = next((branch.root / "keys").glob("*.key"))
    key_file.chmod(0o644)
    (branch.root / "inbox" / "presale").rmdir()
    centre = branch.centre.centre
    problems = {f.check: f for f in diagnose(branch.config) if f.status == "fail"}
    assert set(problems) == {"key", "folders"}
    assert problems["key"].hint == f"chmod 600 {key_file}"
    assert "inbox presale" in problems["folders"].detail and problems["folders"].hint.startswith("mkdir -p")
    key_file.chmod(0o600)
    (branch.root / "inbox" / "presale").mkdir()

    centre.revoke(None, load_config(branch.config).centre.key_id, "test")
    problems = {f.check: f for f in diagnose(branch.config) if f.status == "fail"}
    assert set(problems) == {"credential"} and "refuses our key" in problems["credential"].detail

    monkeypatch.setenv("REGBRIDGE_CENTRE__URL", "http://127.0.0.1:9")
    result = runner.invoke(app, ["doctor", "--json", "-c", str(branch.config)])
    assert result.exit_code == 1
    findings = {f["check"]: f for f in json.loads(result.output)}
    assert findings["connectivity"]["status"] == "fail" and findings["connectivity"]["hint"]
    monkeypatch.setenv("REGBRIDGE_CENTRE__URL", "http://centre.example.cn")
    findings = {f.check: f for f in diagnose(branch.config)}
    assert findings["tls"].status == "fail" and "https://" in findings["tls"].hint


def test_doctor_checks_a_gm_key_and_the_bank_certificate_its_expiry_and_the_crl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """break19 findings 2 and 4: doctor failed every gm key ("Sm2PublicKey.verify() takes 3 positional
    arguments"), skipping the centre's checks, and said nothing of the institution certificate (机构证书)."""
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    with LocalCentre(suite=GM) as centre:
        branch = make_branch(centre, tmp_path / "branch")
        findings = {f.check: f for f in diagnose(branch.config)}
        assert {c: f.status for c, f in findings.items() if f.status != "ok"} == {}
        assert "sm2-sm3" in findings["key"].detail and findings["credential"].status == "ok"
        assert "not on the centre's CRL" in findings["certificate"].detail

        admin = centre.centre.create_admin_token("test")
        config = load_config(branch.config)
        pem = custody_for(config, SECRET).entry(config.centre.key_id).certificate
        assert pem is not None
        httpx.post(
            f"{centre.url}/admin/v1/bank-certificates/{read_certificate(pem).serial_hex}/revoke",
            json={"reason": "key_compromise"}, headers={"Authorization": f"Bearer {admin}"},
        ).raise_for_status()  # fmt: skip
        problems = {f.check: f for f in diagnose(branch.config) if f.status == "fail"}
        assert set(problems) == {"credential"}
        assert "已被登记中心吊销" in problems["credential"].detail and "regbridge enroll" in problems["credential"].hint

        # a CRL past its nextUpdate, served where the centre's is expected: a warning naming it
        ca = centre.centre.credentials.bank_ca
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
        stale = gm_x509.build_crl(issuer_key=ca.key, issuer=ca.cert_der, revoked=[], this_update=past,  # type: ignore[arg-type]
                                  next_update=past + dt.timedelta(days=1), number=1)  # fmt: skip
        centre.centre.credentials.certificate_validity = dt.timedelta(days=20)  # ends within the 30-day warning
        _, other = centre.bank(name=register.OTHER_BANK.name, uscc=register.OTHER_BANK.id_number, operators=())
        soon = enrol(other, tmp_path / "soon", secret=SECRET, inboxes=INBOXES).path
        with _serving({"/pki/banks.crl": stale}) as url:
            monkeypatch.setenv("REGBRIDGE_CENTRE__URL", url)
            certificate = {f.check: f for f in diagnose(soon)}["certificate"]
        assert certificate.status == "warn" and "剩 19 天" in certificate.detail and "keys rotate" in certificate.hint
        assert "CRL is stale" in certificate.detail
        with _serving({}) as url:  # no CRL there
            monkeypatch.setenv("REGBRIDGE_CENTRE__URL", url)
            certificate = {f.check: f for f in diagnose(soon)}["certificate"]
        assert certificate.status == "warn" and "cannot be fetched" in certificate.detail


@contextlib.contextmanager
def _serving(paths: dict[str, bytes]) -> Iterator[str]:
    """A loopback HTTP server answering ``paths`` (404 elsewhere; a Date header on every answer)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = paths.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_doctor_checks_a_shared_postgresql_state_without_changing_it(
    centre: LocalCentre, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``state.url`` the state check is the shared database's (not a local state.db): reachable, its schema,
    the instances on it; read only (an empty database stays empty); unreachable is a failure with a fix; a shared
    state without a shared blobs folder is a warning (docs/state.md)."""
    import sqlalchemy as sa

    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    branch = make_branch(centre, tmp_path / "branch", state={"url": pg_url})
    found = {f.check: f for f in diagnose(branch.config)}
    assert found["state"].status == "ok" and "empty (the first instance" in found["state"].detail
    engine = sa.create_engine(pg_url)
    try:
        assert sa.inspect(engine).get_table_names() == []  # doctor made no schema
    finally:
        engine.dispose()
    assert found["shared blobs"].status == "warn" and "blobs_dir" in found["shared blobs"].hint
    agent = branch.agent()
    try:
        agent.beat()
    finally:
        agent.close()
    found = {f.check: f for f in diagnose(branch.config)}
    assert found["state"].status == "ok" and "reachable (schema" in found["state"].detail
    assert "1 instance(s) registered" in found["state"].detail
    monkeypatch.setenv("REGBRIDGE_STATE__URL", pg_url.rsplit("@", 1)[0] + "@127.0.0.1:9/none")
    found = {f.check: f for f in diagnose(branch.config)}
    assert found["state"].status == "fail" and "PGPASSFILE" in found["state"].hint
    assert "state password" not in found
    monkeypatch.setenv("REGBRIDGE_STATE__URL", sa.make_url(pg_url).set(password="Pw-d0c7").render_as_string(False))
    found = {f.check: f for f in diagnose(branch.config)}  # a password in state.url: said, never shown
    assert found["state password"].status == "warn" and ".pgpass" in found["state password"].hint
    assert "Pw-d0c7" not in found["state"].detail + found["state password"].detail
