"""``regbridge console`` (the local web console) and ``regbridge users`` (its local users)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agent.cli.common import CONFIG, open_agent

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.console.users import UserStore

__all__ = ["register", "users_app"]

users_app = typer.Typer(help="The web console's local users (argon2id hashes; roles viewer, operator, admin).",
                        no_args_is_help=True)  # fmt: skip


def console(
    config: Path = CONFIG,
    port: int = typer.Option(None, "--port", help="The port (default: \\[console] port)."),
    listen: str = typer.Option(None, "--listen", help="The address (default: \\[console] listen, loopback)."),
) -> None:
    """Serve the local web console (loopback by default; LAN mode over TLS or behind a proxy: docs/console.md)."""
    from agent.console.server import ConsoleServer, ConsoleUnsafe

    agent = open_agent(config, quiet=False)
    try:
        try:
            server = ConsoleServer(agent, listen=listen, port=port)
        except (ConsoleUnsafe, OSError) as exc:
            typer.secho(str(exc), fg="red", err=True)
            raise typer.Exit(2) from None
        typer.secho(f"RegBridge console on {server.url}  (Ctrl-C stops it)", fg="green", err=True)
        agent.audit.append("console.started", server.url, "ok", actor=f"console:{getpass.getuser()}")
        server.run()
    finally:
        agent.close()


def _users(config: Path) -> tuple[UserStore, AgentConfig]:
    from agent.config import load_config
    from agent.console.users import UserStore

    try:
        cfg = load_config(config)
    except ValueError as exc:
        typer.secho(f"config: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    return UserStore(cfg.resolve(cfg.data_dir) / "console-users.json"), cfg


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="The login name."),
    role: str = typer.Option("viewer", "--role", help="viewer, operator or admin."),
    config: Path = CONFIG,
) -> None:
    """Add a user (or set an existing one's password and role); the password is asked for, or read from
    $REGBRIDGE_CONSOLE_PASSWORD (scripts), never from the command line."""
    from agent.console.users import UserError
    from agent.state.audit import AuditLog

    store, cfg = _users(config)
    password = os.environ.get("REGBRIDGE_CONSOLE_PASSWORD") or getpass.getpass(f"password for {name}: ")
    try:
        store.add(name, password, role)
    except UserError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    AuditLog(cfg.resolve(cfg.data_dir) / "audit.log").append(
        "console.user_set", name, "ok", actor=f"shell:{getpass.getuser()}", role=role
    )
    typer.echo(f"{name}: {role}")


@users_app.command("remove")
def users_remove(name: str = typer.Argument(...), config: Path = CONFIG) -> None:
    """Remove a user (their session ends at their next request)."""
    from agent.state.audit import AuditLog

    store, cfg = _users(config)
    if not store.remove(name):
        typer.secho(f"no user {name}", fg="red", err=True)
        raise typer.Exit(1)
    AuditLog(cfg.resolve(cfg.data_dir) / "audit.log").append(
        "console.user_removed", name, "ok", actor=f"shell:{getpass.getuser()}"
    )
    typer.echo(f"{name}: removed")


@users_app.command("list")
def users_list(config: Path = CONFIG) -> None:
    """The users and their roles (never their hashes)."""
    from agent.state.store import local_time

    store, cfg = _users(config)
    for u in store.list():
        typer.echo(f"{u['name']}\t{u['role']}\t{local_time(u['created_at'], cfg.timezone)}")


def register(app: typer.Typer) -> None:
    app.command()(console)
    app.add_typer(users_app, name="users")
