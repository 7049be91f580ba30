"""Enrolment: refusals (altered or expired bundle, used token, clock far off) and safe re-runs."""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import sdk
from agent.credentials.custody import KeyCustody
from installer.enrol import BundleError, enrol
from sandbox import register
from sandbox.faults import Faults, FaultsConfig
from sandbox.local import LocalCentre
from sdk.signing import generate_private_key, jwk_fingerprint, jwk_from_public_key
from tests.agent.conftest import INBOXES, SECRET


def _enrol(bundle: dict[str, Any], folder: Path, **kw: Any) -> Any:
    return enrol(bundle, folder, secret=kw.pop("secret", SECRET), inboxes=INBOXES, **kw)


def _keys_at_centre(centre: LocalCentre, iid: str) -> list[Any]:
    return centre.centre.list_credentials(iid)


def test_a_bundle_altered_or_signed_by_someone_else_is_refused(centre: LocalCentre, tmp_path: Path) -> None:
    iid, bundle = centre.bank()
    altered = copy.deepcopy(bundle)
    altered["bundle"]["api_base_url"] = "http://127.0.0.1:1"
    with pytest.raises(BundleError, match="altered or signed by someone else"):
        _enrol(altered, tmp_path / "a")
    # an attacker re-signs it with a key of their own: consistent, but not the centre's published key
    forged = copy.deepcopy(bundle)
    attacker = cast(Ed25519PrivateKey, generate_private_key())  # the default algorithm
    forged["bundle"]["trust"]["centre_key"] = jwk_from_public_key(attacker.public_key()).model_dump(exclude_none=True)
    canonical = json.dumps(forged["bundle"], ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    forged["signature"]["value"] = base64.b64encode(attacker.sign(canonical)).decode()
    published = jwk_fingerprint(sdk.models.PublicJwk.model_validate(bundle["bundle"]["trust"]["centre_key"]))
    with pytest.raises(BundleError, match="signed by someone else"):
        _enrol(forged, tmp_path / "b", expected_fingerprint=published)
    # a folder already enrolled trusts the centre key it has: the forged one is refused there too
    _enrol(bundle, tmp_path / "c", expected_fingerprint=published)
    with pytest.raises(BundleError, match="another centre key than the one this agent already trusts"):
        _enrol(forged, tmp_path / "c")
    assert len(_keys_at_centre(centre, iid)) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "agent.toml").exists()


def test_an_expired_bundle_and_a_used_token_are_clear_errors(centre: LocalCentre, tmp_path: Path) -> None:
    _, expired = centre.bank(valid_for=timedelta(seconds=-1))
    with pytest.raises(BundleError, match="expired"):
        _enrol(expired, tmp_path / "a")
    iid, bundle = centre.bank(name=register.OTHER_BANK.name, uscc=register.OTHER_BANK.id_number, operators=())
    _enrol(bundle, tmp_path / "first")
    with pytest.raises(BundleError, match="already used"):
        _enrol(bundle, tmp_path / "second")  # another machine, the same token
    assert len(_keys_at_centre(centre, iid)) == 1


def test_a_clock_far_off_is_refused_before_the_token_is_spent(tmp_path: Path) -> None:
    with LocalCentre(faults=Faults(FaultsConfig(clock_skew_seconds=900))) as skewed:
        iid, bundle = skewed.bank()
        with pytest.raises(BundleError, match=r"clock is (\d+) s behind the centre's") as refused:
            _enrol(bundle, tmp_path / "branch")
        seconds = int(re.search(r"clock is (\d+) s", str(refused.value)).group(1))  # type: ignore[union-attr]
        assert 898 <= seconds <= 902  # the Date header has a one-second resolution
        assert _keys_at_centre(skewed, iid) == []
        done = _enrol(bundle, tmp_path / "branch", check_clock=False)  # the token is still good
        assert done.key_id.startswith("key_")


def test_enrolling_again_is_safe_and_a_lost_answer_is_completed_with_the_same_key(
    centre: LocalCentre, tmp_path: Path
) -> None:
    iid, bundle = centre.bank()
    folder = tmp_path / "branch"
    # the first run made its key and the centre registered it, but the answer never arrived
    custody = KeyCustody(folder / "keys", "file", iid, SECRET)
    key = generate_private_key()
    custody.put(key, "pending")
    with sdk.Client(centre.url) as anon:
        lost = anon.credentials.enroll(bundle["bundle"]["token"], jwk_from_public_key(key.public_key()))
    done = _enrol(bundle, folder)
    assert (done.key_id, done.already) == (lost.key_id, False)
    again = _enrol(bundle, folder)
    assert (again.key_id, again.already) == (lost.key_id, True)
    assert [k.key_id for k in _keys_at_centre(centre, iid)] == [lost.key_id]
    assert [(e.key_id, e.state) for e in custody.entries()] == [(lost.key_id, "current")]


def test_each_instance_of_a_shared_state_enrols_its_own_key_and_uses_the_one_secret(
    centre: LocalCentre, tmp_path: Path
) -> None:
    import os
    import shutil

    from agent.config import load_config
    from agent.daemon import Agent
    from tests.agent.conftest import drop, mortgage_export

    iid, bundle = centre.bank()
    shared = tmp_path / "shared"  # the mount every host sees: the state (here SQLite), the encrypted copies
    shared.mkdir()
    settings = {"state": {"url": f"sqlite:///{shared / 'state.db'}", "blobs_dir": str(shared / "blobs")}}
    a = enrol(bundle, tmp_path / "host-a", inboxes=INBOXES, settings=settings, key_store="file")
    assert a.secret_where  # the first instance made the agent secret
    second = centre.centre.enrolment_bundle(iid, centre.url, valid_for=timedelta(days=1))  # a bundle per host
    with pytest.raises(BundleError, match="secret of the shared state is not on this host"):
        enrol(second, tmp_path / "host-b", inboxes=[], join=a.path, key_store="file")
    with pytest.raises(BundleError, match="no shared state"):
        third = centre.centre.enrolment_bundle(iid, centre.url, valid_for=timedelta(days=1))
        alone = enrol(third, tmp_path / "alone", secret=SECRET, inboxes=INBOXES)  # a branch on its own
        enrol(second, tmp_path / "host-x", secret=SECRET, inboxes=[], join=alone.path)
    assert not (tmp_path / "host-b" / "agent.toml").exists()  # refused before anything was written
    shutil.copy(tmp_path / "host-a" / "agent.secret", tmp_path / "host-b" / "agent.secret")  # delivered, not made
    os.chmod(tmp_path / "host-b" / "agent.secret", 0o600)
    b = enrol(second, tmp_path / "host-b", inboxes=[], join=a.path, key_store="file")  # the token was not spent
    assert b.key_id != a.key_id and not b.secret_where
    active = {k.key_id for k in _keys_at_centre(centre, iid) if k.status == "active"}
    assert {a.key_id, b.key_id} <= active  # the centre holds both, for the one institution
    secret = (tmp_path / "host-a" / "agent.secret").read_bytes()
    kept = {
        host: {e.fingerprint for e in KeyCustody(tmp_path / host / "keys", "file", iid, secret).entries()}
        for host in ("host-a", "host-b")
    }
    assert kept["host-a"] and kept["host-b"] and not kept["host-a"] & kept["host-b"]  # never copied
    config_a, config_b = load_config(a.path), load_config(b.path)
    assert config_b.centre.key_id == b.key_id and config_b.state.url == config_a.state.url
    assert [config_b.resolve(i.path) for i in config_b.inbox] == [config_a.resolve(i.path) for i in config_a.inbox]
    assert config_b.resolve(config_b.documents.root) == config_a.resolve(config_a.documents.root)
    agent_a, agent_b = Agent(config_a), Agent(config_b)
    try:
        inbox = config_a.resolve(config_a.inbox[0].path)
        drop(inbox, "a.csv", mortgage_export(inbox, {"JN-001": 1}))
        assert agent_a.scan() == 1
        (ref,) = [a.reference for a in agent_a.store.applications()]
        read_b = agent_b.store.application(ref)  # the other host decrypts it with the one secret
        assert read_b is not None and read_b.payload == agent_a.store.application(ref).payload  # type: ignore[union-attr]
        assert {r.key_id for r in agent_b.client.credentials.list()} >= {a.key_id, b.key_id}  # signed with b's key
        assert agent_b.signer is not None and agent_b.signer.key_id == b.key_id
    finally:
        agent_a.close()
        agent_b.close()


def test_a_joining_host_never_gets_a_copy_of_the_database_password(tmp_path: Path) -> None:
    """``--join`` copies the shared state's settings; a password left in ``state.url`` (either form) is not copied
    into the new host's config in plaintext: that host's user gives it in its own ~/.pgpass (docs/state.md)."""
    from installer.enrol import _joined

    for url, bare in (
        ("postgresql+psycopg://agent:Pw-j0in%40x@db.bank.local:5432/regbridge",
         "postgresql+psycopg://agent@db.bank.local:5432/regbridge"),
        ("postgresql+psycopg://agent@db.bank.local/regbridge?sslmode=require&password=Pw-j0in",
         "postgresql+psycopg://agent@db.bank.local/regbridge?sslmode=require"),
        ("sqlite:////srv/shared/state.db", "sqlite:////srv/shared/state.db"),
    ):  # fmt: skip
        joined = tmp_path / "agent.toml"
        joined.write_text(
            f'[centre]\ninstitution_id = "inst_1"\n[state]\nurl = "{url}"\nblobs_dir = "/srv/shared/blobs"\n',
            encoding="utf-8",
        )
        taken = _joined(joined, "inst_1")
        assert taken["settings"]["state"]["url"] == bare and "Pw-j0in" not in str(taken)
