"""The backup/restore drill (issue 22 item 4, docs/state.md): a backup, then exports ingested and applications
submitted after it, then a restore to it — nothing lost, nothing sent twice, no receipt line twice.

Before the backup: export A goes all the way through; export C is only ingested (queued). After it: C is
submitted and B ingested and submitted, both to stored certificates and receipts. Then the state is
restored to the backup with ``regbridge restore``: B is ingested again from the recovery journal, every
application of C and B is re-adopted from the centre by its client reference (never created again), the
receipt lines written after the backup are known as delivered; the agent then finishes. The centre holds
one application per loan, the document store one copy of each certificate, the receipts each line once;
a later backup empties the recovery journal.

The drill runs on both state stores: the embedded SQLite file (SQLite's online backup API) and a real
PostgreSQL (``pg_dump -Fc`` / ``pg_restore``, the server's own version: tests/postgres.py). On PostgreSQL the
restore is first refused while another host's instance runs and leads (asked of the database, from a host
without a lock file), and goes on once that instance has stopped (its heartbeat stale).

Then a backup is checked before anything live is touched: a damaged byte in any file, an added file, or a
state that does not pass ``PRAGMA integrity_check`` refuses the restore and leaves the agent as it was; a
damaged or lost live state is replaced from a good backup, with this host's lock held throughout.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from agent.cli import app
from agent.cli.inspect import agent_process
from agent.config import load_config
from agent.daemon import Agent, AgentBusy
from agent.demo import samples
from agent.state.backup import (
    BackupError,
    RecoveryJournal,
    _libpq,
    _pg_tool,
    live_instances,
    manifest_mac,
    recovery_dir,
)
from agent.state.sql import SQLStore
from sandbox.local import LocalCentre
from tests.agent.conftest import SECRET, drop, make_branch
from tests.postgres import PostgresServer
from tests.reliability.harness import outcome, units

runner = CliRunner()


def _export(inbox: Path, name: str, loans: list[str], start: int) -> None:
    rows: list[dict[str, str]] = []
    for loan, unit in zip(loans, units(len(loans), start), strict=True):
        samples.write_materials(inbox / "materials", loan, "mortgage_first")
        rows += samples.mortgage_rows(loan, unit, amount="100")
    drop(inbox, name, samples.corebank_csv(rows))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_restore_to_a_backup_loses_nothing_and_sends_nothing_twice(
    centre: LocalCentre, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    # (a short leader lease on PostgreSQL: a stopped instance's heartbeat is stale after 3 × 1 s)
    state = {"url": request.getfixturevalue("pg_url"), "leader_seconds": 1.0} if backend == "postgresql" else {}
    branch = make_branch(centre, tmp_path / "branch", rescan_seconds=1.0, max_poll_seconds=1.0, state=state)
    inbox = branch.inbox()
    a, c, b = ["BK-A1", "BK-A2"], ["BK-C1"], ["BK-B1", "BK-B2"]
    agent = branch.agent()
    try:
        _export(inbox, "a.csv", a, 40)
        assert agent.run_until_idle(timeout=120)
        apps = agent.store.applications()  # the whole pipeline, on either store: certificates and receipts out
        assert len(apps) == 2 and {x.stage for x in apps} == {"done"}, [(x.reference, x.stage) for x in apps]
        assert len(agent.store.certificates("stored")) == 2
        assert {r["reference"] for r in agent.store.receipts()} >= {x.reference for x in apps}
        if backend == "postgresql":
            assert isinstance(agent.store, SQLStore) and agent.store.dialect == "postgresql"
            assert not (agent.data_dir / "state.db").exists()  # nothing went to the embedded store
        assert len(centre.store.all("SELECT id FROM applications")) == 2
        _export(inbox, "c.csv", c, 42)
        assert agent.scan() == 1  # ingested, not sent: it is sent after the backup
    finally:
        agent.close()
    env = {"REGBRIDGE_AGENT_SECRET": SECRET.decode()}  # keys the manifest's MAC
    taken = runner.invoke(app, ["backup", "--config", str(branch.config), "--out", str(tmp_path / "backup-1")], env=env)
    assert taken.exit_code == 0 and "备份完成" in taken.output, taken.output
    dump = "state.db" if backend == "sqlite" else "state.pgdump"
    assert (tmp_path / "backup-1" / dump).exists() and (tmp_path / "backup-1" / "audit.log").exists()
    assert any((tmp_path / "backup-1" / "keys").iterdir())  # the key file, encrypted as kept
    config = load_config(branch.config)
    journal = RecoveryJournal(recovery_dir(config))
    assert journal.exports() == [] and journal.receipts() == []  # the backup covers everything so far

    agent = branch.agent()
    try:
        _export(inbox, "b.csv", b, 43)
        assert agent.run_until_idle(timeout=120)
        after = {r.reference: r.application_id for r in agent.store.applications()}
    finally:
        agent.close()
    assert [e["name"] for e in journal.exports()] == ["b.csv"]  # kept outside the state until a backup covers it
    assert {r["reference"] for r in journal.receipts()} >= {f"{loan}-DYSC" for loan in b + c}

    restore = ["restore", str(tmp_path / "backup-1"), "--config", str(branch.config)]
    if backend == "postgresql":  # another host's instance runs and leads: refused before pg_restore --clean runs,
        # asked of the database itself, also from a host without a lock file
        (agent.data_dir / "agent.lock").unlink(missing_ok=True)
        cut = tmp_path / "backup-cut"  # a dump cut short, its checksum made to match: read whole, refused by name
        shutil.copytree(tmp_path / "backup-1", cut)
        (cut / "state.pgdump").write_bytes((cut / "state.pgdump").read_bytes()[:-2000])
        listed = json.loads((cut / "manifest.json").read_text(encoding="utf-8"))
        listed["files"]["state.pgdump"] = _sha(cut / "state.pgdump")
        listed["mac"] = manifest_mac(listed, SECRET)  # (as one taken of an already cut dump)
        (cut / "manifest.json").write_text(json.dumps(listed), encoding="utf-8")
        refused = runner.invoke(app, ["restore", str(cut), "--config", str(branch.config)], env=env)
        assert refused.exit_code == 1 and f"{cut / 'state.pgdump'}: pg_restore cannot read it" in refused.output
        other = Agent(config.model_copy(update={"data_dir": tmp_path / "host-b"}), secret=SECRET)
        try:
            assert other.beat() and other.is_leader
            refused = runner.invoke(app, restore, env=env)
            assert refused.exit_code == 2, refused.output
            said = f"instance {other.instance_id} on {socket.gethostname()} (heartbeat"
            assert said in refused.output and "holds the leader lease" in refused.output, refused.output
            assert {r.reference for r in other.store.applications()} == set(after)  # nothing restored
        finally:
            other.close()  # stopped: once its heartbeat is stale (3 × leader_seconds) the restore goes on
        deadline = time.monotonic() + 30
        while live_instances(state["url"], 3.0, this=agent.instance_id):
            assert time.monotonic() < deadline, "the stopped instance's heartbeat went stale"
            time.sleep(0.2)
    restored = runner.invoke(app, restore, env=env)
    assert restored.exit_code == 0, restored.output
    assert "1 export(s) ingested again, 3 application(s) re-adopted" in restored.output, restored.output
    assert "恢复完成" in restored.output, restored.output
    agent = branch.agent()
    try:
        for loan in b + c:  # re-adopted: the centre's application, not a new one
            app_row = agent.store.application(f"{loan}-DYSC")
            assert app_row is not None and app_row.application_id == after[f"{loan}-DYSC"]
        assert agent.run_until_idle(timeout=120)
        stages = {r.reference: r.stage for r in agent.store.applications()}
        assert set(stages.values()) == {"done"}
    finally:
        agent.close()
    result = outcome(centre, branch, a + c + b, stages=stages)
    stored = sorted(str(p.relative_to(branch.root)) for p in (branch.root / "documents").rglob("*") if p.is_file())
    assert result.lost == 0 and result.duplicated == 0, f"{result.explain()}; {stored}"
    assert len(centre.store.all(
        "SELECT id FROM applications WHERE institution_id = ?", branch.institution_id)) == 5  # fmt: skip

    again = runner.invoke(app, ["backup", "--config", str(branch.config), "--out", str(tmp_path / "backup-2")], env=env)
    assert again.exit_code == 0, again.output
    assert journal.exports() == [] and journal.receipts() == []


def test_pg_dump_and_pg_restore_are_the_servers_version(postgres: PostgresServer, pg_url: str) -> None:
    """Debian keeps each version's binaries under /usr/lib/postgresql/<major>/bin, not on PATH: the backup
    takes the server's own major version (pg_dump refuses a server newer than itself)."""
    major = int(postgres.psql("SHOW server_version_num")) // 10000
    for tool in ("pg_dump", "pg_restore"):
        path = Path(_pg_tool(tool, pg_url))
        assert path.name == tool and path.parent.parent.name == str(major)
    with pytest.raises(BackupError, match="cannot reach the PostgreSQL state"):
        _pg_tool("pg_dump", f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/none")
    # a password in state.url reaches pg_dump/pg_restore in their environment, never on their command line
    with_password = sa.make_url(pg_url).set(password="Pw-9c1e").render_as_string(hide_password=False)
    uri, env = _libpq(with_password)
    assert "Pw-9c1e" not in uri and env["PGPASSWORD"] == "Pw-9c1e" and uri.startswith("postgresql://")
    assert sa.make_url(uri).database == sa.make_url(pg_url).database


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flip(path: Path, at: int) -> None:
    """Damage one byte of ``path`` (``at`` from the end when negative)."""
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_damaged_backup_is_refused_before_anything_live_is_touched_and_a_damaged_or_lost_state_is_replaced(
    centre: LocalCentre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest holds every file's SHA-256; ``restore`` checks the whole backup (and the state itself:
    ``PRAGMA integrity_check``) before it touches the live state, and never opens the current state, so a
    damaged live state.db is replaced from a good backup. This host's lock is held for the whole restore."""
    branch = make_branch(centre, tmp_path / "branch")
    env = {"REGBRIDGE_AGENT_SECRET": SECRET.decode()}
    live = branch.root / "var" / "state.db"
    assert not live.exists()  # nothing to back up yet: the failed backup leaves no folder behind
    nested = tmp_path / "made" / "by" / "backup"
    failed = runner.invoke(app, ["backup", "--config", str(branch.config), "--out", str(nested)], env=env)
    assert failed.exit_code == 1 and "no state at" in failed.output, failed.output
    assert not (tmp_path / "made").exists()
    empty = tmp_path / "given"  # a folder the operator made: kept (empty), only what the backup wrote goes
    empty.mkdir()
    failed = runner.invoke(app, ["backup", "--config", str(branch.config), "--out", str(empty)], env=env)
    assert failed.exit_code == 1 and empty.is_dir() and not any(empty.iterdir()), failed.output

    agent = branch.agent()
    try:
        agent.store.set_meta("drill", "before the backup")
    finally:
        agent.close()
    good = tmp_path / "backup"
    taken = runner.invoke(app, ["backup", "--config", str(branch.config), "--out", str(good)], env=env)
    assert taken.exit_code == 0, taken.output
    manifest = json.loads((good / "manifest.json").read_text(encoding="utf-8"))
    assert {"state.db", "cipher.salt"} <= set(manifest["files"])
    assert any(name.startswith("keys/") for name in manifest["files"])
    assert manifest["files"]["state.db"] == _sha(good / "state.db")
    agent = branch.agent()
    try:
        agent.store.set_meta("drill", "after the backup")
    finally:
        agent.close()
    live_sha = _sha(live)

    def refused(bad: Path, says: str) -> None:
        done = runner.invoke(app, ["restore", str(bad), "--config", str(branch.config)], env=env)
        assert done.exit_code == 1 and says in done.output and "Traceback" not in done.output, done.output
        assert _sha(live) == live_sha and not list(live.parent.glob("*before-restore*"))
        opened = branch.agent()  # the live state untouched: the agent still opens on it
        try:
            assert opened.store.get_meta("drill") == "after the backup"
        finally:
            opened.close()

    damaged = tmp_path / "damaged"
    shutil.copytree(good, damaged)
    _flip(damaged / "state.db", -100)  # one byte of the state: its checksum no longer matches
    refused(damaged, f"{damaged / 'state.db'}: damaged")
    key = next(name for name in manifest["files"] if name.startswith("keys/"))
    shutil.copy2(good / "state.db", damaged / "state.db")
    _flip(damaged / key, 0)  # any file of the backup, not only the state
    refused(damaged, f"{damaged / key}: damaged")
    shutil.copy2(good / key, damaged / key)
    (damaged / "blobs" / "extra").parent.mkdir(parents=True, exist_ok=True)
    (damaged / "blobs" / "extra").write_bytes(b"x")
    refused(damaged, "not in the backup's manifest")
    (damaged / "blobs" / "extra").unlink()
    # a file edited and its hash recomputed in the manifest (created_at moved too): the manifest's MAC, keyed
    # from the agent secret, no longer matches; one without a MAC, or of format 2 (none), is refused the same way
    forged = json.loads((good / "manifest.json").read_text(encoding="utf-8"))
    (damaged / "cipher.salt").write_bytes(b"0" * 16)
    forged["files"]["cipher.salt"] = _sha(damaged / "cipher.salt")
    forged["created_at"] = "2099-01-01T00:00:00+00:00"
    (damaged / "manifest.json").write_text(json.dumps(forged), encoding="utf-8")
    refused(damaged, f"{damaged}/manifest.json：备份清单认证失败（manifest MAC wrong")
    forged.pop("mac")
    (damaged / "manifest.json").write_text(json.dumps(forged), encoding="utf-8")
    refused(damaged, f"{damaged}/manifest.json：备份清单认证失败（manifest MAC missing")
    (damaged / "manifest.json").write_text(json.dumps({**forged, "format": 2}), encoding="utf-8")
    refused(damaged, "backup format 2, this agent reads format 3")
    shutil.copy2(good / "cipher.salt", damaged / "cipher.salt")
    shutil.copy2(good / "manifest.json", damaged / "manifest.json")
    # a backup taken of an already damaged file: the checksums match, the database itself does not check out
    raw = bytearray((good / "state.db").read_bytes())
    raw[4096 : 4096 + 200] = b"\xa5" * 200  # the second page: a table's b-tree
    (damaged / "state.db").write_bytes(bytes(raw))
    listed = json.loads((damaged / "manifest.json").read_text(encoding="utf-8"))
    listed["files"]["state.db"] = _sha(damaged / "state.db")
    listed["mac"] = manifest_mac(listed, SECRET)  # (as the agent signs a backup of an already damaged file)
    (damaged / "manifest.json").write_text(json.dumps(listed), encoding="utf-8")
    refused(damaged, "not a sound SQLite database")
    listed["files"] = sorted(listed["files"])  # a manifest edited out of shape: said, not a traceback
    listed["mac"] = manifest_mac(listed, SECRET)
    (damaged / "manifest.json").write_text(json.dumps(listed), encoding="utf-8")
    refused(damaged, f"{damaged}/manifest.json: damaged")

    # a shared state out of reach (or refusing the password): one line naming it, password hidden, exit 3
    down = f"postgresql+psycopg://agent:Pw-7e1f@127.0.0.1:{_closed_port()}/regbridge"
    for command in (["status"], ["run", "--until-idle"], ["backup", "--out", str(tmp_path / "never")]):
        said = runner.invoke(app, [*command, "--config", str(branch.config)], env={**env, "REGBRIDGE_STATE__URL": down})
        assert said.exit_code == (1 if command[0] == "backup" else 3), (command, said.output)
        assert not isinstance(said.exception, sa.exc.SQLAlchemyError), said.output
        assert "agent:***@127.0.0.1" in said.output and "Connection refused" in said.output, (command, said.output)
        assert "Pw-7e1f" not in said.output and "Traceback" not in said.output, said.output

    # the live state damaged: restore does not open it, and puts the good backup in its place
    raw = bytearray(live.read_bytes())
    raw[:100] = b"\x00" * 100  # its header gone: "file is not a database"
    live.write_bytes(bytes(raw))
    for side in ("-wal", "-shm"):
        live.with_name(live.name + side).unlink(missing_ok=True)
    import agent.state.backup as backup_module

    seen: list[str] = []
    real = backup_module.restore_files

    def while_restoring(config: Any, source: Path, *args: Any, **options: Any) -> Any:  # the real one, lock held
        assert agent_process(live.parent)["running"]  # before: the lock is held (the state is not opened)
        restored = real(config, source, *args, **options)
        other = branch.agent()  # after: `regbridge run` here is refused until the restore has recovered
        try:
            other.lock_instance()
        except AgentBusy as exc:
            seen.append(str(exc))
        finally:
            other.close()
        return restored

    monkeypatch.setattr(backup_module, "restore_files", while_restoring)
    done = runner.invoke(app, ["restore", str(good), "--config", str(branch.config)], env=env)
    assert done.exit_code == 0, done.output
    assert len(seen) == 1 and "stop it first" in seen[0], seen
    assert _sha(live) == manifest["files"]["state.db"]
    assert list(live.parent.glob("state.db.before-restore-*"))  # the damaged one set aside, not deleted
    agent = branch.agent()
    try:
        assert agent.store.get_meta("drill") == "before the backup"
    finally:
        agent.close()
    monkeypatch.setattr(backup_module, "restore_files", real)
    for side in ("", "-wal", "-shm"):  # the live state lost altogether
        live.with_name(live.name + side).unlink(missing_ok=True)
    done = runner.invoke(app, ["restore", str(good), "--config", str(branch.config)], env=env)
    assert done.exit_code == 0 and _sha(live) == manifest["files"]["state.db"], done.output

    # a newer backup taken: the journal starts there, so the older one would forget what came between them
    newer = runner.invoke(app, ["backup", "--config", str(branch.config), "--out", str(tmp_path / "newer")], env=env)
    assert newer.exit_code == 0, newer.output
    live_sha = _sha(live)
    done = runner.invoke(app, ["restore", str(good), "--config", str(branch.config)], env=env)
    assert done.exit_code == 1 and "before the newest backup" in done.output and "--older" in done.output, done.output
    assert _sha(live) == live_sha
    done = runner.invoke(app, ["restore", str(good), "--older", "--config", str(branch.config)], env=env)
    assert done.exit_code == 0 and _sha(live) == manifest["files"]["state.db"], done.output
    done = runner.invoke(app, ["restore", str(tmp_path / "newer"), "--config", str(branch.config)], env=env)
    assert done.exit_code == 0, done.output  # the newest itself: as always


def test_restore_and_state_migrate_say_a_missing_config_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "agent.toml"
    for args in (["restore", str(tmp_path)], ["state", "migrate", "--to", "postgresql+psycopg://a@127.0.0.1/x"],
                 ["backup", "--out", str(tmp_path / "out")], ["audit", "verify"]):  # fmt: skip
        done = runner.invoke(app, [*args, "--config", str(missing)])
        assert done.exit_code == 2 and not isinstance(done.exception, ValueError), (args, done.output)
        assert done.output.strip() == f"config: {missing}: no such config file", (args, done.output)
    assert not (tmp_path / "out").exists()


def test_a_backup_from_before_an_upgrade_restores_onto_the_upgraded_postgresql_state(
    postgres: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    """The drill after an upgrade: a backup at schema 6 restored over a live state at the newest schema. The live
    tables the backup has not (``instances``, ``leases``: revision 7) are dropped in the restore's transaction;
    were they kept (``pg_restore --clean`` drops only the dump's own), the upgrade on the next start stopped at
    "relation instances already exists" and the agent could not open its state at all."""
    from alembic import command
    from alembic.config import Config

    from agent.config import AgentConfig
    from agent.state.backup import FORMAT, restore_files
    from agent.state.sql import REVISIONS

    old = postgres.new_database()
    engine = sa.create_engine(old)
    with engine.connect() as conn:  # a state of the agent before the upgrade: schema 6
        alembic = Config()
        alembic.set_main_option("script_location", str(REVISIONS))
        alembic.attributes["connection"] = conn
        command.upgrade(alembic, "0006")
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('drill', 'schema 6')"))
        conn.commit()
    engine.dispose()
    backup = tmp_path / "backup"
    backup.mkdir()
    uri, env = _libpq(old)
    import subprocess

    subprocess.run([_pg_tool("pg_dump", old), "-Fc", "--no-owner", "-f", str(backup / "state.pgdump"), uri],
                   check=True, env=env)  # fmt: skip
    manifest = {
        "format": FORMAT, "created_at": "2026-11-30T16:00:00+00:00", "institution_id": "inst_1",
        "state": "postgresql", "schema_version": 6, "files": {"state.pgdump": _sha(backup / "state.pgdump")},
    }  # fmt: skip
    manifest["mac"] = manifest_mac(manifest, SECRET)
    (backup / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    SQLStore(pg_url).close()  # the live state, upgraded: schema 8
    centre = {"url": "http://127.0.0.1:1", "institution_id": "inst_1", "institution_name": "示例银行",
              "institution_uscc": "91340100781081199K", "key_id": "key_1", "seal_ca_file": "seal-ca.pem",
              "centre_key_id": "centre-1", "centre_key": {"kty": "OKP", "crv": "Ed25519", "x": "A" * 43}}  # fmt: skip
    inbox = [{"name": "x", "path": str(tmp_path / "in"), "profile": "corebank_csv"}]
    config = AgentConfig.model_validate(
        {"data_dir": str(tmp_path / "data"), "inbox": inbox, "centre": centre, "state": {"url": pg_url}}
    )
    restore_files(config, backup, SECRET)
    store = SQLStore(pg_url)  # upgraded again from 6 on opening
    try:
        assert store.schema_version() == 8 and store.get_meta("drill") == "schema 6"
    finally:
        store.close()
