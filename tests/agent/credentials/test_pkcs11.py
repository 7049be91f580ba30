"""Keys in a PKCS#11 token (issue 19): SoftHSM2 from Debian, the token made by the test.

Enrolment makes the key inside the token (CKA_SENSITIVE true, CKA_EXTRACTABLE false, checked),
applications run with every signature made by the token, rotation makes the next key there too,
no private key material lands in any file, and signing fails once the token is gone. Ed25519 and
P-256; SM2 in a token needs vendor mechanisms SoftHSM2 does not have (not tested here): what is tested is
that the codes reach the token, and that a head office's platform key (SM2) is made inside it or refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from agent.centre.client import centre_client
from agent.config import Pkcs11Config, load_config
from agent.credentials.custody import custody_for
from agent.credentials.pkcs11 import Pkcs11Signer, Pkcs11Token, TokenUnavailable, read_pin, sm2_der
from agent.credentials.rotation import rotate
from agent.daemon import Agent
from installer.enrol import enrol
from sandbox.local import LocalCentre
from sdk.csr import check_issued_certificate
from sdk.gm.sm2 import Sm2PrivateKey

from ..conftest import INBOXES, SECRET, drop, mortgage_export

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SOFTHSM_UTIL = shutil.which("softhsm2-util")


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SoftHSM2 configuration of this test process's own, its tokens made before the library is
    loaded (SoftHSM2 reads its token folder once per process)."""
    assert SOFTHSM_UTIL and Path(MODULE).exists(), "SoftHSM2 is a system package of the build (make system-deps)"
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in TOKENS:
        _init_token(root, label)
    yield root
    if before is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = before


TOKENS = ("branch-ed25519", "branch-p256", "branch-sm2", "head-office")


def _init_token(softhsm: Path, label: str) -> None:
    """A fresh token, its PIN in a file only its owner reads."""
    assert SOFTHSM_UTIL
    made = subprocess.run([SOFTHSM_UTIL, "--init-token", "--free", "--label", label, "--so-pin", "87654321",
                           "--pin", "13572468"], capture_output=True, text=True, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    pin = softhsm / f"{label}.pin"
    pin.write_text("13572468\n")
    pin.chmod(0o600)


def _token(softhsm: Path, label: str) -> dict[str, Any]:
    """The config's [centre.pkcs11] for the token ``label`` (made by the fixture)."""
    return {"module": MODULE, "token_label": label, "pin_file": str(softhsm / f"{label}.pin")}


SETTINGS = {"default_operator": "op-001", "fees": {"auto_pay": True, "daily_cap": "100000"}, "metrics": {"port": 0}}


def test_an_agent_whose_keys_never_leave_the_token(softhsm: Path, tmp_path: Path) -> None:
    with LocalCentre() as centre:
        _iid, bundle = centre.bank()
        p11 = _token(softhsm, "branch-ed25519")
        root = tmp_path / "branch"
        done = enrol(bundle, root, secret=SECRET, inboxes=INBOXES, settings=SETTINGS, key_store="pkcs11",
                     pkcs11=p11, check_clock=False)  # fmt: skip
        config = load_config(done.path)
        custody = custody_for(config, SECRET)
        entry = custody.entry(config.centre.key_id)
        assert entry.store == "pkcs11" and entry.algorithm == "ed25519" and "not extractable" in done.key_where
        assert custody.token is not None
        attributes = custody.token.private_attributes(bytes.fromhex(entry.location))
        assert attributes == {"sensitive": True, "extractable": False, "always_sensitive": True,
                              "never_extractable": True}  # fmt: skip

        agent = Agent(config, secret=SECRET)
        try:
            assert agent.signer is not None and isinstance(agent.signer.current(), Pkcs11Signer)
            inbox = root / "inbox" / "corebank"
            drop(inbox, "a.csv", mortgage_export(inbox, {"HSM-001": 1, "HSM-002": 2}))
            assert agent.run_until_idle(timeout=90)
            apps = agent.store.applications()
            assert len(apps) == 2 and {a.stage for a in apps} == {"done"}
        finally:
            agent.close()
        used = {r["key_id"] for r in centre.store.all("SELECT key_id FROM nonces")}
        assert used == {config.centre.key_id}  # every request the centre saw was signed by the token's key

        rotated = rotate(config, SECRET, grace_seconds=60)
        config = load_config(done.path)
        new = custody_for(config, SECRET).entry(rotated.new_key_id)
        assert new.store == "pkcs11" and new.location != entry.location
        with centre_client(config, custody_for(config, SECRET).signer(config.centre.key_id)) as client:
            assert {c.key_id for c in client.credentials.list() if c.status == "active"} >= {rotated.new_key_id}

    for path in root.rglob("*"):  # no private key material in any file
        if path.is_file():
            data = path.read_bytes()
            assert b"PRIVATE KEY" not in data, path
    assert not list((root / "keys").glob("*.key"))

    # the token gone: signing fails, and says so
    assert SOFTHSM_UTIL
    subprocess.run([SOFTHSM_UTIL, "--delete-token", "--token", "branch-ed25519"], capture_output=True, check=True)
    signer = custody_for(config, SECRET)
    with pytest.raises(TokenUnavailable):
        signer.signer(config.centre.key_id).sign(b"signature base")


def test_a_p256_key_made_in_the_token_signs_requests_the_centre_accepts(softhsm: Path, tmp_path: Path) -> None:
    with LocalCentre() as centre:
        iid, bundle = centre.bank()
        done = enrol(bundle, tmp_path / "p256", secret=SECRET, inboxes=INBOXES, settings=SETTINGS,
                     key_store="pkcs11", pkcs11=_token(softhsm, "branch-p256"), algorithm="ecdsa-p256-sha256",
                     check_clock=False)  # fmt: skip
        config = load_config(done.path)
        custody = custody_for(config, SECRET)
        signer = custody.signer(config.centre.key_id)
        assert isinstance(signer, Pkcs11Signer) and signer.algorithm == "ecdsa-p256-sha256"
        with centre_client(config, signer) as client:
            assert client.institution.get().institution_id == iid
            record = client.credentials.list()[0]
        # the certificate request was signed inside the token: the centre certified the token's key
        certificate = custody.entry(config.centre.key_id).certificate
        assert certificate and record.certificate == certificate and record.certificate_status == "valid"
        info = check_issued_certificate(certificate, ca=bundle["bundle"]["trust"]["bank_ca_pem"],
                                        public_key=signer.public_key())  # fmt: skip
        assert info.serial_hex == record.certificate_serial


def test_the_pin_is_never_read_from_a_file_others_can_read(softhsm: Path, tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("1234\n")
    pin.chmod(0o644)
    with pytest.raises(TokenUnavailable, match="readable by others"):
        read_pin(pin)
    pin.chmod(0o600)
    assert read_pin(pin) == "1234"
    with pytest.raises(TokenUnavailable, match="no PKCS#11 PIN"):
        read_pin(None)


# --- SM2 in a token: the vendor codes (as xipki names them); SoftHSM2 has no SM2 -------------------


def test_vendor_sm2_codes_are_named_as_xipki_names_them() -> None:
    config = Pkcs11Config.model_validate(
        {"module": MODULE, "token_label": "t", "mechanisms": {"sm2_keygen": 0x80000A01, "CKM_VENDOR_SM2": 0x80000A02,
                                                               "CKK_VENDOR_SM2": 0x80000A00}}
    )  # fmt: skip
    assert config.mechanisms == {
        "CKM_VENDOR_SM2_KEY_PAIR_GEN": 0x80000A01, "CKM_VENDOR_SM2": 0x80000A02, "CKK_VENDOR_SM2": 0x80000A00,
    }  # fmt: skip
    for bad, why in (({"CKM_SM2_SIGN": 1}, "not a vendor SM2 code name; known: CKK_VENDOR_SM2"),
                     ({"CKM_VENDOR_SM2": 2**32}, "not a PKCS#11 code"),
                     ({"CKM_VENDOR_SM2": -1}, "not a PKCS#11 code"),
                     ({"sm2_sign": 5, "CKM_VENDOR_SM2": 6}, "name different codes")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            Pkcs11Config.model_validate({"module": MODULE, "token_label": "t", "mechanisms": bad})


def test_a_tokens_sm2_answer_is_sent_der_whichever_form_it_comes_in() -> None:
    key = Sm2PrivateKey.generate()
    der = key.sign(b"signature base")
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    for answer in (raw, der):
        key.public.verify(sm2_der(answer), b"signature base")
    with pytest.raises(TokenUnavailable, match="neither"):
        sm2_der(b"\x01" * 70)


def test_sm2_in_softhsm_is_refused_clearly(softhsm: Path) -> None:
    """Without vendor codes the custody says the token is not configured for SM2; with codes
    SoftHSM2 does not have, the token's own refusal comes back (the codes are passed through)."""
    pin = read_pin(softhsm / "branch-sm2.pin")
    plain = Pkcs11Token(MODULE, pin, "branch-sm2")
    with pytest.raises(TokenUnavailable, match="not configured for sm2-sm3 keys"):
        plain.generate("sm2-sm3", b"\x01" * 8, "sm2")
    vendor = Pkcs11Token(MODULE, pin, "branch-sm2", mechanisms={"CKM_VENDOR_SM2_KEY_PAIR_GEN": 0x80000A01,
                                                                  "CKM_VENDOR_SM2": 0x80000A02})  # fmt: skip
    with pytest.raises(TokenUnavailable, match=r"the token did not make a sm2-sm3 key: .*CKR_MECHANISM_INVALID"):
        vendor.generate("sm2-sm3", b"\x02" * 8, "sm2")


def test_enroll_with_a_gm_bundle_and_a_token_says_what_sm2_needs(softhsm: Path, tmp_path: Path) -> None:
    """break19: `enroll --key-store pkcs11` with a gm bundle said only "this token is not configured for sm2-sm3
    keys", and the vendor codes could not be given on the command line at all."""
    from typer.testing import CliRunner

    from agent.cli import app
    from sdk.suites import GM

    with LocalCentre(suite=GM) as centre:
        _, bundle = centre.bank()
        path = tmp_path / "bundle.json"
        path.write_text(json.dumps(bundle, ensure_ascii=False))
        token = ["--key-store", "pkcs11", "--pkcs11-module", MODULE, "--pkcs11-token", "branch-sm2",
                 "--pkcs11-pin-file", str(softhsm / "branch-sm2.pin")]  # fmt: skip
        runner = CliRunner()
        plain = runner.invoke(app, ["enroll", str(path), "--dir", str(tmp_path / "a"), *token])
        assert plain.exit_code == 1 and "CKM_VENDOR_SM2_KEY_PAIR_GEN" in plain.output
        assert "--key-store file" in plain.output and "--pkcs11-mechanism" in plain.output
        codes = ["--pkcs11-mechanism", "CKM_VENDOR_SM2_KEY_PAIR_GEN=0x80000A01", "--pkcs11-mechanism",
                 "CKM_VENDOR_SM2=0x80000A02"]  # fmt: skip
        vendor = runner.invoke(app, ["enroll", str(path), "--dir", str(tmp_path / "b"), *token, *codes])
        assert vendor.exit_code == 1 and "CKR_MECHANISM_INVALID" in vendor.output  # the codes reached the token
        bad = runner.invoke(app, ["enroll", str(path), "--dir", str(tmp_path / "c"), *token,
                                  "--pkcs11-mechanism", "CKM_VENDOR_SM2"])  # fmt: skip
        assert bad.exit_code == 2 and "NAME=CODE" in bad.output


def test_the_platform_signing_key_is_made_inside_the_token_and_doctor_checks_it_signs_sm2(
    softhsm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 21 (plat6): `platform enroll` with key_store = pkcs11 makes the platform's SM2 signing key in the
    token. SoftHSM2 has no SM2 mechanism: without vendor codes it is refused, saying what is needed; with
    SoftHSM2's EC codes named as the SM2 ones it makes a key on the SM2 curve inside the token (sensitive, not
    extractable) — but its signatures are ECDSA, which `doctor` finds before the platform would refuse them."""
    import tomlkit
    from typer.testing import CliRunner

    from agent.cli import app
    from installer.doctor import diagnose_platform

    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    with LocalCentre() as centre:
        _, bundle = centre.bank()
        done = enrol(bundle, tmp_path / "ho", secret=SECRET, inboxes=INBOXES, settings=SETTINGS, key_store="pkcs11",
                     pkcs11=_token(softhsm, "head-office"), check_clock=False)  # fmt: skip
        anchors = {"jwk": dict(centre.centre.keys.centre_jwk), "key_id": centre.centre.keys.centre_key_id,
                   "ca_pem": centre.centre.keys.ca_pem, "name": "肥西县不动产登记中心"}  # fmt: skip
    keys = tmp_path / "ho" / "keys"
    runner = CliRunner()
    base = ["platform", "enroll", "--app-id", "BANK-HO", "-c", str(done.path)]

    plain = runner.invoke(app, [*base, "--request"])
    assert plain.exit_code == 1 and "CKM_VENDOR_SM2_KEY_PAIR_GEN" in plain.output and "--software-key" in plain.output
    assert not [e for e in json.loads((keys / "keys.json").read_text())["keys"] if e["state"] == "platform"]

    doc = tomlkit.parse(done.path.read_text(encoding="utf-8"))
    doc["centre"]["pkcs11"]["mechanisms"] = {
        "CKM_VENDOR_SM2_KEY_PAIR_GEN": 0x1040, "CKM_VENDOR_SM2": 0x1041,  # SoftHSM2's CKM_EC_KEY_PAIR_GEN, CKM_ECDSA
    }  # fmt: skip
    done.path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    asked = runner.invoke(app, [*base, "--request"])
    assert asked.exit_code == 0, asked.output
    form = json.loads(asked.output)
    config = load_config(done.path)
    custody = custody_for(config, SECRET)
    entry = custody.entry("platform-BANK-HO")
    assert entry.store == "pkcs11" and entry.state == "platform" and entry.algorithm == "sm2-sm3"
    signer = custody.sm2_signer("platform-BANK-HO")
    assert isinstance(signer, Pkcs11Signer) and form["signingKey"] == signer.public.to_pem().decode()  # type: ignore[union-attr]
    assert custody.token is not None
    assert custody.token.private_attributes(bytes.fromhex(entry.location)) == {
        "sensitive": True, "extractable": False, "always_sensitive": True, "never_extractable": True,
    }  # fmt: skip
    # the encryption key (SM2 decryption of encKey: no vendor code for it) is a software key, encrypted
    (software,) = [e for e in custody.entries() if e.state == "encryption"]
    assert software.store == "file" and b"ENCRYPTED PRIVATE KEY" in (keys / software.location).read_bytes()
    assert sorted(p.name for p in keys.glob("*.key")) == [software.location]  # nothing else of the platform's

    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({
        "platformAppId": "AHBDC-PLATFORM", "url": "http://127.0.0.1:9/",
        "signingKey": Sm2PrivateKey.generate().public.to_pem().decode(),
        "encryptionKey": Sm2PrivateKey.generate().public.to_pem().decode(), "centres": {"340123": anchors},
    }), encoding="utf-8")  # fmt: skip
    assert runner.invoke(app, [*base, "--answer", str(answer)]).exit_code == 0
    (finding,) = [f for f in diagnose_platform(done.path) if f.check == "platform"]
    assert finding.status == "fail" and "does not verify as SM2" in finding.detail and "4011" in finding.detail
    assert "CKM_VENDOR_SM2=0x1041" in finding.detail and "--software-key" in finding.hint

    # a token without SM2: the key kept as an encrypted software key, on request
    other = runner.invoke(app, ["platform", "enroll", "--app-id", "BANK-HO-2", "-c", str(done.path), "--request",
                                "--software-key"])  # fmt: skip
    assert other.exit_code == 0, other.output
    kept = custody_for(load_config(done.path), SECRET).entry("platform-BANK-HO-2")
    assert kept.store == "file" and b"ENCRYPTED PRIVATE KEY" in (keys / kept.location).read_bytes()
