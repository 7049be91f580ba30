"""The agent against a centre of the 国密 suite (issue 19): enrolment from a gm bundle, SM2 keys in
the encrypted software custody, every request signed sm2-sm3, certificates verified with the
centre's SM2 key, rotation, the whole demo end to end, and SM4-GCM at rest (with the migration
of a Fernet state)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

import sdk
from agent.centre.client import centre_client
from agent.config import load_config
from agent.credentials.custody import custody_for
from agent.credentials.rotation import rotate
from agent.demo import run_demo
from agent.state.gm_cipher import MAGIC, Sm4GcmCipher, reencrypt_state
from agent.state.secrets import DataCipher
from installer.enrol import BundleError, enrol
from sandbox.local import LocalCentre
from sdk.signing import jwk_from_public_key
from sdk.suites import GM, suite_named

from .conftest import INBOXES, SECRET, Branch, drop, make_branch, mortgage_export


@pytest.fixture(scope="module")
def gm_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("gm-demo") / "run"
    # with the envelope both ways (break19 finding 7: the demo could not turn it on)
    return workdir, run_demo(workdir, say=lambda text: None, suite="gm", envelope="SM4-GCM")


def test_the_demo_runs_end_to_end_in_the_gm_suite(gm_demo: tuple[Path, dict[str, Any]]) -> None:
    """``regbridge demo --suite gm``: every loan reaches the end it reaches in intl, with SM2 keys."""
    workdir, summary = gm_demo
    assert summary["problems"] == [] and summary["idle"]
    stored = [c for a in summary["applications"] for c in a["certificates"]]
    assert len(stored) == 13 and all(c["number"] for c in stored)  # as many as the intl demo
    config = load_config(workdir / "agent.toml")
    assert config.centre.suite == "gm" and config.centre.centre_key["crv"] == "SM2"
    assert config.centre.envelope == "SM4-GCM" and config.centre.centre_encryption_key
    entries = custody_for(config, _demo_secret(workdir)).entries()
    assert {e.algorithm for e in entries} == {"sm2-sm3"}
    # the key is kept only encrypted: no plaintext private key in any file the demo wrote
    for path in workdir.rglob("*"):
        if path.is_file():
            assert b"BEGIN PRIVATE KEY" not in path.read_bytes(), path


def _demo_secret(workdir: Path) -> bytes:
    secret = workdir / "agent.secret"
    return secret.read_bytes().strip()


def test_the_key_file_is_pbes2_pkcs8_that_openssl_opens_with_the_secret(gm_demo: tuple[Path, dict[str, Any]]) -> None:
    workdir, _ = gm_demo
    config = load_config(workdir / "agent.toml")
    secret = _demo_secret(workdir)
    custody = custody_for(config, secret)
    entry = custody.entry(config.centre.key_id)
    path = custody.key_dir / entry.location
    assert path.stat().st_mode & 0o077 == 0 and path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    openssl = shutil.which("openssl")
    assert openssl
    opened = subprocess.run(
        [openssl, "pkey", "-in", str(path), "-passin", "fd:0", "-pubout"],
        input=secret,
        capture_output=True,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == custody.load(entry).public_key().to_pem()  # type: ignore[union-attr]
    wrong = subprocess.run(
        [openssl, "pkey", "-in", str(path), "-passin", "pass:wrong", "-pubout"], capture_output=True, check=False
    )
    assert wrong.returncode != 0


def test_enrol_rotate_and_sign_in_gm_with_a_user_id_of_the_centres(tmp_path: Path) -> None:
    suite = suite_named("gm", sm2_user_id="hefei-centre@example")
    with LocalCentre(suite=suite) as centre:
        iid, bundle = centre.bank()
        assert bundle["bundle"]["suite"] == {"name": "gm", "sm2_user_id": "hefei-centre@example"}
        with pytest.raises(BundleError, match="gm crypto suite"):
            enrol(bundle, tmp_path / "p256", secret=SECRET, inboxes=INBOXES, check_clock=False,
                  algorithm="ecdsa-p256-sha256")  # fmt: skip
        done = enrol(bundle, tmp_path / "branch", secret=SECRET, inboxes=INBOXES, check_clock=False)
        config = load_config(done.path)
        assert config.centre.crypto_suite == suite
        signer = custody_for(config, SECRET).signer(config.centre.key_id)
        assert signer.algorithm == "sm2-sm3"
        with centre_client(config, signer) as client:
            assert client.institution.get().institution_id == iid
        rotated = rotate(config, SECRET, grace_seconds=60)
        config = load_config(done.path)
        assert config.centre.key_id == rotated.new_key_id != rotated.old_key_id
        with centre_client(config, custody_for(config, SECRET).signer(config.centre.key_id)) as client:
            records = {c.key_id: c for c in client.credentials.list()}
        assert records[rotated.new_key_id].algorithm == "sm2-sm3" and records[rotated.new_key_id].status == "active"
        # a key signing with another user id than the centre's is refused (Z_A differs)
        wrong = custody_for(config, SECRET).signer(config.centre.key_id)
        stranger = sdk.KeySigner(wrong.key_id, wrong.private_key.with_user_id(GM.sm2_user_id))  # type: ignore[union-attr]
        with centre_client(config, stranger) as client, pytest.raises(sdk.AuthenticationFailed):
            client.institution.get()


def _sealed_values(db: Path) -> list[bytes]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        values: list[bytes] = []
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for column in [r[1] for r in con.execute(f'PRAGMA table_info("{table}")') if r[2].upper() == "BLOB"]:
                values += [
                    bytes(v) for (v,) in con.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')
                ]
        return values
    finally:
        con.close()


def test_the_gm_agent_seals_its_state_and_blobs_with_sm4_gcm(gm_demo: tuple[Path, dict[str, Any]]) -> None:
    workdir, _ = gm_demo
    values = _sealed_values(workdir / "var" / "state.db")
    blobs = [p for p in (workdir / "var" / "blobs").glob("*/*") if p.is_file()]
    assert len(values) > 10 and len(blobs) > 10
    assert all(v.startswith(MAGIC) for v in values)
    assert all(p.read_bytes().startswith(MAGIC) for p in blobs)


def test_a_fernet_state_is_reencrypted_under_sm4_gcm_when_the_agent_turns_gm(branch: Branch) -> None:
    """The migration: an intl agent's state (Fernet), then the same folder in gm mode."""
    agent = branch.agent()
    try:
        drop(branch.inbox(), "a.csv", mortgage_export(branch.inbox(), {"GM-001": 1, "GM-002": 2}))
        assert agent.run_until_idle(timeout=60)
        before = {a.reference: a.payload for a in agent.store.applications()}
    finally:
        agent.close()
    data = branch.root / "var"
    assert before and not any(v.startswith(MAGIC) for v in _sealed_values(data / "state.db"))
    fernet = DataCipher.for_directory(SECRET, data)
    blob = next(p for p in (data / "blobs").glob("*/*") if p.is_file())
    assert fernet.decrypt(blob.read_bytes())

    import tomlkit

    doc = tomlkit.parse(branch.config.read_text(encoding="utf-8"))
    doc["centre"]["suite"] = "gm"
    branch.config.write_text(tomlkit.dumps(doc), encoding="utf-8")
    agent = branch.agent()
    try:
        assert agent.store.get_meta("cipher") == "sm4-gcm"
        after = {a.reference: a.payload for a in agent.store.applications()}
        assert after == before
    finally:
        agent.close()
    assert all(v.startswith(MAGIC) for v in _sealed_values(data / "state.db"))
    assert blob.read_bytes().startswith(MAGIC)
    with pytest.raises(Exception, match="cannot be decrypted"):
        fernet.decrypt(blob.read_bytes())
    cipher = Sm4GcmCipher(SECRET, (data / "cipher.salt").read_bytes())
    assert reencrypt_state(data / "state.db", data / "blobs", cipher) == {"values": 0, "blobs": 0}  # nothing left
    with pytest.raises(Exception, match="cannot be decrypted"):
        Sm4GcmCipher(b"another secret", (data / "cipher.salt").read_bytes()).decrypt(blob.read_bytes())


def test_the_agent_encrypts_personal_fields_where_the_centre_asks(tmp_path: Path) -> None:
    """A gm centre asking for the envelope (SM4-CBC here): the bundle names it, enrolment writes it to
    the config, and the agent's applications reach the centre with the parties encrypted — a body in
    the clear would be refused (``encryption_required``, tests/sandbox/test_envelope.py)."""
    with LocalCentre(suite=suite_named("gm", envelope="SM4-CBC")) as centre:
        branch = make_branch(centre, tmp_path / "branch")
        config = load_config(branch.config)
        assert config.centre.envelope == "SM4-CBC" and config.centre.crypto_suite.envelope == "SM4-CBC"
        assert config.centre.centre_encryption_key and config.centre.centre_encryption_key["crv"] == "SM2"
        agent = branch.agent()
        try:
            assert agent.client.envelope is not None and agent.client.envelope.mode == "SM4-CBC"
            drop(branch.inbox(), "a.csv", mortgage_export(branch.inbox(), {"ENV-001": 1, "ENV-002": 2}))
            assert agent.run_until_idle(timeout=90)
        finally:
            agent.close()
        records = centre.centre.list_applications(branch.institution_id, [], None, 100)
        assert len(records) == 2 and all(r.status.value == "completed" for r in records)
        assert all(r.application.model_dump()["mortgagors"][0]["id_number"] for r in records)  # opened by the centre
        # the other way: enrolment registered the bank's own SM2 encryption key (kept encrypted in the
        # custody, never plaintext); the centre seals its answers to it and the agent's client opens them
        custody = custody_for(config, SECRET)
        mine = custody.encryption_key()
        assert mine is not None and agent.decryption_key is not None
        assert agent.decryption_key.public.to_pem() == mine.public.to_pem()
        kept = next(e for e in custody.entries() if e.state == "encryption")
        pem = (config.resolve(config.centre.key_dir) / kept.location).read_bytes()
        assert b"ENCRYPTED" in pem and mine.to_pem(None) not in pem
        registered = centre.store.one("SELECT jwk FROM encryption_keys WHERE institution_id = ?", branch.institution_id)
        assert registered is not None and json.loads(registered["jwk"]) == jwk_from_public_key(mine.public).model_dump(
            exclude_none=True
        )
        answers: list[bytes] = []

        class Recording(httpx.BaseTransport):
            def __init__(self, inner: httpx.BaseTransport) -> None:
                self.inner = inner

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                response = self.inner.handle_request(request)
                answers.append(response.read())
                response.close()
                return httpx.Response(response.status_code, headers=response.headers, content=answers[-1])

            def close(self) -> None:
                self.inner.close()

        signer = custody.signer(config.centre.key_id)
        certificate_id = records[0].certificate_ids[0]
        with centre_client(config, signer, wrap=Recording, decryption_key=mine) as client:
            meta = client.certificates.get(certificate_id).metadata
        names = [n for n in meta.obligors if n]
        assert names and not any(n.encode() in answers[-1] for n in names)  # sealed on the wire
        assert b'"encryption"' in answers[-1]
        with centre_client(config, signer) as client, pytest.raises(sdk.SignatureError, match="no decryption key"):
            client.certificates.get(certificate_id)  # refused, not used, when it does not open


def test_rotation_renews_the_envelope_encryption_key_and_opens_with_both_through_the_grace(tmp_path: Path) -> None:
    """break19 finding 5: `keys rotate` renewed the signing key (and its certificate) but the bank's SM2
    encryption key stayed for ever. It is renewed with the rotation: the centre seals to the new one at once, the
    running agent's keys (DecryptionKeys) open answers sealed to either until the grace ends, then the old is erased."""
    from agent.credentials.custody import DecryptionKeys, retire_due
    from sdk._client import open_answer
    from sdk.gm.envelope import seal_fields
    from sdk.gm.sm2 import Sm2PublicKey
    from sdk.signing import public_key_from_jwk

    def registered(centre: LocalCentre, iid: str) -> Sm2PublicKey:
        row = centre.store.one("SELECT jwk FROM encryption_keys WHERE institution_id = ?", iid)
        assert row is not None
        key = public_key_from_jwk(json.loads(row["jwk"]))
        assert isinstance(key, Sm2PublicKey)
        return key

    with LocalCentre(suite=suite_named("gm", envelope="SM4-GCM")) as centre:
        branch = make_branch(centre, tmp_path / "branch")
        config = load_config(branch.config)
        custody = custody_for(config, SECRET)
        keys = DecryptionKeys(custody)  # what a running agent holds
        old = custody.encryption_key()
        assert old is not None and [k.public for k in keys] == [old.public] == [
            registered(centre, branch.institution_id)
        ]
        sealed_before = json.dumps(seal_fields({"party": {"name": "张三", "id_number": "x"}}, old.public)).encode()

        rotate(config, SECRET, grace_seconds=3600)
        new = custody.encryption_key()
        assert new is not None and new.public != old.public
        assert registered(centre, branch.institution_id) == new.public  # the centre seals to the new key now
        assert [k.public for k in keys] == [new.public, old.public]  # the running agent follows the manifest
        sealed_after = json.dumps(seal_fields({"party": {"name": "李四", "id_number": "y"}}, new.public)).encode()
        assert "张三" in open_answer(sealed_before, keys).decode()  # sealed before the switch: still opens
        assert "李四" in open_answer(sealed_after, keys).decode()
        with pytest.raises(sdk.SignatureError):
            open_answer(sealed_after, old)

        previous = next(e for e in custody.entries() if e.state == "encryption-previous")
        previous.retire_at = "2000-01-01T00:00:00+00:00"
        custody.save([previous if e.fingerprint == previous.fingerprint else e for e in custody.entries()])
        assert retire_due(custody, keep=load_config(branch.config).centre.key_id) == [previous.fingerprint]
        assert not (config.resolve(config.centre.key_dir) / previous.location).exists()
        assert [k.public for k in keys] == [new.public]
        with pytest.raises(sdk.SignatureError):
            open_answer(sealed_before, keys)


def test_the_gm_demo_stores_ofd_certificates_and_sealed_notices(gm_demo: tuple[Path, dict[str, Any]]) -> None:
    """Issue 20: in gm the certificates are OFD (GB/T 38540 seals, verified fully before storing), and the
    centre's sealed notices (受理凭证, 不予受理/不予登记/补正通知书) are stored beside them, named in receipts."""
    from sdk.ofd.reader import read_ofd

    workdir, summary = gm_demo
    stored = [c for a in summary["applications"] for c in a["certificates"]]
    assert stored and all(c["document"].endswith(".ofd") for c in stored)
    for cert in stored:
        assert read_ofd((workdir / cert["document"]).read_bytes()).signatures
    sidecar = json.loads((workdir / stored[0]["document"]).with_suffix(".json").read_text(encoding="utf-8"))
    assert "GB/T 38540" in sidecar["verified"]["seal"]
    kinds = {n["kind"] for n in summary["notices"]}
    # no 不予受理通知书 in the demo any more: the pre-flight holds those rows (test_reapply.py stores one)
    assert {"acceptance_receipt", "refusal", "correction"} <= kinds, kinds
    assert summary["problems"] == [], summary["problems"]
    for notice in summary["notices"]:
        path = Path(notice["document"])
        assert path.suffix == ".ofd" and path.is_file() and notice["number"] in path.name
        doc = read_ofd(path.read_bytes())
        assert notice["number"] in doc.text and doc.signatures
    # each notice once, even though events come at least once
    assert len({n["number"] for n in summary["notices"]}) == len(summary["notices"])
