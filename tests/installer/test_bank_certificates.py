"""Centre-issued institution certificates (机构证书), end to end, in both crypto suites: enrolment
sends a PKCS#10 request and keeps the certificate; the centre checks each request against the
certificate's key, its validity and its CRL (``/pki/banks.crl``); rotation renews it; a revoked or
expired certificate is refused with its own code. In ``gm`` the chain and the CRL are SM2 and are
checked by pyhanko-certvalidator (with :class:`sdk.gm.x509.Sm2SignatureValidator`) and OpenSSL 3.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator.errors import RevokedError
from typer.testing import CliRunner

import sdk
from agent.cli import app
from agent.config import load_config
from agent.credentials.custody import KeyCustody, custody_for
from agent.credentials.rotation import rotate
from installer.enrol import BundleError, enrol
from sandbox import register
from sandbox.local import LocalCentre
from sdk.csr import build_request, read_certificate
from sdk.gm import x509 as gm_x509
from sdk.signing import KeySigner, generate_private_key, jwk_from_public_key
from sdk.suites import GM, INTL, suite_named
from tests.agent.conftest import INBOXES, SECRET

OPENSSL = shutil.which("openssl")


@pytest.fixture(params=["intl", "gm"])
def centre(request: pytest.FixtureRequest) -> Iterator[LocalCentre]:
    with LocalCentre(suite=suite_named(request.param)) as running:
        yield running


def _enrol(bundle: dict[str, Any], folder: Path, **kw: Any) -> Any:
    return enrol(bundle, folder, secret=SECRET, inboxes=INBOXES, check_clock=False, **kw)


def _client(folder: Path) -> tuple[sdk.Client, KeyCustody]:
    config = load_config(folder / "agent.toml")
    custody = custody_for(config, SECRET)
    return sdk.Client(config.centre.url, custody.signer(config.centre.key_id)), custody


def _crl(centre: LocalCentre) -> bytes:
    answer = httpx.get(f"{centre.url}/pki/banks.crl")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pkix-crl"
    return answer.content


def _crl_serials(centre: LocalCentre) -> dict[int, str]:
    """serial → reason, read with cryptography (intl) or checked with the CA's SM2 key (gm)."""
    der, ca = _crl(centre), centre.centre.credentials.bank_ca
    if ca.gm:
        parsed = gm_x509.verify_crl(der, ca.cert_der)
        return {
            int(e["user_certificate"].native): e["crl_entry_extensions"][0]["extn_value"].native
            for e in parsed["tbs_cert_list"]["revoked_certificates"]
        }
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(x509.load_der_x509_certificate(ca.cert_der).public_key())  # type: ignore[arg-type]
    return {r.serial_number: r.extensions.get_extension_for_class(x509.CRLReason).value.reason.name for r in crl}


def test_enrolment_gets_a_certificate_the_centre_checks(centre: LocalCentre, tmp_path: Path) -> None:
    iid, bundle = centre.bank()
    done = _enrol(bundle, tmp_path / "branch")
    client, custody = _client(tmp_path / "branch")
    entry = custody.entry(done.key_id)
    assert entry.certificate and done.certificate_serial
    info = read_certificate(entry.certificate)
    assert info.serial_hex == done.certificate_serial
    assert f"{iid}/{done.key_id}" in info.subject and "91340100781081199K" in info.subject  # from the centre's records
    assert dt.timedelta(days=364) < info.not_after - info.not_before < dt.timedelta(days=366)
    sm2 = centre.centre.suite.name == "gm"
    assert ("SM2-with-SM3" if sm2 else "ecdsa-with-SHA256") in _openssl_text(entry.certificate)
    assert (tmp_path / "branch" / "keys" / "bank-ca.pem").read_text() == bundle["bundle"]["trust"]["bank_ca_pem"]
    with client:
        record = next(r for r in client.credentials.list() if r.key_id == done.key_id)
        assert (record.certificate_status, record.certificate_serial) == ("valid", done.certificate_serial)
        assert record.certificate == entry.certificate
    assert _crl_serials(centre) == {}


def test_a_revoked_certificate_is_refused_and_on_the_crl(centre: LocalCentre, tmp_path: Path) -> None:
    _, bundle = centre.bank()
    done = _enrol(bundle, tmp_path / "branch")
    client, custody = _client(tmp_path / "branch")
    admin = centre.centre.create_admin_token("test")
    answer = httpx.post(
        f"{centre.url}/admin/v1/bank-certificates/{done.certificate_serial}/revoke",
        json={"reason": "key_compromise"}, headers={"Authorization": f"Bearer {admin}"},
    )  # fmt: skip
    assert answer.status_code == 200 and answer.json()["certificate_status"] == "revoked"
    with client, pytest.raises(sdk.AuthenticationFailed) as refused:
        client.institution.get()
    assert refused.value.code == "certificate_revoked"
    assert _crl_serials(centre) == {int(done.certificate_serial, 16): "key_compromise"}
    bad_reason = httpx.post(
        f"{centre.url}/admin/v1/bank-certificates/{done.certificate_serial}/revoke",
        json={"reason": "because"}, headers={"Authorization": f"Bearer {admin}"},
    )  # fmt: skip
    assert bad_reason.status_code == 422
    if centre.centre.suite.name == "gm":  # the SM2 path, checked by pyhanko-certvalidator with the published CRL
        cert = custody.entry(done.key_id).certificate
        assert cert is not None
        context = gm_x509.validation_context([bundle["bundle"]["trust"]["bank_ca_pem"].encode()], crls=[_crl(centre)])
        validator = CertificateValidator(asn1_x509.Certificate.load(gm_x509.load_der(cert.encode())),
                                         validation_context=context)  # fmt: skip
        with pytest.raises(RevokedError):
            asyncio.run(validator.async_validate_usage({"digital_signature"}))  # type: ignore[no-untyped-call]


def test_an_expired_certificate_is_refused_with_its_own_code(centre: LocalCentre, tmp_path: Path) -> None:
    # long enough for the enrolment to see it valid on a loaded machine, then wait for its end
    centre.centre.credentials.certificate_validity = dt.timedelta(seconds=4)
    iid, bundle = centre.bank()
    done = _enrol(bundle, tmp_path / "branch")
    client, custody = _client(tmp_path / "branch")
    assert client.institution.get()  # valid: accepted
    end = read_certificate(custody.entry(done.key_id).certificate or "").not_after
    time.sleep(max(0.0, (end - dt.datetime.now(dt.UTC)).total_seconds()) + 1.1)  # the centre's clock: whole seconds
    with client, pytest.raises(sdk.AuthenticationFailed) as refused:
        client.institution.get()
    assert refused.value.code == "certificate_expired"
    assert [r.certificate_status for r in centre.centre.list_credentials(iid)] == ["expired"]


def test_rotation_renews_the_certificate_and_supersedes_the_old_one(centre: LocalCentre, tmp_path: Path) -> None:
    _, bundle = centre.bank()
    done = _enrol(bundle, tmp_path / "branch")
    result = rotate(load_config(done.path), SECRET, grace_seconds=0)
    client, custody = _client(tmp_path / "branch")
    new = custody.entry(result.new_key_id).certificate
    assert new is not None
    new_serial = read_certificate(new).serial_hex
    assert new_serial != done.certificate_serial
    assert f"/{result.new_key_id}" in read_certificate(new).subject
    with client:
        assert client.institution.get()  # the new key, certified, signs
        statuses = {r.key_id: r.certificate_status for r in client.credentials.list()}
    assert statuses == {done.key_id: "revoked", result.new_key_id: "valid"}
    assert _crl_serials(centre) == {int(done.certificate_serial, 16): "superseded"}


def test_a_request_that_does_not_match_its_key_is_refused(centre: LocalCentre) -> None:
    suite = centre.centre.suite
    _, bundle = centre.bank()
    algorithm = suite.default_algorithm
    key, other = (suite.adopt(generate_private_key(algorithm)) for _ in range(2))  # type: ignore[arg-type]
    foreign = build_request(KeySigner("x", other), {"common_name": "agent"})
    with sdk.Client(centre.url) as anon:
        for request in (foreign, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"):
            with pytest.raises(sdk.ValidationFailed) as refused:
                anon.credentials.enroll(bundle["bundle"]["token"], jwk_from_public_key(key.public_key()),
                                        certificate_request=request)  # fmt: skip
            assert refused.value.code == "invalid_certificate_request"
        # the token is still good: the same key with its own request is certified
        own = build_request(KeySigner("x", key), {"common_name": "agent"})
        ok = anon.credentials.enroll(bundle["bundle"]["token"], jwk_from_public_key(key.public_key()),
                                     certificate_request=own)  # fmt: skip
    assert ok.certificate is not None


def test_no_certificate_when_the_bank_declines_one(tmp_path: Path) -> None:
    with LocalCentre(suite=INTL) as centre:
        _, bundle = centre.bank()
        done = _enrol(bundle, tmp_path / "branch", certificate=False)
        client, custody = _client(tmp_path / "branch")
        assert custody.entry(done.key_id).certificate is None and done.certificate_serial is None
        with client:
            assert client.credentials.list()[0].certificate_status is None
        # a centre that issues no institution certificates names no CA in its bundle
        _, other = centre.bank(name=register.OTHER_BANK.name, uscc=register.OTHER_BANK.id_number, operators=())
        del other["bundle"]["trust"]["bank_ca_pem"]
        other["signature"] = centre.centre.keys.sign_detached(other["bundle"])
        with pytest.raises(BundleError, match="issues no institution certificates"):
            _enrol(other, tmp_path / "other", certificate=True)


def test_openssl_verifies_the_gm_bank_certificate_with_the_gmt_id(tmp_path: Path) -> None:
    with LocalCentre(suite=GM) as centre:
        _, bundle = centre.bank()
        done = _enrol(bundle, tmp_path / "branch")
        _, custody = _client(tmp_path / "branch")
        cert = custody.entry(done.key_id).certificate
        assert cert is not None
        (tmp_path / "bank.pem").write_text(cert)
        ok = _openssl("verify", "-vfyopt", "distid:1234567812345678", "-CAfile",
                      str(tmp_path / "branch" / "keys" / "bank-ca.pem"), str(tmp_path / "bank.pem"))  # fmt: skip
        assert ok.returncode == 0, ok.stdout + ok.stderr
        text = _openssl_text(cert)
        assert f"URI:{centre.url}/pki/banks.crl" in text and "TLS Web Client Authentication" in text


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL, "the openssl command line is part of the build environment (make system-deps)"
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=30, check=False)


def _openssl_text(pem: str) -> str:
    return subprocess.run([OPENSSL or "openssl", "x509", "-noout", "-text"], input=pem, capture_output=True,
                          text=True, timeout=30, check=True).stdout  # fmt: skip


def test_a_new_bundle_replaces_a_key_whose_certificate_the_centre_revoked(
    centre: LocalCentre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """break19 finding 1: after a revocation, `keys rotate` cannot help (it is signed by the refused key) and
    `enroll` said "already enrolled"; a new bundle now enrols a new key into the same folder, keeping the rest."""
    iid, bundle = centre.bank()
    folder = tmp_path / "branch"
    done = _enrol(bundle, folder)
    config_path = folder / "agent.toml"
    config_path.write_text(config_path.read_text() + "\n# the bank's own note\n[fees]\nauto_pay = true\n")
    again = _enrol(centre.centre.enrolment_bundle(iid, centre.url, valid_for=dt.timedelta(hours=1)), folder)
    assert again.already and again.key_id == done.key_id  # the centre accepts the key: nothing changes
    admin = centre.centre.create_admin_token("test")
    httpx.post(
        f"{centre.url}/admin/v1/bank-certificates/{done.certificate_serial}/revoke",
        json={"reason": "key_compromise"}, headers={"Authorization": f"Bearer {admin}"},
    ).raise_for_status()  # fmt: skip
    config = load_config(config_path)
    with pytest.raises(Exception, match="certificate_revoked"):
        rotate(config, SECRET, grace_seconds=0)
    # keys show names the certificate and what to do (finding 6: it showed neither)
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    shown = CliRunner().invoke(app, ["keys", "show", "--json", "--config", str(config_path)])
    report = json.loads(shown.stdout)
    current = next(r for r in report["keys"] if r["key_id"] == done.key_id)
    assert current["certificate"]["serial"] == done.certificate_serial
    assert any("certificate_revoked" in w and "regbridge enroll" in w for w in report["warnings"])
    old_file = custody_for(config, SECRET).entry(done.key_id).location
    replaced = _enrol(centre.centre.enrolment_bundle(iid, centre.url, valid_for=dt.timedelta(hours=1)), folder)
    assert not replaced.already and replaced.replaced == (done.key_id, "certificate_revoked")
    assert replaced.key_id != done.key_id and replaced.certificate_serial not in (None, done.certificate_serial)
    text = config_path.read_text()
    assert f'key_id = "{replaced.key_id}"' in text and "# the bank's own note" in text and "auto_pay = true" in text
    client, custody = _client(folder)
    assert custody.entry(done.key_id).state == "retired" and not (folder / "keys" / old_file).exists()
    with client:
        assert client.institution.get().institution_id == iid  # the new key signs and is accepted
    # a key file lost on this machine is replaced the same way, the new key kept under the folder's own agent
    # secret (here in a file the config names, not the default agent.secret): the state stays readable
    import tomlkit

    (folder / "conf").mkdir()
    (folder / "conf" / "the.secret").write_bytes(SECRET)
    (folder / "conf" / "the.secret").chmod(0o600)
    doc = tomlkit.parse(config_path.read_text())
    doc["secret_file"] = "conf/the.secret"
    config_path.write_text(tomlkit.dumps(doc))
    (folder / "keys" / custody.entry(replaced.key_id).location).unlink()
    monkeypatch.delenv("REGBRIDGE_AGENT_SECRET")
    bundle = centre.centre.enrolment_bundle(iid, centre.url, valid_for=dt.timedelta(hours=1))
    third = enrol(bundle, folder, inboxes=INBOXES, check_clock=False)  # no secret given: the folder's
    assert third.replaced == (replaced.key_id, "key_missing") and not (folder / "agent.secret").exists()
    assert custody_for(load_config(config_path), SECRET).signer(third.key_id).key_id == third.key_id
