"""The agent against a centre of the 国密 suite (issue 19): enrolment from a gm bundle, SM2 keys in
the encrypted software custody, every request signed sm2-sm3, certificates verified with the
centre's SM2 key, rotation, and the whole demo end to end."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import sdk
from agent.centre.client import centre_client
from agent.config import load_config
from agent.credentials.custody import custody_for
from agent.credentials.rotation import rotate
from agent.demo import run_demo
from agent.enrol import BundleError, enrol
from sandbox.local import LocalCentre
from sdk.suites import GM, suite_named

from .conftest import INBOXES, SECRET


@pytest.fixture(scope="module")
def gm_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("gm-demo") / "run"
    return workdir, run_demo(workdir, say=lambda text: None, suite="gm")


def test_the_demo_runs_end_to_end_in_the_gm_suite(gm_demo: tuple[Path, dict[str, Any]]) -> None:
    """``regbridge demo --suite gm``: every loan reaches the end it reaches in intl, with SM2 keys."""
    workdir, summary = gm_demo
    assert summary["problems"] == [] and summary["idle"]
    stored = [c for a in summary["applications"] for c in a["certificates"]]
    assert len(stored) == 13 and all(c["number"] for c in stored)  # as many as the intl demo
    config = load_config(workdir / "agent.toml")
    assert config.centre.suite == "gm" and config.centre.centre_key["crv"] == "SM2"
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
