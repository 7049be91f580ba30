"""``regbridge backup | restore``: the agent's state, blobs, audit log and encrypted keys (docs/state.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.cli.common import CONFIG

__all__ = ["register"]


def backup(
    config: Path = CONFIG,
    out: Path = typer.Option(..., "--out", help="A new folder for this backup (copy it off site afterwards)."),
) -> None:
    """Back the state up while the agent runs: SQLite's online backup or pg_dump, the blobs, the audit log,
    the key files as kept (encrypted). The agent secret is never in a backup: keep it apart."""
    from agent.config import load_config
    from agent.state.backup import BackupError
    from agent.state.backup import backup as take

    try:
        manifest = take(load_config(config), out)
    except (BackupError, ValueError, OSError) as exc:
        typer.secho(f"backup failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"backup in {out}: {manifest['state']} state (schema {manifest['schema_version']}), {manifest['blobs']} "
        f"blobs, {manifest['keys']} key files ({manifest['key_store']}); the recovery journal now starts here"
    )


def restore(
    source: Path = typer.Argument(..., help="The backup folder (regbridge backup --out)."),
    config: Path = CONFIG,
) -> None:
    """Restore a backup (every agent instance stopped), then re-ingest the exports and re-adopt from the centre
    the applications of after the backup; nothing is sent twice."""
    from agent.cli.common import open_agent
    from agent.config import load_config
    from agent.daemon import AgentBusy
    from agent.daemon.recovery import recover
    from agent.state.backup import BackupError, restore_files

    cfg = load_config(config)
    lock = cfg.resolve(cfg.data_dir) / "agent.lock"
    if lock.exists():  # this host's agent must be stopped: take its lock for the whole restore
        probe = open_agent(config)
        try:
            probe.lock_instance()
        except AgentBusy as exc:
            probe.close()
            typer.secho(f"restore refused: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        alive = [i for i in probe.store.instances() if i["heartbeat_age"] < 3 * cfg.state.leader_seconds]
        probe.close()
        if alive:
            typer.secho(
                f"restore refused: instance {alive[0]['id']} on {alive[0]['host']} is running on this state;"
                " stop every instance first", fg="red", err=True,
            )  # fmt: skip
            raise typer.Exit(2)
    try:
        files = restore_files(cfg, source)
    except (BackupError, OSError) as exc:
        typer.secho(f"restore failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    agent = open_agent(config)
    try:
        agent.lock_instance()
        done = recover(agent)
    finally:
        agent.close()
    typer.echo(
        f"restored the backup of {files.manifest['created_at']}; set aside: {', '.join(files.set_aside) or 'nothing'};"
        f" {done.exports_reingested} export(s) ingested again, {done.readopted} application(s) re-adopted from the"
        f" centre, {done.receipts_known} receipt line(s) already delivered. Start the agent again."
    )


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command()(restore)
