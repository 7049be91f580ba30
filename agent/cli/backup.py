"""``regbridge backup | restore``: the agent's state, blobs, audit log and encrypted keys; ``regbridge state
migrate``: a SQLite state moved to PostgreSQL (docs/state.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from agent.cli.common import CONFIG, load_config_or_exit, open_agent, reaching_centre

__all__ = ["register"]


def _config_and_secret(config: Path) -> tuple[Any, bytes]:
    """The config (a missing one said as every command says it) and the agent secret, which keys the backup
    manifest's MAC (derived in memory, never written); no secret: said in one line, exit 2."""
    from agent.state.secrets import SecretUnavailable, load_secret

    cfg = load_config_or_exit(config)
    try:
        secret = load_secret(
            cfg.resolve(cfg.secret_file) if cfg.secret_file else None, keyring_user=cfg.centre.institution_id
        )
    except SecretUnavailable as exc:
        typer.secho(f"缺少代理密钥（agent secret unavailable）：{exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    return cfg, secret


def backup(
    config: Path = CONFIG,
    out: Path = typer.Option(..., "--out", help="A new folder for this backup (copy it off site afterwards)."),
) -> None:
    """Back the state up while the agent runs: SQLite's online backup or pg_dump, the blobs, the audit log,
    the key files as kept (encrypted), and a manifest with every file's SHA-256 and an HMAC keyed from the agent
    secret. The agent secret is never in
    a backup: keep it apart. A backup that fails leaves nothing behind."""
    from agent.state.backup import BackupError
    from agent.state.backup import backup as take

    cfg, secret = _config_and_secret(config)  # keys the manifest's MAC (never written)
    try:
        manifest = take(cfg, out, secret)
    except (BackupError, ValueError, OSError) as exc:
        typer.secho(f"备份失败（backup failed）：{exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"备份完成，存放于 {out}（backup in {out}: {manifest['state']} state (schema {manifest['schema_version']}),"
        f" {manifest['blobs']} blobs, {manifest['keys']} key files ({manifest['key_store']}),"
        f" {len(manifest['files'])} file(s) with"
        " their SHA-256 in manifest.json (HMAC-authenticated); the recovery journal now starts here）"
    )


def restore(
    source: Path = typer.Argument(..., help="The backup folder (regbridge backup --out)."),
    config: Path = CONFIG,
    older: bool = typer.Option(
        False,
        "--older",
        help="Restore a backup older than the newest one taken (only when the newest is lost or"
        " damaged: what happened between the two is in neither).",
    ),
) -> None:
    """Restore a backup (every agent instance stopped), then re-ingest the exports and re-adopt from the centre
    the applications of after the backup; nothing is sent twice.

    The whole backup is checked first (checksums, the state itself); nothing live is touched when it fails.
    This host's agent lock is held from the first check to the end; on a shared PostgreSQL state the restore
    is refused while another instance's heartbeat is fresh or it holds the leader lease. The current state is
    never opened, so a damaged one is replaced too."""
    from contextlib import ExitStack

    from agent.daemon.recovery import recover
    from agent.state.backup import BackupError, host_lock, live_instances, restore_files, sqlite_path

    cfg, secret = _config_and_secret(config)  # checks the manifest's MAC
    data = cfg.resolve(cfg.data_dir)
    with ExitStack() as held:
        try:
            held.enter_context(host_lock(data))  # until the restored state is recovered: no agent starts here
        except BackupError as exc:
            typer.secho(f"恢复被拒绝（restore refused）：{exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        if cfg.state.url and sqlite_path(cfg) is None:  # a shared state: every instance, on any host, stopped
            mine = data / "instance.id"
            stale = 3 * cfg.state.leader_seconds
            try:
                alive = live_instances(
                    cfg.state.url, stale, this=mine.read_text(encoding="utf-8").strip() if mine.exists() else None
                )
            except BackupError as exc:
                typer.secho(f"恢复被拒绝（restore refused）：{exc}", fg="red", err=True)
                raise typer.Exit(2) from None
            if alive:
                named = "; ".join(
                    f"instance {i['id']} on {i['host']}"
                    + (f" (heartbeat {i['heartbeat_age']:.0f} s ago" if i["heartbeat_age"] is not None else " (")
                    + (", holds the leader lease)" if i["leader"] else ")")
                    for i in alive
                )
                typer.secho(
                    f"恢复被拒绝（restore refused）：{named} on this shared state; stop every instance first (a stopped"
                    f" instance's heartbeat counts as live for {stale:.0f} s = 3 × state.leader_seconds)",
                    fg="red", err=True,
                )  # fmt: skip
                raise typer.Exit(2)
        try:
            files = restore_files(cfg, source, secret, older=older)
        except (BackupError, OSError) as exc:
            typer.secho(f"恢复被拒绝（restore refused）：{exc}", fg="red", err=True)
            raise typer.Exit(1) from None
        agent = open_agent(config)
        try:  # the files are back; the centre out of reach: say so, run restore again later (each step repeats)
            with reaching_centre("restore", "备份已恢复，未完成与登记中心的核对（再次运行 regbridge restore）"):
                done = recover(agent)
        finally:
            agent.close()
    typer.echo(
        f"恢复完成，请重新启动 agent（restored the backup of {files.manifest['created_at']} (every file's checksum and"
        " the state checked);"
        f" set aside: {', '.join(files.set_aside) or 'nothing'}; {done.exports_reingested} export(s) ingested"
        f" again, {done.readopted} application(s) re-adopted from the centre, {done.receipts_known} receipt"
        " line(s) already delivered. Start the agent again.）"
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

    from agent.state.sql import redact_url
    from agent.state.transfer import MigrationError, move_to
    from sdk.support.files import atomic_write

    cfg = load_config_or_exit(config)
    try:
        moved = move_to(cfg, to)
    except (MigrationError, ValueError, OSError) as exc:
        typer.secho(f"迁移被拒绝（state migrate refused）：{exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    tables = ", ".join(f"{name} {rows}" for name, rows in moved.tables.items() if rows)
    typer.echo(
        f"迁移完成（moved {moved.rows} row(s) to {redact_url(to)} (schema {moved.schema_version}), each table's count"
        f" checked: {tables}; the SQLite file set aside as {', '.join(moved.set_aside)}）"
    )
    url = sa.make_url(to)
    if write_config:
        doc = tomlkit.parse(config.read_text(encoding="utf-8"))
        section = doc.get("state")
        if section is None:
            doc["state"] = section = tomlkit.table()
        section["url"] = _without_password(url)
        atomic_write(config, tomlkit.dumps(doc).encode("utf-8"), mode=config.stat().st_mode & 0o777)
        typer.echo(
            f"已在 {config} 中设置 state.url，请重新启动 agent（state.url set in {config}. Start the agent again.）"
        )
    else:
        typer.echo(
            f'请在配置中设置 state.url = "{redact_url(to)}"，然后重新启动 agent'
            f'（set state.url = "{redact_url(to)}" in the config, then start the agent again.）'
        )
    if url.password or "password" in url.query:
        typer.secho(
            "密码未写入配置（the password is not written to the config: give it in libpq's PGPASSFILE (a .pgpass"
            " file, mode 0600, e.g. the systemd credential's path) for the agent's user (docs/state.md)）",
            fg="yellow", err=True,
        )  # fmt: skip


def _without_password(url: Any) -> str:
    """``url`` (a SQLAlchemy URL) as text without its password, in the authority or the query
    (``url.set(password=None)`` keeps it on SQLAlchemy 2.1, so the URL is built again without it).

    Raises:
        RuntimeError: the text still carries a password (never written anywhere then).
    """
    import sqlalchemy as sa

    query = {k: v for k, v in url.query.items() if k != "password"}
    bare = sa.URL.create(
        url.drivername, username=url.username, host=url.host, port=url.port, database=url.database, query=query
    )
    text = str(bare.render_as_string(hide_password=False))
    again = sa.make_url(text)
    if again.password is not None or "password" in again.query:
        raise RuntimeError("the database URL could not be written without its password")
    return text


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command()(restore)
    app.add_typer(state_app, name="state")
