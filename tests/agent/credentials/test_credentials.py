"""Key custody in the OS keyring, and a rotation interrupted after the centre answered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend

import sdk
from agent.config import load_config
from agent.credentials.custody import custody_for
from agent.credentials.rotation import rotate
from agent.daemon import Agent
from installer.enrol import enrol
from sandbox.local import LocalCentre

from ..conftest import INBOXES, SECRET


def _enrol(bundle: dict[str, Any], folder: Path, **kw: Any) -> Any:
    return enrol(bundle, folder, secret=kw.pop("secret", SECRET), inboxes=INBOXES, **kw)


def _keys_at_centre(centre: LocalCentre, iid: str) -> list[Any]:
    return centre.centre.list_credentials(iid)


class MemoryKeyring(KeyringBackend):
    """An OS keyring stand-in (the keyring API, kept in memory)."""

    priority = 10

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


def test_keyring_custody_keeps_key_and_secret_out_of_the_filesystem(centre: LocalCentre, tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        iid, bundle = centre.bank()
        done = enrol(bundle, tmp_path / "branch", inboxes=INBOXES, key_store="auto")
        assert done.key_store == "keyring" and "OS keyring" in done.key_where
        assert done.secret_where and "OS keyring" in done.secret_where
        assert not list((tmp_path / "branch").rglob("*.key")) and not (tmp_path / "branch" / "agent.secret").exists()
        stored = [v for (service, _), v in ring.items.items() if service == "regbridge-agent-key"]
        assert len(stored) == 1 and stored[0].startswith("-----BEGIN ENCRYPTED PRIVATE KEY")
        agent = Agent(load_config(done.path))  # the secret and the key both from the keyring
        try:
            assert agent.client.institution.get().institution_id == iid
        finally:
            agent.close()
    finally:
        keyring.set_keyring(previous)


class LostAnswer(Exception):
    pass


def test_a_rotation_interrupted_after_the_centre_answered_is_finished_with_the_same_key(
    centre: LocalCentre, tmp_path: Path
) -> None:
    iid, bundle = centre.bank()
    done = _enrol(bundle, tmp_path / "branch")
    config = load_config(done.path)
    custody = custody_for(config, SECRET)

    class AnswerLost:
        """The centre registers the new key; the answer is lost on the way back."""

        def __init__(self) -> None:
            self.client = sdk.Client(centre.url, custody.signer(config.centre.key_id))
            self.credentials = self

        def rotate(self, *args: Any, **kwargs: Any) -> Any:
            self.client.credentials.rotate(*args, **kwargs)
            raise LostAnswer

    lost = AnswerLost()
    with pytest.raises(LostAnswer):
        rotate(config, SECRET, grace_seconds=60, client=lost)  # type: ignore[arg-type]
    lost.client.close()
    assert load_config(done.path).centre.key_id == done.key_id  # not switched yet
    result = rotate(load_config(done.path), SECRET, grace_seconds=60)
    assert result.resumed and result.old_key_id == done.key_id
    keys = _keys_at_centre(centre, iid)
    assert [k.key_id for k in keys] == [done.key_id, result.new_key_id]  # the same new key, once
    assert keys[0].revoke_at is not None and keys[1].revoke_at is None
    assert load_config(done.path).centre.key_id == result.new_key_id
    states = {e.key_id: e.state for e in custody.entries()}
    assert states == {done.key_id: "previous", result.new_key_id: "current"}
    agent = Agent(load_config(done.path), secret=SECRET)
    try:
        assert agent.client.institution.get().institution_id == iid  # signs with the new key
        assert agent.signer is not None and agent.signer.key_id == result.new_key_id
        # a request signed with the rotated-out key and refused does not pause the agent; one with ours does
        pause = agent.supervision.pause
        pause("AuthenticationFailed", f"key {done.key_id} is revoked (HTTP 401, code key_revoked)")
        assert agent.paused is None
        pause("AuthenticationFailed", f"key {result.new_key_id} is revoked (HTTP 401, code key_revoked)")
        assert agent.paused == "AuthenticationFailed"
    finally:
        agent.close()

