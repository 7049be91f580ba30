"""``regbridge backup | restore``: the agent's state, blobs, audit log and encrypted keys; ``regbridge state
migrate``: a SQLite state moved to PostgreSQL (docs/state.md)."""

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


state_app = typer.Typer(help="The agent's state store (docs/state.md).", no_args_is_help=True)


@state_app.command("migrate")
def migrate(
    to: str = typer.Option(
        ..., "--to", help="The empty PostgreSQL database (postgresql+psycopg://agent@db/regbridge)."
    ),
    config: Path = CONFIG,
    write_config: bool = typer.Option(True, help="Set state.url in the config file once the copy is verified."),
) -> None:
    """Move this agent's SQLite state to an empty PostgreSQL (the agent stopped): the schema from the same
    Alembic revisions, every table copied and its row count checked, then state.url set in the config and
    the SQLite file set aside. Start the agent again afterwards."""
    import sqlalchemy as sa
    import tomlkit

    from agent.config import load_config
    from agent.state.sql import redact_url
    from agent.state.transfer import MigrationError, move_to
    from sdk.support.files import atomic_write

    cfg = load_config(config)
    try:
        moved = move_to(cfg, to)
    except (MigrationError, ValueError, OSError) as exc:
        typer.secho(f"state migrate refused: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    tables = ", ".join(f"{name} {rows}" for name, rows in moved.tables.items() if rows)
    typer.echo(
        f"moved {moved.rows} row(s) to {redact_url(to)} (schema {moved.schema_version}), each table's count"
        f" checked: {tables}; the SQLite file set aside as {', '.join(moved.set_aside)}"
    )
    url = sa.make_url(to)
    if write_config:
        doc = tomlkit.parse(config.read_text(encoding="utf-8"))
        section = doc.get("state")
        if section is None:
            doc["state"] = section = tomlkit.table()
        section["url"] = url.set(password=None).render_as_string(hide_password=False)
        atomic_write(config, tomlkit.dumps(doc).encode("utf-8"), mode=config.stat().st_mode & 0o777)
        typer.echo(f"state.url set in {config}. Start the agent again.")
    else:
        typer.echo(f'set state.url = "{redact_url(to)}" in the config, then start the agent again.')
    if url.password:
        typer.secho(
            "the password is not written to the config: give it in libpq's PGPASSFILE (~/.pgpass) for the"
            " agent's user", fg="yellow", err=True,
        )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command()(restore)
    app.add_typer(state_app, name="state")
