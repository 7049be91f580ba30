"""`regbridge platform enroll` (issue 21): a head office's agent registered at a provincial platform.

--request makes the SM2 keys in the key store (encrypted, never plaintext) and prints only public keys;
--answer checks the desk's answer (an answer whose key is not an SM2 key changes nothing) and writes
[platform] with the routing table and each county centre's trust anchors; the agent is then built from
agent.toml alone: the platform's port, per-district anchors and its notify receiver.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import TypeAdapter
from typer.testing import CliRunner

import sdk
from agent.centre.province import ProvinceCentre
from agent.centre.routing import RoutedCentre
from agent.cli import app
from agent.config import load_config
from sandbox.local import LocalCentre
from sandbox.register import CHANGFENG, FEIXI
from sandbox.samples import application_dict
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.models import Application
from tests.agent.conftest import SECRET, Branch

APPLICATION: TypeAdapter[Application] = TypeAdapter(Application)


def test_platform_enroll_writes_platform_from_the_desks_answer(
    branch: Branch, centre: LocalCentre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    base = ["platform", "enroll", "--app-id", "BANK-AH-HO", "-c", str(branch.config)]
    monkeypatch.delenv("REGBRIDGE_AGENT_SECRET", raising=False)  # no agent secret: one line, no key made
    secretless = runner.invoke(app, [*base, "--request"])
    assert secretless.exit_code == 1 and isinstance(secretless.exception, SystemExit), secretless.output
    assert "platform enrolment failed" in secretless.output
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    asked = runner.invoke(app, [*base, "--request", "--notify-url", "https://bank.example/notify"])
    assert asked.exit_code == 0, asked.output
    form = json.loads(asked.output)
    assert form["appId"] == "BANK-AH-HO" and form["notifyUrl"] == "https://bank.example/notify"
    assert "PRIVATE" not in asked.output and "PUBLIC KEY" in form["signingKey"]
    manifest = json.loads((branch.root / "keys" / "keys.json").read_text(encoding="utf-8"))
    (entry,) = [e for e in manifest["keys"] if e["state"] == "platform"]
    assert entry["key_id"] == "platform-BANK-AH-HO" and entry["algorithm"] == "sm2-sm3"
    assert b"ENCRYPTED PRIVATE KEY" in (branch.root / "keys" / entry["location"]).read_bytes()
    again = runner.invoke(app, [*base, "--request"])  # asked again: the same keys, not new ones
    assert json.loads(again.output)["signingKey"] == form["signingKey"]

    platform_keys = Sm2PrivateKey.generate().public, Sm2PrivateKey.generate().public
    answer = {
        "platformAppId": "AHBDC-PLATFORM", "url": "http://127.0.0.1:9/",
        "signingKey": platform_keys[0].to_pem().decode(), "encryptionKey": platform_keys[1].to_pem().decode(),
        "centres": {"340123": {"jwk": dict(centre.centre.keys.centre_jwk), "key_id": centre.centre.keys.centre_key_id,
                               "ca_pem": centre.centre.keys.ca_pem, "name": "肥西县不动产登记中心"}},
    }  # fmt: skip
    before = branch.config.read_text(encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**answer, "signingKey": centre.centre.keys.ca_pem}), encoding="utf-8")
    refused = runner.invoke(app, [*base, "--answer", str(bad)])
    assert refused.exit_code == 1 and "signingKey is not an SM2 public key" in refused.output
    assert branch.config.read_text(encoding="utf-8") == before
    other = tmp_path / "answer.json"
    other.write_text(json.dumps(answer), encoding="utf-8")
    unknown = runner.invoke(app, ["platform", "enroll", "--app-id", "NOT-ASKED", "-c", str(branch.config),
                                  "--answer", str(other)])  # fmt: skip
    assert unknown.exit_code == 1 and "--request" in unknown.output
    token = tmp_path / "desk.token"
    token.write_text("t", encoding="utf-8")
    for desk, said in (("http://192.0.2.1:8700", "is not https"), ("http://127.0.0.1:1", "could not be reached")):
        failed = runner.invoke(app, [*base, "--desk", desk, "--desk-token-file", str(token)])
        assert failed.exit_code == 1 and said in failed.output and failed.exception is not None
        assert isinstance(failed.exception, SystemExit)  # said in a line, no traceback

    silent = runner.invoke(app, [*base, "--answer", str(other)])  # written, but no notify URL: said, in yellow
    assert silent.exit_code == 0 and "未登记通知地址" in silent.output and "--notify-url" in silent.output
    done = runner.invoke(app, [*base, "--answer", str(other), "--notify-url", "https://bank.example/notify"])
    assert done.exit_code == 0, done.output
    assert "未登记通知地址" not in done.output and "--notify-port 0" in done.output  # a URL, but no fixed port
    from installer.doctor import diagnose_platform

    (notify,) = [f for f in diagnose_platform(branch.config) if f.check == "platform notify"]  # doctor says so too
    assert notify.status == "warn" and "--notify-port" in notify.hint, notify
    config = load_config(branch.config)
    assert config.platform is not None and config.platform.key_id == "platform-BANK-AH-HO"
    assert config.platform.platform_signing_key == platform_keys[0].to_pem().decode()
    assert (branch.root / "trust" / "340123.pem").read_text(encoding="ascii") == centre.centre.keys.ca_pem
    assert config.centre.institution_id in branch.config.read_text(encoding="utf-8")  # the rest kept
    agent = branch.agent()
    try:
        # the routing table: 340123 through the platform, any other district to the direct centre
        assert isinstance(agent.centre, RoutedCentre) and agent.centre.districts == {"340123"}
        assert isinstance(agent.centre.platform, ProvinceCentre) and agent.centre.platform.districts == ("340123",)
        assert agent.context.trust_by_district["340123"].centre_name == "肥西县不动产登记中心"
        direct = APPLICATION.validate_python(application_dict("mortgage_first", "LN-ROUTE-1", county=CHANGFENG))
        made = agent.centre.create(direct, idempotency_key="route-1")  # a 长丰县 unit: the direct centre takes it
        found = agent.centre.direct.find("LN-ROUTE-1")
        assert found is not None and found.application_id == made.application_id
        far = APPLICATION.validate_python(application_dict("mortgage_first", "LN-ROUTE-2", county=FEIXI))
        with pytest.raises(sdk.TransportError, match="create"):  # a 肥西县 unit: to the platform (not running here)
            agent.centre.create(far, idempotency_key="route-2")
        # the platform away is an outage named by its address, as a direct centre's (its applications wait
        # unpenalised, bank IT sees the alert); was: no alert at all, each application backed off on its own
        (away,) = [a["message"] for a in agent.store.alerts() if a["kind"] == "centre_unreachable"]
        assert "http://127.0.0.1:9" in away and agent.supervision.unreachable
        receiver = agent.notice_receiver()
        assert receiver is not None and receiver.url == "https://bank.example/notify"
        receiver.server.server_close()
    finally:
        agent.close()
