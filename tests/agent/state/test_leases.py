"""Several instances on one state (agent.state.leases), on each backend: leases, claims, the reaper;
the claim race run by real concurrent instances (one store each, as separate agents have)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.state.leases import LEADER
from agent.state.store import StateStore

from .conftest import application, open_store


def test_one_holder_per_lease_and_a_new_one_once_it_expires(store: StateStore) -> None:
    assert store.acquire_lease(LEADER, "a", ttl=0.5)
    assert not store.acquire_lease(LEADER, "b", ttl=0.5)
    assert store.acquire_lease(LEADER, "a", ttl=0.5)  # renewed by its holder
    assert store.lease_holder(LEADER) == "a"
    time.sleep(0.6)
    assert store.lease_holder(LEADER) is None
    assert store.acquire_lease(LEADER, "b", ttl=5)  # taken over once expired
    assert not store.acquire_lease(LEADER, "a", ttl=5)
    store.release_lease(LEADER, "a")  # not a's to give up
    assert store.lease_holder(LEADER) == "b"
    store.release_lease(LEADER, "b")
    assert store.acquire_lease(LEADER, "a", ttl=5)


def test_due_applications_are_claimed_by_one_instance_until_released_or_expired(store: StateStore) -> None:
    for i in range(4):
        store.add_application(application(f"R{i}"))
    store.update_application("R3", next_attempt_at=time.time() + 3600)  # not due yet
    now = time.time()
    first = store.claim_applications("a", ("queued",), ttl=30, limit=2, due_before=now)
    second = store.claim_applications("b", ("queued",), ttl=30, limit=10, due_before=now)
    assert len(first) == 2 and set(first) | set(second) == {"R0", "R1", "R2"} and not set(first) & set(second)
    assert store.claim_applications("c", ("queued",), ttl=30, limit=10, due_before=now) == []
    assert store.claim_applications("a", ("queued",), ttl=30, limit=10, due_before=now) == first  # still a's
    store.release_claim(first[0], "b")  # not b's claim
    store.release_claim(first[0], "a")
    assert store.claim_applications("c", ("queued",), ttl=0.3, limit=10, due_before=now) == [first[0]]
    time.sleep(0.4)
    assert store.claim_applications("d", ("queued",), ttl=30, limit=10, due_before=now) == [first[0]]
    assert store.claim_applications("d", ("tracking",), ttl=30, limit=10) == []
    app = store.application("R0")
    assert app is not None and app.stage == "queued"  # a claim is not a change of stage
    assert [t["stage"] for t in store.transitions("R0")] == ["queued"]


def test_certificates_are_claimed_by_one_instance_for_delivery(store: StateStore) -> None:
    store.add_application(application("R1"))
    for cid in ("C1", "C2", "C3"):
        assert store.add_certificate(cid, "R1")
    store.update_certificate("C3", stage="stored", supersede_pending=1)
    first = store.claim_certificates("a", ("pending", "storing"), ttl=30, limit=1)
    second = store.claim_certificates("b", ("pending", "storing"), ttl=30, limit=10)
    assert first == ["C1"] and second == ["C2"]  # oldest first, none shared
    assert store.claim_certificates("c", ("pending", "storing"), ttl=30, limit=10) == []
    assert store.claim_certificates("b", ("pending",), ttl=30, limit=10, among=["C1"]) == []  # a's
    assert store.claim_certificates("a", ("stored",), ttl=30, limit=10) == ["C3"]
    store.release_certificate("C3", "a")
    assert store.claim_certificates("b", ("stored",), ttl=30, limit=10, superseding=True) == ["C3"]
    store.update_certificate("C3", supersede_pending=0)
    store.release_certificate("C3", "b")
    assert store.claim_certificates("a", ("stored",), ttl=30, limit=10, superseding=True) == []
    store.release_certificate("C1", "b")  # not b's claim
    assert store.claim_certificates("b", ("pending",), ttl=30, limit=10, among=["C1"]) == []
    store.release_certificate("C1", "a")
    assert store.claim_certificates("b", ("pending",), ttl=30, limit=10, among=["C1", "C2"]) == ["C1", "C2"]
    assert {i: store.certificate(i)["stage"] for i in ("C1", "C2")} == {"C1": "pending", "C2": "pending"}  # type: ignore[index]


def test_the_reaper_frees_what_a_dead_instance_held(store: StateStore) -> None:
    store.add_application(application("R1"))
    store.register_instance("dead", "host-a", 101)
    store.register_instance("alive", "host-b", 202)
    assert store.acquire_lease(LEADER, "dead", ttl=60)
    assert store.claim_applications("dead", ("queued",), ttl=60, limit=10) == ["R1"]
    assert store.claim_file("f" * 64, "dead", path="/in/a.csv", inbox="corebank", profile="p")
    assert store.add_certificate("C1", "R1")
    assert store.claim_certificates("dead", ("pending",), ttl=60, limit=10) == ["C1"]
    shown = {i["id"]: i for i in store.instances()}
    assert shown["dead"]["leader"] and shown["dead"]["claims"] == 2 and shown["dead"]["host"] == "host-a"
    assert not shown["alive"]["leader"] and shown["alive"]["leases"] == []
    time.sleep(0.5)
    assert store.heartbeat("alive")
    assert store.reap(stale_seconds=0.4) == ["dead"]
    assert store.lease_holder(LEADER) is None
    assert store.claim_applications("alive", ("queued",), ttl=60, limit=10) == ["R1"]
    assert store.claim_certificates("alive", ("pending",), ttl=60, limit=10) == ["C1"]
    assert store.file_seen("f" * 64) is None  # claimed, never ingested: free for another instance
    assert [i["id"] for i in store.instances()] == ["alive"]
    assert not store.heartbeat("dead")  # the dead one, if it was only slow, learns it must register again


def test_an_export_and_an_event_are_each_taken_once(store: StateStore) -> None:
    assert store.claim_file("e" * 64, "a", path="/in/a.csv", inbox="corebank", profile="p")
    assert not store.claim_file("e" * 64, "b", path="/in/copy.csv", inbox="corebank", profile="p")
    store.record_file("e" * 64, status="done")
    assert not store.claim_file("e" * 64, "c", path="/in/a.csv", inbox="corebank", profile="p")
    assert (store.file_seen("e" * 64) or {}).get("claimed_by") == "a"
    assert store.claim_event("ev-1", 1) and not store.claim_event("ev-1", 1)
    assert store.event_seen("ev-1")
    with pytest.raises(RuntimeError), store.transaction():
        assert store.claim_event("ev-2", 2)
        raise RuntimeError("the effects failed")
    assert store.claim_event("ev-2", 2)  # rolled back with its effects: handled again later
    # a platform's nonce: once per sender within the window, forgotten once older than the window
    assert store.claim_nonce("PLATFORM", "n1", at=1000.0, keep_seconds=600)
    assert not store.claim_nonce("PLATFORM", "n1", at=1500.0, keep_seconds=600)
    assert store.claim_nonce("OTHER", "n1", at=1500.0, keep_seconds=600)  # another sender's nonce space
    assert store.claim_nonce("PLATFORM", "n2", at=1700.0, keep_seconds=600)  # n1 (taken at 1000) is forgotten now
    assert store.claim_nonce("PLATFORM", "n1", at=1700.0, keep_seconds=600)
    assert store.event_seen("ev-1") and store.event_seen("ev-2")  # the feed's events are never pruned with them


def test_instances_claiming_at_once_never_share_an_application(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    setup = open_store(backend, tmp_path, request)
    total = 120
    with setup.transaction():
        for i in range(total):
            setup.add_application(application(f"R{i:03d}"))
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def instance(name: str) -> None:
        try:
            own = open_store(backend, tmp_path, request)  # each instance its own store and connections
        except BaseException as exc:  # reported below
            errors.append(exc)
            start.abort()
            return
        try:
            start.wait(timeout=60)
            mine: list[str] = []
            while batch := own.claim_applications(name, ("queued",), ttl=600, limit=7):
                mine += [r for r in batch if r not in mine]
                for ref in batch:
                    own.update_application(ref, stage="created", note=f"by {name}")
            claimed[name] = mine
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=instance, args=(f"i{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    every = [ref for refs in claimed.values() for ref in refs]
    assert sorted(every) == [f"R{i:03d}" for i in range(total)], "each application claimed exactly once"
    assert setup.counts() == {"created": total}
    assert all(len(setup.transitions(f"R{i:03d}")) == 2 for i in range(total))
    setup.close()


def test_on_postgresql_a_claim_skips_the_rows_another_instance_is_claiming(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    first = open_store("sqlalchemy-postgresql", tmp_path, request)
    second = open_store("sqlalchemy-postgresql", tmp_path, request)
    with first.transaction():
        for i in range(4):
            first.add_application(application(f"R{i}"))
    got: list[str] = []
    with first.transaction():  # first's claim not yet committed: its rows are locked
        mine = first.claim_applications("a", ("queued",), ttl=60, limit=2)
        other = threading.Thread(
            target=lambda: got.extend(second.claim_applications("b", ("queued",), ttl=60, limit=9))
        )
        started = time.monotonic()
        other.start()
        other.join(10)
        waited = time.monotonic() - started
    assert not other.is_alive() and waited < 5, "the second claim waited for the first (no SKIP LOCKED)"
    assert sorted(mine + got) == ["R0", "R1", "R2", "R3"] and not set(mine) & set(got)
    first.close()
    second.close()
